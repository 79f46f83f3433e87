"""
What the three front ends share: the options, the calls behind each method name, the pool of
idle connections per server, and the reservation context managers. A front end supplies
`_run` (how a call from calls.py is driven: at once, as a coroutine, or as a Deferred) and
`_exchange` (how an `Exchange` reaches a server), built on `_connection_for` and `_settle`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from twisted.logger import Logger

from kestrel.client import calls
from kestrel.client.calls import Answered, Exchange, Found, Outcome, Unreachable
from kestrel.client.fleet import Fleet, Membership
from kestrel.client.protocol import delete_request, flush_request, set_request

if TYPE_CHECKING:
    from kestrel.client.zookeeper import ServerSets

# How long a client waits for ZooKeeper when it is made.
ZOOKEEPER_TIMEOUT = 10.0

log = Logger()


class Connection(Protocol):
    """What a pool keeps: one front end's connection to one server."""

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class Pool:
    """Idle connections, per server; a connection serves one call at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: dict[str, list[Connection]] = defaultdict(list)

    def take(self, server: str) -> Connection | None:
        """An idle connection that is still open, or None: one the server closed meanwhile goes."""
        while True:
            with self._lock:
                idle = self._idle[server]
                if not idle:
                    return None
                connection = idle.pop()
            if connection.alive():
                return connection
            connection.close()

    def give(self, server: str, connection: Connection) -> None:
        with self._lock:
            self._idle[server].append(connection)

    def close(self) -> list[Connection]:
        """Close the idle connections; the ones closed, for a front end that waits for them to go."""
        with self._lock:
            idle, self._idle = self._idle, defaultdict(list)
        closed = [connection for connections in idle.values() for connection in connections]
        for connection in closed:
            connection.close()
        return closed


class ClientBase:
    """
    `servers` lists `host:port`s; `zookeeper` (`host:port[,host:port]/prefix`) finds them in
    ZooKeeper server sets instead, writes from the write set and reads from the read set,
    following their changes (construction waits up to `zookeeper_timeout` for ZooKeeper);
    `membership` may be given instead, to change them live (fleet.Membership.replace). `writes_per_server`: how many writes stay on one server;
    `retries`: how many other servers a call may move to; `read_slice`: seconds a read waits
    on one server of several before it moves on; `connect_timeout`, `reply_timeout`: seconds
    (a blocking read's reply may take its wait longer); `backoff_initial`, `backoff_max`: how
    long a failed server is left alone.
    """

    def __init__(
        self,
        servers: Iterable[str] | None = None,
        *,
        zookeeper: str | None = None,
        zookeeper_timeout: float = ZOOKEEPER_TIMEOUT,
        membership: Membership | None = None,
        writes_per_server: int = 100,
        retries: int = 2,
        read_slice: float = 0.25,
        connect_timeout: float = 2.0,
        reply_timeout: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        choose: random.Random | None = None,
    ):
        self._server_sets: ServerSets | None = None
        if zookeeper is not None:
            from kestrel.client.zookeeper import ServerSets  # kazoo, only for a client that asks

            membership = Membership()
            self._server_sets = ServerSets(zookeeper, membership, timeout=zookeeper_timeout)
        elif membership is None:
            if not servers:
                raise ValueError("a client needs servers (host:port, ...) or a membership")
            membership = Membership([servers] if isinstance(servers, str) else servers)
        self.fleet = Fleet(
            membership, writes_per_server=writes_per_server, backoff_initial=backoff_initial,
            backoff_max=backoff_max, clock=clock, choose=choose,
        )
        self.attempts = retries + 1
        self.read_slice = read_slice
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self._clock = clock
        self._wall_clock = wall_clock
        self._pool = Pool()

    def _release(self) -> list[Connection]:
        """Stop following ZooKeeper and close the idle connections (each front end's close)."""
        if self._server_sets is not None:
            self._server_sets.close()
            self._server_sets = None
        return self._pool.close()

    # The calls, the same on every front end

    def put(self, queue: str, data: bytes, expiry: float | datetime | None = None):
        """Add an item; `expiry` in seconds from now (or an aware datetime), None for none (doc/fleet.md)."""
        return self._run(calls.put(self.fleet, set_request(queue, data, expiry, self._wall_clock), self.attempts))

    def put_many(self, queue: str, items: Iterable[bytes], expiry: float | datetime | None = None):
        """Add items, pipelined on one server, in their order."""
        requests = [set_request(queue, data, expiry, self._wall_clock) for data in items]
        return self._run(calls.put_many(self.fleet, queue, requests, self.attempts))

    def get(self, queue: str, timeout: float = 0):
        """An item (removed at once), or None when none came within `timeout` seconds."""
        return self._run(calls.get(self.fleet, queue, timeout, self.read_slice, self._clock))

    def peek(self, queue: str):
        """The first item found at the head of a queue on one of the servers, left there; or None."""
        return self._run(calls.get(self.fleet, queue, 0, self.read_slice, self._clock, "peek"))

    def delete(self, queue: str):
        """Delete the queue on every server."""
        return self._run(calls.on_every_server(self.fleet, delete_request(queue)))

    def flush(self, queue: str):
        """Remove every item of the queue on every server."""
        return self._run(calls.on_every_server(self.fleet, flush_request(queue)))

    def stats(self):
        """{server: calls.ServerStats} for every server, with the error of any that gave none."""
        return self._run(calls.stats(self.fleet))

    def _reserve(self, queue: str, timeout: float):
        return self._run(calls.read(self.fleet, queue, timeout, self.read_slice, self._clock, "open", hold=True))

    def _finish(self, queue: str, found: Found, confirm: bool):
        return self._run(calls.finish_read(found, queue, confirm))

    # What a front end supplies

    def _run(self, call: calls.Call):
        raise NotImplementedError

    # What front ends build their _exchange from

    def _connection_for(self, action: Exchange) -> Connection | None:
        """The held connection the action names, else an idle one; None: the front end connects."""
        return action.connection if action.connection is not None else self._pool.take(action.server)

    def _settle(self, action: Exchange, connection: Connection, outcome: Outcome) -> Outcome:
        """After an exchange: hold the connection if a read is open on it, pool it, or close it."""
        if calls.holds_open_read(action, outcome):
            return Answered(outcome.results, connection)
        if calls.keeps_connection(outcome):
            self._pool.give(action.server, connection)
        else:
            connection.close()
        return outcome

    @staticmethod
    def _unreachable(action: Exchange, error: BaseException) -> Unreachable:
        log.debug("cannot connect to {server}: {error}", server=action.server, error=error)
        return Unreachable(error)


class Reserved:
    """A reserve call's item, and the open read to confirm or abort when the block ends."""

    def __init__(self, client: ClientBase, queue: str, timeout: float):
        self._client = client
        self.queue = queue
        self._timeout = timeout
        self._found: Found | None = None

    @property
    def item(self) -> bytes | None:
        return None if self._found is None else self._found.item

    @property
    def server(self) -> str | None:
        """The server the item came from, while it is reserved."""
        return None if self._found is None else self._found.server

    def _finish(self, kind: type | None):
        """Confirm when the block ended normally (`kind` None), abort when by an exception."""
        found, self._found = self._found, None
        return self._client._finish(self.queue, found, confirm=kind is None)


class Reservation(Reserved):
    """
    `with client.reserve(queue) as item:` — the item (None when none came). Leaving the block
    normally confirms it, by an exception aborts it, on the connection its read is open on;
    a confirm whose connection died raises `ConfirmFailed` (the item will come again).
    """

    def __enter__(self) -> bytes | None:
        self._found = self._client._reserve(self.queue, self._timeout)
        return self.item

    def __exit__(self, kind, error, traceback) -> bool:
        if self._found is not None:
            self._finish(kind)
        return False


class AsyncReservation(Reserved):
    """`async with client.reserve(queue) as item:`, the same for asyncio and for Twisted coroutines."""

    async def __aenter__(self) -> bytes | None:
        self._found = await self._client._reserve(self.queue, self._timeout)
        return self.item

    async def __aexit__(self, kind, error, traceback) -> bool:
        if self._found is not None:
            await self._finish(kind)
        return False


def request_wait(action: Exchange) -> float:
    """How much longer than a plain reply the replies may take: the blocking gets' waits."""
    return sum(request.wait for request in action.requests)
