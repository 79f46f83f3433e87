"""
Kestrel's text protocol, port 2222.

A request is a line ending in `\\n` (a `\\r` before it is dropped): a command, lower-cased,
and its arguments split on single spaces. A line that ends with `:` starts a multi-line
request whose lines up to an empty line are items (`put <queue> [expiry_ms]:`). Replies
are one line each: `+<count>`, `-<error>`, `:<item>`, or `*` for no item.

Items are stored exactly as sent, byte for byte (Kestrel re-encoded them from ISO-8859-1
to UTF-8); an item cannot hold a line feed. The items of a put are added as their lines
arrive, so a put of any length holds one line in memory, and its reply counts them at
the empty line. A put waits for the journal writer as a memcache `set` does: while the
writer is behind, it takes no further item line until the last one is written. On a
queue that fsyncs every write, the item lines that arrived together are written in one
batch, and later ones wait for it. Reads are reliable: `get` confirms what the connection
read before on that queue and opens the next item; closing the connection aborts what is
open.

Requests on a connection are answered in order, as on memcache: a reply that has to
wait (a get with a timeout, a monitor, a write to a queue that fsyncs) holds the
requests behind it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.collection import InvalidQueueName
from kestrel.config import validate_queue_name
from kestrel.envelope import body_of
from kestrel.journal import records
from kestrel.protocols.connection import SessionConnection, SessionFactory
from kestrel.queue import Item, QueueUnavailable
from kestrel.server import ServerContext
from kestrel.session import SessionError
from kestrel.status import StatusError, StatusNotConfigured

NO_ITEM = b"*\n"
DONE = b"+0\n"


class TextError(Exception):
    """A refused request: reply `-<message>`; the connection stays open."""


def count_reply(count: int) -> bytes:
    return b"+%d\n" % count


def error_reply(message: str) -> bytes:
    return b"-%s\n" % message.encode("latin-1", "replace")


def item_reply(data: bytes) -> bytes:
    return b":%s\n" % data


def internal_error(error: BaseException) -> bytes:
    return error_reply(f"Internal error: {error}")


def split_request(line: bytes) -> tuple[bytes, list[bytes]]:
    """A request line as (command, arguments): split on single spaces, the command lower-cased."""
    tokens = line.split(b" ")
    return tokens[0].lower(), tokens[1:]


def parse_ms(token: bytes, message: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise TextError(message) from None


class PutRequest:
    """
    A put whose item lines are still arriving. A put refused at its first line, or whose
    write failed, skips the rest.
    """

    __slots__ = ("name", "expiry", "refusal", "added", "writes", "last_write", "group_commit")

    def __init__(self, name: str, expiry: int, refusal: bytes | None = None):
        self.name = name
        self.expiry = expiry
        self.refusal = refusal
        self.added = 0
        # Item writes the writer has yet to finish, and the last of them: the writer finishes
        # them in order, so when the last is done, all are.
        self.writes = 0
        self.last_write: Deferred | None = None
        # Whether the queue fsyncs every write (known at the first write that waits).
        self.group_commit: bool | None = None


class TextProtocol(SessionConnection, Protocol):
    log = Logger()

    def __init__(self, server: ServerContext):
        self.server = server
        self.collection = server.collection
        # Item lines may be as long as a value; other lines as long as a request line.
        self._max_item = server.config.max_value_size
        self._max_line = server.config.max_line_length
        self._buffer = bytearray()
        # The multi-line request being read: a PutRequest, or the command line of another
        # command whose item lines are read and ignored.
        self._put: PutRequest | None = None
        self._deferred_command: bytes | None = None
        self._commands = {
            b"put": self._put_line,
            b"get": self._get,
            b"peek": self._peek,
            b"monitor": self._monitor,
            b"confirm": self._confirm,
            b"flush": self._flush,
            b"delete": self._delete,
            b"status": self._status,
            b"version": self._version,
            b"shutdown": self._shutdown,
            b"quit": self._quit,
        }

    # Connection

    def _refuse_connection(self) -> None:
        self.transport.write(error_reply("Too many connections."))

    # Framing

    def _handle_next(self) -> bool:
        in_items = self._put is not None or self._deferred_command is not None
        line = self._next_line(self._max_item if in_items else self._max_line)
        if line is None:
            if self._put is not None and not self._closing:
                # Item lines that arrive later wait for the writes of those taken so far.
                self._hold_put(self._put)
            return False
        # The idle timer restarts on whole lines only, so a client trickling bytes is idle.
        self.resetTimeout()
        if in_items:
            self._item_line(line)
        elif line.endswith(b":"):
            self._start_items(line[:-1])
        else:
            self._request(line)
        return True

    def _refuse_long_line(self, limit: int) -> None:
        # Nothing after an unfinished line can be told apart from it: close.
        self._reply(error_reply(f"Line longer than {limit} bytes."))
        self._close()

    def _request_failed(self, error: BaseException) -> None:
        self._reply(internal_error(error))

    # Requests

    def _request(self, line: bytes) -> None:
        command, args = split_request(line)
        handler = self._commands.get(command)
        if handler is None:
            self._reply(error_reply(f"Unknown command: {command.decode('latin-1')}"))
            return
        self._answer(handler, args)

    def _answer(self, handler, *args) -> None:
        """Run a request's handler, turning each kind of refusal into its `-` reply."""
        try:
            handler(*args)
        except (TextError, InvalidQueueName, SessionError, StatusError, QueueUnavailable) as error:
            self._reply(error_reply(str(error)))
        except Exception:
            self.log.failure("request {handler} failed", handler=handler.__name__)
            self._reply(error_reply("Internal error."))

    def _queue_name(self, args: list[bytes], message: str = "Queue name required.") -> str:
        if not args or not args[0]:
            raise TextError(message)
        return args[0].decode("latin-1")

    def _deadline(self, args: list[bytes]) -> float | None:
        """The deadline (clock seconds) of an optional `timeout_ms` argument; None for no wait."""
        if len(args) < 2 or not args[1]:
            return None
        timeout = parse_ms(args[1], "Error parsing timeout.")
        return self.server.clock.seconds() + timeout / 1000 if timeout > 0 else None

    def _reply_item(self, item: Item | None) -> None:
        self._reply(NO_ITEM if item is None else item_reply(body_of(item.data)))

    def _get(self, args: list[bytes]) -> None:
        self._read(args, peek=False)

    def _peek(self, args: list[bytes]) -> None:
        self._read(args, peek=True)

    def _read(self, args: list[bytes], peek: bool) -> None:
        name = self._queue_name(args)
        deadline = self._deadline(args)
        self.session.confirm_all(name)
        result = self.session.fetch(name, transaction=not peek, peek=peek, deadline=deadline)
        if isinstance(result, Deferred):
            self._wait_for(result, self._reply_item)
        else:
            self._reply_item(result)

    def _monitor(self, args: list[bytes]) -> None:
        if len(args) < 2 or not args[0] or not args[1]:
            raise TextError("Queue name & timeout required.")
        name = self._queue_name(args)
        timeout = parse_ms(args[1], "Error parsing timeout.")
        self.session.confirm_all(name)
        stream = self.session.monitor(name, max(timeout, 0) / 1000, None, self._reply_item)
        self._wait_for(stream, self._end_stream)

    def _end_stream(self, _) -> None:
        self._reply(NO_ITEM)

    def _confirm(self, args: list[bytes]) -> None:
        if len(args) < 2 or not args[0] or not args[1]:
            raise TextError("Queue name & count required.")
        count = parse_ms(args[1], "Error parsing count.")
        if not self.session.confirm(self._queue_name(args), count):
            raise TextError("Not that many transactions open.")
        self._reply(count_reply(count))

    def _flush(self, args: list[bytes]) -> None:
        name = self._queue_name(args)
        self.session.check_writable("flush")
        self.collection.flush(name)
        self._reply(DONE)

    def _delete(self, args: list[bytes]) -> None:
        name = self._queue_name(args)
        self.session.check_writable("delete")
        self.collection.delete(name)
        self._reply(DONE)

    def _status(self, args: list[bytes]) -> None:
        status = self.server.status
        if args and args[0]:
            try:
                status.set(args[0].decode("latin-1"))
            except OSError as error:
                self.log.error("cannot save the server status: {error}", error=error)
                raise TextError("Cannot save the server status.") from None
            self._reply(DONE)
        elif not status.configured:
            raise StatusNotConfigured()
        else:
            self._reply(item_reply(status.current.name.encode()))

    def _version(self, args: list[bytes]) -> None:
        self._reply(item_reply(self.server.protocol_version.encode()))

    def _shutdown(self, args: list[bytes]) -> None:
        self._reply(DONE)
        self.server.shutdown()

    def _quit(self, args: list[bytes]) -> None:
        self._close()

    # Multi-line requests

    def _start_items(self, line: bytes) -> None:
        command, args = split_request(line)
        if command == b"put":
            self._put = self._start_put(args)
        else:
            # Kestrel reads the items of any command; only put has a use for them.
            self._deferred_command = line

    def _item_line(self, line: bytes) -> None:
        if line:
            if self._put is not None:
                self._add_item(self._put, line)
            return
        put, self._put = self._put, None
        command, self._deferred_command = self._deferred_command, None
        if put is not None:
            self._finish_put(put)
        else:
            self._request(command)

    def _put_line(self, args: list[bytes]) -> None:
        """A put without a colon: no items."""
        self._finish_put(self._start_put(args))

    def _start_put(self, args: list[bytes]) -> PutRequest:
        name = args[0].decode("latin-1") if args else ""
        try:
            if not name:
                raise TextError("Queue name required.")
            validate_queue_name(name)
            expiry = 0
            if len(args) > 1 and args[1]:
                expiry_ms = parse_ms(args[1], "Error parsing expiration time.")
                if expiry_ms > 0:
                    expiry = int(self.server.clock.seconds() * 1000) + expiry_ms
                if expiry > records.MAX_TIME:
                    raise TextError("Error parsing expiration time.")
            self.session.check_writable("put")
        except (TextError, ValueError, SessionError) as error:
            return PutRequest(name, 0, error_reply(str(error)))
        return PutRequest(name, expiry)

    def _add_item(self, put: PutRequest, data: bytes) -> None:
        if put.refusal is not None:
            return
        try:
            stored = self.session.set(put.name, data, put.expiry)
        except (InvalidQueueName, SessionError, QueueUnavailable) as error:
            put.refusal = error_reply(str(error))
            return
        except Exception:
            # Item lines are not requests of their own, so they need their own guard.
            self.log.failure("put to {queue} failed", queue=put.name)
            put.refusal = error_reply("Internal error.")
            return
        # A refused item (the queue is full) is not counted, and the put goes on.
        if stored:
            put.added += 1
            if isinstance(stored, Deferred):
                self._track_write(put, stored)

    def _track_write(self, put: PutRequest, written: Deferred) -> None:
        """
        An item write that waits for the writer. On a queue that fsyncs every write, the
        put goes on with the lines at hand, to be written in one batch; otherwise the writer
        is behind, and the put holds now.
        """
        put.writes += 1
        put.last_write = written
        written.addCallbacks(self._item_written, self._item_failed, callbackArgs=(put,), errbackArgs=(put,))
        if put.group_commit is None:
            put.group_commit = self.collection.queue_config(put.name).sync_journal == 0
        if not put.group_commit:
            self._hold_put(put)

    def _item_written(self, _, put: PutRequest) -> None:
        put.writes -= 1
        if not put.writes:
            put.last_write = None

    def _item_failed(self, failure: Failure, put: PutRequest) -> None:
        self._item_written(None, put)
        error = self._failure_of(failure)
        if error is not None and put.refusal is None:
            put.refusal = internal_error(error)

    def _hold_put(self, put: PutRequest) -> None:
        """Take no further line until the put's writes are done."""
        if put.last_write is not None:
            self._wait_for(put.last_write, lambda _: None)

    def _finish_put(self, put: PutRequest) -> None:
        if put.refusal is None and put.last_write is not None:
            # Acknowledged once its items are written; a write that fails refuses it.
            self._wait_for(put.last_write, lambda _: self._answer_put(put))
        else:
            self._answer_put(put)

    def _answer_put(self, put: PutRequest) -> None:
        self._reply(count_reply(put.added) if put.refusal is None else put.refusal)


class TextFactory(SessionFactory):
    protocol = TextProtocol
