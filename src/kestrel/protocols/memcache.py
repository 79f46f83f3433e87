"""
The memcache protocol (Kestrel dialect), port 22133.

Requests on one connection are answered in order. When an answer has to wait (a blocking
get, a monitor stream, a set to a queue that fsyncs every write), later requests stay in
the buffer until it is written. Replies produced while parsing one burst of input go out
in one write.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, ClassVar, Final

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from kestrel.collection import InvalidQueueName
from kestrel.config import ConfigError
from kestrel.envelope import body_of
from kestrel.journal import records
from kestrel.protocols.connection import SessionConnection, SessionFactory
from kestrel.queue import Item, QueueUnavailable
from kestrel.server import ServerContext
from kestrel.session import ReadStillOpen, TooManyOpenReads, Unavailable
from kestrel.stats_listing import PREFIX_MARK, QUEUES_OMITTED, by_name, split_selectors
from kestrel.status import StatusError, StatusNotConfigured

STORAGE_COMMANDS: Final = frozenset((b"set", b"add", b"replace", b"append", b"prepend", b"cas"))
# Memcache's rule: an exptime below this is relative to now, from it on an absolute time.
RELATIVE_EXPTIME_LIMIT: Final = 1_000_000

STORED: Final = b"STORED\r\n"
NOT_STORED: Final = b"NOT_STORED\r\n"
END: Final = b"END\r\n"
# What flush_all answers, by the memcache listener's `memcache_flush_all_reply`: Kestrel's
# sentence, or memcached's OK, which most memcache clients insist on.
FLUSH_ALL_REPLIES = {"kestrel": b"Flushed all queues.\r\n", "memcached": b"OK\r\n"}
VALUE_TAIL: Final = b"\r\nEND\r\n"


class ClientError(Exception):
    """A bad request: reply `CLIENT_ERROR <reason>`, and close the connection if `close`."""

    def __init__(self, reason: str, close: bool = False):
        super().__init__(reason)
        self.close = close


def memcache_expiry(exptime: int, now: float) -> int:
    """An item expiry in epoch ms (0 = none) from a memcache exptime in seconds."""
    if exptime == 0:
        return 0
    expiry = exptime * 1000 if exptime >= RELATIVE_EXPTIME_LIMIT else int(now * 1000) + exptime * 1000
    if not -records.MAX_TIME <= expiry <= records.MAX_TIME:
        raise ClientError(f"bad exptime: {exptime} is out of range", close=True)
    return expiry


class GetRequest:
    """A get key `queue/opt/opt...` taken apart: the options may come in any order."""

    __slots__ = ("key", "name", "open", "close", "abort", "peek", "timeout")

    def __init__(self, key: bytes):
        self.key = key
        parts = key.split(b"/")
        self.name = parts[0].decode("latin-1")
        self.open = self.close = self.abort = self.peek = False
        self.timeout: int | None = None
        for option in parts[1:]:
            if option == b"open":
                self.open = True
            elif option == b"close":
                self.close = True
            elif option == b"abort":
                self.abort = True
            elif option == b"peek":
                self.peek = True
            elif option.startswith(b"t="):
                self.timeout = parse_int(option[2:], "timeout t=", close=True)
        if not self.name:
            raise ClientError("empty queue name", close=True)
        if self.peek and (self.open or self.close or self.abort):
            raise ClientError("peek cannot be combined with open, close or abort", close=True)
        if self.abort and (self.open or self.close):
            raise ClientError("abort cannot be combined with open or close", close=True)


# Digits that parse_int reads itself: a number below 10**18 (a native int, compiled).
MAX_PLAIN_DIGITS: Final = 18
ZERO: Final = 0x30  # ord("0"), a literal so that the compiled code holds it


def parse_int(token: bytes, what: str, close: bool = False) -> int:
    # Nearly every number of a request is a few plain digits: read here, compiled, that is a
    # twentieth of a call of int(). Anything else is read as int() reads it.
    length = len(token)
    if 0 < length <= MAX_PLAIN_DIGITS:
        value = 0
        index = 0
        while index < length:
            digit = token[index] - ZERO
            if digit < 0 or digit > 9:
                break
            value = value * 10 + digit
            index += 1
        else:
            return value
    try:
        return int(token)
    except ValueError:
        raise ClientError(f"bad {what}: {token.decode('latin-1')!r}", close=close) from None


class MemcacheProtocol(SessionConnection, Protocol):
    log: ClassVar[Logger] = Logger()

    def __init__(self, server: ServerContext):
        self.server = server
        self.collection = server.collection
        self.stats = server.stats
        self._max_line = server.config.max_line_length
        self._max_value = server.config.max_value_size
        self._buffer = bytearray()
        self._storage: tuple[list[bytes], int] | None = None
        self._commands: dict[bytes, Callable[[list[bytes]], None]] = {
            b"get": self._get,
            b"gets": self._get,
            b"monitor": self._monitor,
            b"confirm": self._confirm,
            b"delete": self._delete,
            b"flush": self._flush,
            b"flush_all": self._flush_all,
            b"flush_expired": self._flush_expired,
            b"flush_all_expired": self._flush_all_expired,
            b"stats": self._stats,
            b"dump_stats": self._dump_stats,
            b"version": self._version,
            b"reload": self._reload,
            b"shutdown": self._shutdown,
            b"quit": self._quit,
            b"status": self._status,
        }

    # Connection

    def _refuse_connection(self) -> None:
        self.transport.write(b"SERVER_ERROR too many connections\r\n")

    def _request_failed(self, error: BaseException) -> None:
        self._server_error(str(error))

    # Framing

    def _handle_next(self) -> bool:
        if self._storage is not None:
            tokens, length = self._storage
            if len(self._buffer) - self._position < length + 2:
                return False
            data = bytes(self._buffer[self._position:self._position + length])
            # Like Kestrel, skip the two bytes after the data without checking them.
            self._position += length + 2
            self._storage = None
            self._storage_command(tokens, data)
            return True
        line = self._next_line(self._max_line)
        if line is None:
            return False
        self._request(line)
        return True

    def _refuse_long_line(self, limit: int) -> None:
        self._refuse(ClientError(f"request line longer than {limit} bytes", close=True))

    def _refuse(self, error: ClientError) -> None:
        self._reply(b"CLIENT_ERROR %s\r\n" % str(error).encode("latin-1", "replace"))
        if error.close:
            self._close()

    # Requests

    def _request(self, line: bytes) -> None:
        tokens = line.split(b" ")
        self._answer(tokens[0].lower(), tokens, None)

    def _answer(self, command: bytes, tokens: list[bytes], data: bytes | None) -> None:
        """Run a request's handler, turning each kind of refusal into its reply."""
        # The idle timer restarts on whole requests only, so a client trickling bytes is idle.
        self.resetTimeout()
        try:
            self._run(command, tokens, data)
        except ClientError as error:
            self._refuse(error)
        # One name per clause: mypyc gives a name one type in a function.
        except InvalidQueueName as invalid:
            self._refuse(ClientError(str(invalid), close=True))
        except (Unavailable, QueueUnavailable) as unavailable:
            self._server_error(str(unavailable))
        except (ReadStillOpen, TooManyOpenReads) as refused:
            self.log.debug("refused read: {error}", error=refused)
            self._reply(b"ERROR\r\n")
            self._close()
        except Exception:
            self.log.failure("request {command} failed", command=command.decode("latin-1"))
            self._server_error("internal error")

    def _run(self, command: bytes, tokens: list[bytes], data: bytes | None) -> None:
        """
        Call the handler of a request line, or of a storage command whose `data` has come.
        Get and set are called directly, the others through the table: a direct call of a
        compiled method is much cheaper than one through a bound method.
        """
        if data is not None:
            if command == b"set":
                self._set(tokens, data)
            else:
                self._unsupported(tokens, data)
        elif command == b"get":
            self._get(tokens)
        elif command in STORAGE_COMMANDS:
            self._storage_header(tokens)
        else:
            self._commands.get(command, self._unknown)(tokens)

    def _unknown(self, tokens: list[bytes]) -> None:
        raise ClientError(f"unknown command: {tokens[0].decode('latin-1')!r}", close=True)

    def _server_error(self, reason: str) -> None:
        self._reply(b"SERVER_ERROR %s\r\n" % reason.encode("latin-1", "replace"))
        self._close()

    def _storage_header(self, tokens: list[bytes]) -> None:
        if len(tokens) < 5:
            raise ClientError("storage command needs <key> <flags> <exptime> <bytes>", close=True)
        length = parse_int(tokens[4], "byte count", close=True)
        if length < 0:
            raise ClientError("negative byte count", close=True)
        if length > self._max_value:
            raise ClientError(f"value of {length} bytes is larger than the limit of {self._max_value}", close=True)
        self._storage = (tokens, length)

    def _storage_command(self, tokens: list[bytes], data: bytes) -> None:
        self._answer(tokens[0].lower(), tokens, data)

    def _unsupported(self, tokens: list[bytes], data: bytes) -> None:
        raise ClientError(f"unsupported command: {tokens[0].decode('latin-1')!r}", close=True)

    def _set(self, tokens: list[bytes], data: bytes) -> None:
        name = tokens[1].decode("latin-1")
        parse_int(tokens[2], "flags")
        exptime = parse_int(tokens[3], "exptime", close=True)
        noreply = len(tokens) > 5 and tokens[5] == b"noreply"
        session = self.session
        assert session is not None
        stored = session.set(name, data, memcache_expiry(exptime, self.server.clock.seconds()))
        # Not isinstance(stored, Deferred): that is an ABC check, dear on every request.
        if not isinstance(stored, bool):
            self._wait_for(stored, partial(self._answer_set, noreply))
        elif not noreply:
            self._reply(STORED if stored else NOT_STORED)

    def _answer_set(self, noreply: bool, stored: bool) -> None:
        if not noreply:
            self._reply(STORED if stored else NOT_STORED)

    def _get(self, tokens: list[bytes]) -> None:
        if len(tokens) < 2 or not tokens[1]:
            raise ClientError("get needs a key")
        request = GetRequest(tokens[1])
        name = request.name
        if request.abort:
            self.session.abort_oldest(name)  # type: ignore[union-attr]
            self._reply(END)
            return
        if request.close:
            self.session.confirm_oldest(name)  # type: ignore[union-attr]
            if not request.open:
                # On a queue that fsyncs every write, END acknowledges a durable confirm.
                durable = self.collection.durability(name, fanout=False)
                if durable is None:
                    self._reply(END)
                else:
                    self._wait_for(durable, self._reply_end)
                return
        deadline = None
        if request.timeout:
            deadline = self.server.clock.seconds() + request.timeout / 1000
        session = self.session
        assert session is not None
        result = session.fetch(name, transaction=request.open, peek=request.peek, deadline=deadline)
        if result is None or isinstance(result, Item):
            self._reply_item(request.key, result)
        else:
            self._reply_item_later(request.key, result)

    def _reply_item_later(self, key: bytes, fetched: Deferred) -> None:
        # Apart from `_get`: compiled, a lambda there would cost every get, answered at once
        # or not, the allocation of its closure.
        self._wait_for(fetched, lambda item: self._reply_item(key, item))

    def _reply_end(self, _) -> None:
        self._reply(END)

    def _reply_item(self, key: bytes, item: Item | None) -> None:
        if item is None:
            self._reply(END)
        else:
            self._reply_value(key, item.data)

    def _reply_value(self, key: bytes, data: bytes) -> None:
        """A get's reply for an item's `data`: an envelope's body (an SQS message's), else the data."""
        data = body_of(data)
        # Three arguments, not *a list: compiled, a starred call is a generic one.
        self._reply(b"VALUE %s 0 %d\r\n" % (key, len(data)), data, VALUE_TAIL)

    def _monitor(self, tokens: list[bytes]) -> None:
        if len(tokens) < 3:
            raise ClientError("monitor needs <queue> <seconds> [max_items]")
        name = tokens[1].decode("latin-1")
        timeout = parse_int(tokens[2], "timeout")
        max_items = parse_int(tokens[3], "max_items") if len(tokens) > 3 and tokens[3] else None
        key = tokens[1]
        stream = self.session.monitor(name, timeout, max_items, lambda item: self._reply_value(key, item.data))  # type: ignore[union-attr]
        self._wait_for(stream, lambda _: self._reply(END))

    def _confirm(self, tokens: list[bytes]) -> None:
        if len(tokens) < 3:
            raise ClientError("confirm needs <queue> <count>")
        confirmed = self.session.confirm(tokens[1].decode("latin-1"), parse_int(tokens[2], "count"))  # type: ignore[union-attr]
        self._reply(END if confirmed else b"ERROR\r\n")

    def _queue_name(self, tokens: list[bytes], command: str) -> str:
        if len(tokens) < 2 or not tokens[1]:
            raise ClientError(f"{command} needs a queue name")
        return tokens[1].decode("latin-1")

    def _delete(self, tokens: list[bytes]) -> None:
        name = self._queue_name(tokens, "delete")
        self.session.check_writable("delete")  # type: ignore[union-attr]
        self.collection.delete(name)
        self._reply_unless_noreply(tokens[2:], b"DELETED\r\n")

    def _flush(self, tokens: list[bytes]) -> None:
        name = self._queue_name(tokens, "flush")
        self.session.check_writable("flush")  # type: ignore[union-attr]
        self.collection.flush(name)
        self._reply_unless_noreply(tokens[2:], END)

    def _flush_all(self, tokens: list[bytes]) -> None:
        self.session.check_writable("flush_all")  # type: ignore[union-attr]
        self.collection.flush_all()
        self._reply_unless_noreply(tokens[1:], FLUSH_ALL_REPLIES[self.server.config.memcache_flush_all_reply])

    def _reply_unless_noreply(self, options: list[bytes], reply: bytes) -> None:
        """
        As memcached does, a last option `noreply` (after the key, if any) asks for no reply
        (`delete KEY [0] noreply`, `flush_all [DELAY] noreply`): clients such as pymemcache
        send it by default and read a reply they did not ask for as the answer to their next
        request. An error is answered all the same.
        """
        if not options or options[-1] != b"noreply":
            self._reply(reply)

    def _flush_expired(self, tokens: list[bytes]) -> None:
        name = self._queue_name(tokens, "flush_expired")
        self.session.check_writable("flush_expired")  # type: ignore[union-attr]
        self._reply(b"%d\r\n" % self.collection.flush_expired(name))

    def _flush_all_expired(self, tokens: list[bytes]) -> None:
        self.session.check_writable("flush_all_expired")  # type: ignore[union-attr]
        self._reply(b"%d\r\n" % self.collection.flush_all_expired())

    def _stats(self, tokens: list[bytes]) -> None:
        """
        Kestrel's `stats` (doc/compatibility.md §1.8); `stats PREFIX` (ours) lists only the
        queues whose names start with PREFIX, and a listing cut short says by how many.
        """
        prefixes = [token.decode("latin-1").removesuffix(PREFIX_MARK) for token in tokens[1:2] if token]
        listing = by_name(self.collection, self.server.config.stats_queue_limit, prefixes=prefixes)
        lines = [f"STAT {key} {value}" for key, value in self.server.global_stats()]
        for name, stats in self.collection.queue_stats(listing.names):
            lines.extend(f"STAT queue_{name}_{key} {value}" for key, value in stats)
        if listing.omitted:
            lines.append(f"STAT {QUEUES_OMITTED} {listing.omitted}")
        lines.append("END\r\n")
        self._reply("\r\n".join(lines).encode("latin-1", "replace"))

    def _dump_stats(self, tokens: list[bytes]) -> None:
        """Kestrel's `dump_stats [QUEUE ...]` (§1.8); a `PREFIX*` among the names is ours."""
        names, prefixes = split_selectors(token.decode("latin-1") for token in tokens[1:] if token)
        listing = by_name(self.collection, self.server.config.stats_queue_limit, names, prefixes)
        lines = []
        for name, stats in self.collection.queue_stats(listing.names):
            lines.append(f"queue '{name}' {{")
            lines.extend(f"  {key}={value}" for key, value in stats)
            lines.append("}")
        if listing.omitted:
            lines.append(f"STAT {QUEUES_OMITTED} {listing.omitted}")
        lines.append("END\r\n")
        self._reply("\r\n".join(lines).encode("latin-1", "replace"))

    def _version(self, tokens: list[bytes]) -> None:
        self._reply(b"VERSION %s\r\n" % self.server.protocol_version.encode())

    def _reload(self, tokens: list[bytes]) -> None:
        try:
            self.server.reload()
        except (ConfigError, RuntimeError) as error:
            self.log.warn("reload failed: {error}", error=error)
            self._reply(b"SERVER_ERROR %s\r\n" % str(error).encode("latin-1", "replace"))
            return
        self._reply(b"Reloaded config.\r\n")

    def _shutdown(self, tokens: list[bytes]) -> None:
        self._close()
        self.server.shutdown()

    def _quit(self, tokens: list[bytes]) -> None:
        self._close()

    def _status(self, tokens: list[bytes]) -> None:
        status = self.server.status
        try:
            if len(tokens) < 2 or not tokens[1]:
                if not status.configured:
                    raise StatusNotConfigured()
                self._reply(status.current.name.encode() + b"\r\n")
            else:
                status.set(tokens[1].decode("latin-1"))
                self._reply(END)
        except StatusNotConfigured:
            self._reply(b"ERROR\r\n")
            self._close()
        except StatusError as refused:
            raise ClientError(str(refused), close=True) from None
        except OSError as failed:
            self.log.error("cannot save the server status: {error}", error=failed)
            self._reply(b"SERVER_ERROR cannot save the server status\r\n")


class MemcacheFactory(SessionFactory):
    protocol = MemcacheProtocol
