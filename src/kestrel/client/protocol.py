"""
The client's protocol core: Kestrel's memcache dialect (doc/compatibility.md §1) as requests
that encode to bytes and a reply reader that turns bytes into results, with no I/O, in the
spirit of h11. The front ends (blocking.py, aio.py, twisted.py) move the bytes.

Memcache replies do not say which request they answer (`END` is an empty get and a done
flush alike), so a `ReplyReader` is told what it waits for, in the order the requests went
out (§1.1: a connection answers in order, so pipelining works).
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

# §1.3: an expiry under this many seconds is relative; anything larger is a Unix time.
RELATIVE_EXPIRY_LIMIT = 1_000_000
# §3.1: what a queue name may not contain; the wire adds the key's `/` options and spaces.
FORBIDDEN_IN_NAME = re.compile(r"[./~\s\x00-\x1f\x7f]")
MAX_NAME_BYTES = 250


class KestrelError(Exception):
    """Every error this client raises."""


class ReplyError(KestrelError):
    """The server answered that the request failed."""


class ClientError(ReplyError):
    """`CLIENT_ERROR`: the server found the request malformed (and closed the connection, §1.9)."""


class ServerError(ReplyError):
    """`SERVER_ERROR`: the server refused, by its status or a connection limit (§1.7); another may not."""


class RequestError(ReplyError):
    """`ERROR`: a request the server will not do on this connection (§1.9)."""


class NotStored(ReplyError):
    """
    `NOT_STORED`: the queue refused the item (full, or closing: §1.3, §3.2). From `put_many`,
    `refused` holds the positions of the items refused; the others were stored.
    """

    def __init__(self, message: str, refused: tuple[int, ...] = ()):
        super().__init__(message)
        self.refused = refused


class UnexpectedReply(KestrelError):
    """Bytes that are no reply to what was asked: the connection cannot be trusted any more."""


class ZooKeeperUnreachable(KestrelError):
    """A client asked for ZooKeeper server sets, and ZooKeeper did not answer in time."""


class NoServerAvailable(KestrelError):
    """Every server a call could use failed; `failures` maps each one tried to its error."""

    def __init__(self, what: str, failures: dict[str, BaseException]):
        reasons = "; ".join(f"{server}: {error}" for server, error in failures.items()) or "no servers"
        super().__init__(f"{what}: no server available ({reasons})")
        self.failures = failures


class WriteOutcomeUnknown(KestrelError):
    """
    The connection dropped after a write went out and before its reply: the server may or may
    not have done it. The client never retries such a write by itself; retrying gives
    at-least-once delivery, giving up at-most-once. For `put_many`, the first `done` items
    have a known outcome (stored, or refused: `refused`), the next `unknown` may or may not be
    stored, and the ones after were not sent.
    """

    def __init__(self, server: str, what: str, error: BaseException | None, done: int = 0, unknown: int = 1, refused: tuple[int, ...] = ()):
        super().__init__(f"{what} on {server}: the connection dropped before the reply ({error}); it may or may not have been done")
        self.server = server
        self.done = done
        self.unknown = unknown
        self.refused = refused


class ConfirmFailed(KestrelError):
    """
    A reserved item's confirm got no reply: its connection died. If the confirm never went
    out (`sent` False), the server rolls the read back when the connection goes (§1.5) and
    the item will be delivered again. If it went out, the server may have confirmed the item
    just before the connection died (a SIGKILL between its fsync and its reply does that), so
    the item may or may not come again: like a write whose outcome is unknown.
    """

    def __init__(self, server: str, queue: str, error: BaseException | None, sent: bool):
        outcome = "the item may or may not be delivered again" if sent else "the item will be delivered again"
        super().__init__(f"confirm of a read of {queue} on {server} failed ({error}): {outcome}")
        self.server = server
        self.queue = queue
        self.sent = sent


ERROR_REPLIES: dict[bytes, type[ReplyError]] = {
    b"CLIENT_ERROR": ClientError,
    b"SERVER_ERROR": ServerError,
    b"ERROR": RequestError,
}


# Requests


@dataclass(frozen=True)
class Request:
    """One request: its bytes, what its reply looks like, and whether it changes the server."""

    kind: str  # "set", "get", "delete", "flush", "stats" or "dump_stats": how the reply reads
    queue: str
    wire: bytes
    writes: bool
    wait: float = 0.0  # seconds the server may hold the reply (a blocking get's t=)

    def describe(self) -> str:
        return f"{self.kind} {self.queue}".rstrip()


def check_queue_name(queue: str) -> bytes:
    """The name as it goes on the wire; a name the server would refuse (§3.1) fails here instead."""
    encoded = queue.encode()
    if not queue or FORBIDDEN_IN_NAME.search(queue) or len(encoded) > MAX_NAME_BYTES:
        raise ValueError(f"bad queue name {queue!r}: non-empty, at most {MAX_NAME_BYTES} bytes, no '.', '/', '~', spaces or control characters")
    return encoded


def wire_expiry(expiry: float | datetime | None, now: Callable[[], float]) -> int:
    """
    The `set` exptime for an expiry in seconds from now, or an aware datetime; None is none.
    §1.3 reads an exptime under 1,000,000 as seconds from now and a larger one as a Unix
    time, so a long relative expiry goes out as a Unix time; a fraction rounds up, since 0
    would mean never.
    """
    if expiry is None:
        return 0
    if isinstance(expiry, datetime):
        if expiry.tzinfo is None:
            raise ValueError("an expiry datetime needs a time zone")
        seconds = expiry.timestamp() - now()
    else:
        seconds = float(expiry)
    if seconds <= 0:
        raise ValueError(f"expiry must be in the future, got {expiry!r}")
    if seconds < RELATIVE_EXPIRY_LIMIT:
        return math.ceil(seconds)
    return math.ceil(now() + seconds)


def set_request(queue: str, data: bytes, expiry: float | datetime | None = None, now: Callable[[], float] = lambda: 0.0) -> Request:
    """`set <q> 0 <exptime> <length>` and the data; `now` is the wall clock (Unix seconds) for long expiries."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"items are bytes, not {type(data).__name__}")
    header = b"set %s 0 %d %d\r\n" % (check_queue_name(queue), wire_expiry(expiry, now), len(data))
    return Request("set", queue, header + bytes(data) + b"\r\n", writes=True)


def get_request(queue: str, wait: float = 0.0, *options: str) -> Request:
    """`get <q>[/option...][/t=<ms>]` (§1.4): options among open, close, abort and peek."""
    key = check_queue_name(queue) + b"".join(b"/" + option.encode() for option in options)
    milliseconds = math.ceil(wait * 1000)
    if milliseconds > 0:
        key += b"/t=%d" % milliseconds
    # A close confirms a read: a write as far as knowing its outcome goes.
    return Request("get", queue, b"get %s\r\n" % key, writes="close" in options, wait=wait)


def delete_request(queue: str) -> Request:
    return Request("delete", queue, b"delete %s\r\n" % check_queue_name(queue), writes=True)


def flush_request(queue: str) -> Request:
    return Request("flush", queue, b"flush %s\r\n" % check_queue_name(queue), writes=True)


def stats_request() -> Request:
    return Request("stats", "", b"stats\r\n", writes=False)


def dump_stats_request() -> Request:
    return Request("dump_stats", "", b"dump_stats\r\n", writes=False)


# Replies


@dataclass(frozen=True)
class Result:
    """A request's reply: a value (an item, stats, or None), or the error the reply stood for."""

    request: Request
    value: object = None
    error: ReplyError | None = None

    def unwrap(self):
        if self.error is not None:
            raise self.error
        return self.value


# The one-line replies that mean success, by request kind. `flush` answers `END` (§1.2);
# `OK` and `NOT_FOUND` are what plain memcached says, accepted so `delete` and `flush` of a
# queue a server never had read as done.
DONE_LINES = {
    "set": {b"STORED"},
    "delete": {b"DELETED", b"NOT_FOUND"},
    "flush": {b"END", b"OK"},
}


class ReplyReader:
    """
    Reads the replies of the requests `expect`ed, in order, from bytes `feed` in any pieces.
    After an `UnexpectedReply` the reader is broken and the connection should go.
    """

    def __init__(self, max_line: int = 64 * 1024):
        self._buffer = bytearray()
        self._expected: deque[Request] = deque()
        self._lines: list[str] = []  # the stat lines of a stats reply so far
        self._value_length: int | None = None  # the data a VALUE line announced, still to come
        self._value: bytes | None = None
        self._max_line = max_line

    def expect(self, request: Request) -> None:
        self._expected.append(request)

    @property
    def waiting(self) -> int:
        """How many expected replies have not come yet."""
        return len(self._expected)

    def feed(self, data: bytes) -> list[Result]:
        """Every result the bytes so far complete, oldest first."""
        self._buffer += data
        results = []
        while self._expected and (result := self._next(self._expected[0])) is not None:
            results.append(result)
            self._expected.popleft()
        if not self._expected and self._buffer:
            raise UnexpectedReply(f"bytes with no request waiting: {bytes(self._buffer[:80])!r}")
        return results

    def _next(self, request: Request) -> Result | None:
        """The request's result once its last line is in; the lines before it are taken as they come."""
        while True:
            if self._value_length is not None and not self._take_value(request):
                return None
            line = self._take_line()
            if line is None:
                return None
            result = self._read_line(request, line)
            if result is not None:
                return result

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > self._max_line:
                raise UnexpectedReply(f"a reply line longer than {self._max_line} bytes")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _take_value(self, request: Request) -> bool:
        length = self._value_length
        if len(self._buffer) < length + 2:
            return False
        if self._buffer[length : length + 2] != b"\r\n":
            raise UnexpectedReply(f"a value of {request.describe()} not ended by CRLF")
        self._value = bytes(self._buffer[:length])
        del self._buffer[: length + 2]
        self._value_length = None
        return True

    def _read_line(self, request: Request, line: bytes) -> Result | None:
        word = line.split(b" ", 1)[0]
        if word in ERROR_REPLIES and self._value is None and not self._lines:
            reason = line[len(word):].strip().decode("latin-1")
            return Result(request, error=ERROR_REPLIES[word](reason or word.decode()))
        if request.kind == "get":
            return self._get_line(request, line)
        if request.kind in ("stats", "dump_stats"):
            if line != b"END":
                self._lines.append(line.decode("latin-1"))
                return None
            lines, self._lines = self._lines, []
            return Result(request, parse_stats(lines) if request.kind == "stats" else parse_dump_stats(lines))
        if line in DONE_LINES[request.kind]:
            return Result(request)
        if request.kind == "set" and line == b"NOT_STORED":
            return Result(request, error=NotStored(f"{request.queue} refused the item"))
        raise UnexpectedReply(f"{line[:80]!r} in reply to {request.describe()}")

    def _get_line(self, request: Request, line: bytes) -> Result | None:
        if line == b"END":
            value, self._value = self._value, None
            return Result(request, value)
        parts = line.split(b" ")
        if parts[0] != b"VALUE" or len(parts) < 4 or self._value is not None or not parts[3].isdigit():
            raise UnexpectedReply(f"{line[:80]!r} in reply to {request.describe()}")
        self._value_length = int(parts[3])
        return None


def stat_value(text: str) -> int | str:
    """A stat as a number when it is one (most are counts), else as the text it is (`version`, `children`)."""
    return int(text) if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()) else text


def parse_stats(lines: list[str]) -> dict[str, int | str]:
    """`STAT <name> <value>` lines (§1.8) as a dict, in their order."""
    stats = {}
    for line in lines:
        parts = line.split(" ", 2)
        if parts[0] != "STAT" or len(parts) < 3:
            raise UnexpectedReply(f"{line[:80]!r} in reply to stats")
        stats[parts[1]] = stat_value(parts[2])
    return stats


DUMP_STATS_QUEUE = re.compile(r"queue '(.*)' \{")


def parse_dump_stats(lines: list[str]) -> dict[str, dict[str, int | str]]:
    """`dump_stats` (§1.8): each queue's stats by name, which unlike `stats` keys cannot be misread."""
    queues: dict[str, dict[str, int | str]] = {}
    current = None
    for line in lines:
        if (opening := DUMP_STATS_QUEUE.fullmatch(line)) is not None:
            current = queues[opening[1]] = {}
        elif line == "}":
            current = None
        elif current is None and line.startswith("STAT "):
            pass  # `STAT queues_omitted N`: a server with more queues than it lists (doc/operations.md)
        elif current is not None and "=" in line:
            key, _, value = line.strip().partition("=")
            current[key] = stat_value(value)
        else:
            raise UnexpectedReply(f"{line[:80]!r} in reply to dump_stats")
    return queues
