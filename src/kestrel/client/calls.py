"""
What each client call does across a fleet, with no I/O: a call is a generator that yields
`Exchange`s (these requests, on that server) and is sent back what came of each: `Answered`,
`Unreachable` (nothing went out) or `Dropped` (the connection died after the requests went
out). The front ends run the same calls with their own I/O: `run_blocking` for sockets,
`run_async` for asyncio and for Twisted's coroutines.

The rules (doc/fleet.md): a server that refuses (`SERVER_ERROR`), cannot be reached or drops
the connection is marked down and the call moves on to another; a write whose request went
out before the connection dropped is not moved, since the server may have done it: it raises
`WriteOutcomeUnknown`. `CLIENT_ERROR` and `ERROR` are the caller's to see, and `NOT_STORED`
too: the queue is full on that server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generator, TypeVar

from kestrel.client.fleet import Fleet
from kestrel.client.protocol import (
    ConfirmFailed,
    NoServerAvailable,
    NotStored,
    Request,
    Result,
    ServerError,
    WriteOutcomeUnknown,
    dump_stats_request,
    get_request,
    stats_request,
)

T = TypeVar("T")

# put_many pipelines its sets in batches of about this many bytes: a server stops reading a
# connection whose replies go unread (doc/architecture.md), so all of them at once could
# leave both sides waiting.
PIPELINE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Exchange:
    """
    Send these requests on a connection to `server` and read their replies. With `hold`, a
    connection whose last reply brought an item stays out of the pool and comes back in
    `Answered.connection`: an open read lives on it (§1.5). `connection` runs the exchange on
    such a held connection, which then goes back to the pool.
    """

    server: str
    requests: tuple[Request, ...]
    hold: bool = False
    connection: Any = None


@dataclass(frozen=True)
class Answered:
    results: list[Result]
    connection: Any = None


@dataclass(frozen=True)
class Unreachable:
    """No byte of the requests went out: connecting failed, or the first send did."""

    error: BaseException


@dataclass(frozen=True)
class Dropped:
    """The connection died after the requests went out; `results` are the replies that came first."""

    error: BaseException
    results: list[Result] = field(default_factory=list)


Outcome = Answered | Unreachable | Dropped
Call = Generator[Exchange, Outcome, T]


def keeps_connection(outcome: Outcome) -> bool:
    """
    Whether a connection may serve another call: every reply came, and none was an error
    after which the server closes the connection (§1.9; `NOT_STORED` leaves it open).
    """
    return isinstance(outcome, Answered) and all(result.error is None or isinstance(result.error, NotStored) for result in outcome.results)


def holds_open_read(action: Exchange, outcome: Outcome) -> bool:
    return action.hold and isinstance(outcome, Answered) and outcome.results[-1].value is not None


def served(fleet: Fleet, server: str, outcome: Outcome, failures: dict[str, BaseException]) -> bool:
    """Whether the server served the call; if not, it is marked down and `failures` says why."""
    error = refusal(outcome)
    if error is None:
        fleet.succeeded(server)
        return True
    fleet.failed(server)
    failures[server] = error
    return False


def refusal(outcome: Outcome) -> BaseException | None:
    """What made the server unusable for this call: no connection, a dropped one, or `SERVER_ERROR`."""
    if isinstance(outcome, (Unreachable, Dropped)):
        return outcome.error
    error = outcome.results[0].error
    return error if isinstance(error, ServerError) else None


# Writes


def put(fleet: Fleet, request: Request, attempts: int) -> Call[None]:
    """One write on the sticky write server, moved to another only when nothing was done."""
    failures: dict[str, BaseException] = {}
    for server in fleet.write_servers()[:attempts]:
        outcome = yield Exchange(server, (request,))
        if isinstance(outcome, Dropped):
            fleet.failed(server)
            raise WriteOutcomeUnknown(server, request.describe(), outcome.error)
        if served(fleet, server, outcome, failures):
            return outcome.results[0].unwrap()
    raise NoServerAvailable(request.describe(), failures)


def put_many(fleet: Fleet, queue: str, requests: list[Request], attempts: int) -> Call[None]:
    """
    Sets pipelined in batches on the sticky write server. A server that refuses with
    `SERVER_ERROR` closes the connection and ignores what came after (§1.9), so the items from
    the refused one on go to the next server; a drop leaves the batch's unanswered items unknown.
    """
    servers = fleet.write_servers()[:attempts]
    failures: dict[str, BaseException] = {}
    refused: list[int] = []
    position = 0
    while position < len(requests):
        if not servers:
            raise NoServerAvailable(f"put_many {queue}", failures)
        server = servers[0]
        batch = pipeline_batch(requests, position)
        outcome = yield Exchange(server, batch)
        answered = [] if isinstance(outcome, Unreachable) else outcome.results
        stop = next((index for index, result in enumerate(answered) if isinstance(result.error, ServerError)), None)
        for index, result in enumerate(answered[:stop]):
            if isinstance(result.error, NotStored):
                refused.append(position + index)
            elif result.error is not None:
                raise result.error
        if isinstance(outcome, Unreachable) or stop is not None:
            fleet.failed(server)
            failures[server] = outcome.error if stop is None else answered[stop].error
            servers.pop(0)
            position += stop or 0
            continue
        if isinstance(outcome, Dropped):
            fleet.failed(server)
            done = position + len(answered)
            raise WriteOutcomeUnknown(server, f"put_many {queue}", outcome.error, done=done, unknown=len(batch) - len(answered), refused=tuple(refused))
        fleet.succeeded(server)
        position += len(batch)
    if refused:
        raise NotStored(f"{queue} refused {len(refused)} of {len(requests)} items", refused=tuple(refused))


def pipeline_batch(requests: list[Request], start: int) -> tuple[Request, ...]:
    end, size = start, 0
    while end < len(requests) and (end == start or size + len(requests[end].wire) <= PIPELINE_BYTES):
        size += len(requests[end].wire)
        end += 1
    return tuple(requests[start:end])


def on_every_server(fleet: Fleet, request: Request) -> Call[None]:
    """`delete` and `flush`: the queue lives on every server. A failure anywhere raises, once all were tried."""
    failures: dict[str, BaseException] = {}
    servers = fleet.membership.all_servers()
    for server in servers:
        outcome = yield Exchange(server, (request,))
        if served(fleet, server, outcome, failures):
            outcome.results[0].unwrap()
        elif isinstance(outcome, Dropped):
            failures[server] = WriteOutcomeUnknown(server, request.describe(), outcome.error)
    if failures:
        raise NoServerAvailable(f"{request.describe()} on {len(failures)} of {len(servers)} servers", failures)


# Reads


@dataclass(frozen=True)
class Found:
    server: str
    item: bytes
    connection: Any = None  # the connection a reserved item's read is open on


def read(fleet: Fleet, queue: str, timeout: float, read_slice: float, clock: Callable[[], float], *options: str, hold: bool = False) -> Call[Found | None]:
    """
    Rotate over the read servers until one has an item or the timeout passes. With more than
    one server, a first round asks each without waiting, then each round waits a slice of
    what is left on each server, so an empty server never keeps a reader from the others'
    items. A plain get whose connection drops may have taken an item with it (§1.5 keeps only
    open reads); it moves on like any other failure. No server answering a whole round raises
    `NoServerAvailable`.
    """
    deadline = clock() + timeout
    failures: dict[str, BaseException] = {}
    first_round = True
    while True:
        servers = fleet.read_servers()
        answered = cut_short = False
        for server in servers:
            remaining = max(0.0, deadline - clock())
            if len(servers) == 1:
                wait = remaining
            else:
                wait = 0.0 if first_round else min(read_slice, remaining)
            if not first_round and wait <= 0:
                cut_short = True
                break
            outcome = yield Exchange(server, (get_request(queue, wait, *options),), hold=hold)
            if not served(fleet, server, outcome, failures):
                continue
            answered = True
            item = outcome.results[0].unwrap()
            if item is not None:
                return Found(server, item, outcome.connection)
        if not answered and not cut_short:
            raise NoServerAvailable(f"get {queue}", failures)
        first_round = False
        if clock() >= deadline:
            return None


def get(fleet: Fleet, queue: str, timeout: float, read_slice: float, clock: Callable[[], float], *options: str) -> Call[bytes | None]:
    found = yield from read(fleet, queue, timeout, read_slice, clock, *options)
    return None if found is None else found.item


def finish_read(found: Found, queue: str, confirm: bool) -> Call[None]:
    """
    Confirm (`close`) or abort a reserved item on the connection its read is open on (§1.4).
    If that connection died, the server rolls the read back (§1.5): what an abort wanted. A
    confirm raises `ConfirmFailed`, saying whether it went out (then the server may have done it).
    """
    request = get_request(queue, 0, "close" if confirm else "abort")
    outcome = yield Exchange(found.server, (request,), connection=found.connection)
    error = refusal(outcome) or (outcome.results[0].error if isinstance(outcome, Answered) else None)
    if error is not None and confirm:
        raise ConfirmFailed(found.server, queue, error, sent=not isinstance(outcome, Unreachable))


# Stats


@dataclass(frozen=True)
class ServerStats:
    """One server's `stats` (§1.8) and its queues' (from `dump_stats`), or why it gave none."""

    server: str
    stats: dict[str, int | str] = field(default_factory=dict)
    queues: dict[str, dict[str, int | str]] = field(default_factory=dict)
    error: BaseException | None = None


def stats(fleet: Fleet) -> Call[dict[str, ServerStats]]:
    """Every server's stats; a server that gives none is reported with its error, not raised."""
    found = {}
    for server in fleet.membership.all_servers():
        outcome = yield Exchange(server, (stats_request(), dump_stats_request()))
        error = refusal(outcome) or next((result.error for result in outcome.results if result.error), None)
        if error is not None:
            fleet.failed(server)
            found[server] = ServerStats(server, error=error)
        else:
            fleet.succeeded(server)
            found[server] = ServerStats(server, outcome.results[0].value, outcome.results[1].value)
    return found


# Running a call


def run_blocking(call: Call[T], exchange: Callable[[Exchange], Outcome]) -> T:
    outcome = None
    try:
        while True:
            outcome = exchange(call.send(outcome))
    except StopIteration as done:
        return done.value


async def run_async(call: Call[T], exchange: Callable[[Exchange], Awaitable[Outcome]]) -> T:
    outcome = None
    try:
        while True:
            outcome = await exchange(call.send(outcome))
    except StopIteration as done:
        return done.value
