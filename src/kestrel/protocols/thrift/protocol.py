"""
Kestrel's Thrift protocol, port 2229: framed transport, strict binary protocol.

The framing is ours: a 4-byte big-endian length, then the message. Frames wait in one
bytearray (Twisted's Int32StringReceiver copies its buffer whole on every read, which is
quadratic for a large frame arriving in pieces, so it is not used). A frame longer than
`max_value_size` is not buffered: its bytes are skipped as they arrive, and it is
answered with a PROTOCOL_ERROR application exception as soon as its header is in, after
which the connection goes on. Each frame is checked by `scan` before thriftpy2
decodes it; one that fails is answered with a PROTOCOL_ERROR, or, when not even its
header is readable, the connection is closed.

Calls are answered in order. A call whose answer has to wait (a get with a timeout)
holds the frames behind it. A client may first upgrade to Finagle's protocol by calling
`__can__finagle__trace__v3__`; from its answer on, each of its frames starts with a request
header, whose client id the queues' whitelists check, and each reply with an empty response
header (doc/compatibility.md §2.3). An unknown method, a refusal (server status, bad queue
name) or a failing handler is answered with an application exception; the connection
stays up.
"""

from __future__ import annotations

from collections import deque
from struct import Struct

from thriftpy2.thrift import TApplicationException, TMessageType
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from kestrel.collection import InvalidQueueName
from kestrel.protocols.connection import SessionConnection, SessionFactory
from kestrel.protocols.thrift.codec import (
    EMPTY_STRUCT,
    METHODS,
    UPGRADE_METHOD,
    Method,
    decode_arguments,
    encode_exception,
    encode_reply,
    encode_upgrade_reply,
    read_request_header,
)
from kestrel.protocols.thrift.handler import ThriftHandler, ThriftRefusal
from kestrel.protocols.thrift.handles import TransactionHandles
from kestrel.protocols.thrift.scan import (
    VERSION_1,
    VERSION_MASK,
    MalformedFrame,
    MessageHeader,
    read_header,
    scan_message,
)
from kestrel.server import ServerContext
from kestrel.session import SessionError
from kestrel.status import StatusError

# Refusals that the client is told about in the exception's message.
REFUSALS = (ThriftRefusal, SessionError, InvalidQueueName, StatusError)

# How much of an oversized frame is kept to read its header from.
HEADER_BYTES = 512

_length = Struct("!I")


class OversizedFrame:
    """A frame skipped for its length: what is kept of its start, to answer it by name."""

    __slots__ = ("length", "head", "answered")

    def __init__(self, length: int):
        self.length = length
        self.head = bytearray()
        self.answered = False

    def header_is_in(self) -> bool:
        """True once the head holds the message header, or all of the frame's start that is kept."""
        if len(self.head) >= min(HEADER_BYTES, self.length):
            return True
        try:
            read_header(bytes(self.head))
        except MalformedFrame:
            return False
        return True


class ThriftProtocol(SessionConnection, Protocol):
    log = Logger()
    track_open_reads = False

    def __init__(self, server: ServerContext, handles: TransactionHandles):
        self.server = server
        self.handles = handles
        self._max_frame = server.config.max_value_size
        self.handler: ThriftHandler | None = None
        self._buffer = bytearray()
        self._skipping: OversizedFrame | None = None
        self._skip_left = 0
        # Frames (bytes) and skipped frames, in arrival order, and the bytes they hold.
        self._frames: deque[bytes | OversizedFrame] = deque()
        self._backlog = 0
        # The call whose answer is awaited.
        self._awaited: tuple[MessageHeader, Method] | None = None
        # Set once the client has upgraded to Finagle's protocol: a header before each message.
        self._upgraded = False

    # Connection

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.session is not None:
            self.handler = ThriftHandler(self.server, self.session, self.handles)

    def _refuse_connection(self) -> None:
        """Thrift has nothing to say before a call: the connection just closes."""

    def _release(self) -> None:
        super()._release()
        self._frames.clear()
        self._backlog = 0
        self._skipping = None

    # Framing

    def dataReceived(self, data: bytes) -> None:
        self.server.stats.bytes_read += len(data)
        if self._closing:
            return
        buffer = self._buffer
        buffer += data
        position = 0
        while not self._closing:
            if self._skipping is not None:
                position = self._skip(buffer, position)
                if self._skipping is not None:
                    break
                continue
            if len(buffer) - position < 4:
                break
            length = _length.unpack_from(buffer, position)[0]
            if length > self._max_frame:
                position += 4
                self._frame_too_long(length)
                continue
            end = position + 4 + length
            if len(buffer) < end:
                break
            frame = bytes(buffer[position + 4:end])
            position = end
            self._frame_received(frame)
        del buffer[:position]
        if self._waiting:
            self._hold_input(self._backlog + len(buffer), self._max_frame)

    def _frame_too_long(self, length: int) -> None:
        self.log.warn(
            "skipping a Thrift frame of {length} bytes from {peer}: the limit is {limit}",
            length=length, peer=self.transport.getPeer(), limit=self._max_frame,
        )
        self._skipping = OversizedFrame(length)
        self._skip_left = length

    def _skip(self, buffer: bytearray, position: int) -> int:
        """Pass over the bytes of an oversized frame; returns the position after those consumed."""
        skipped = self._skipping
        taken = min(self._skip_left, len(buffer) - position)
        kept = len(skipped.head)
        if kept < HEADER_BYTES:
            skipped.head += buffer[position:position + min(taken, HEADER_BYTES - kept)]
            if len(skipped.head) >= 4 and kept < 4 and _length.unpack_from(skipped.head)[0] & VERSION_MASK != VERSION_1:
                # Not Thrift at all (an HTTP request reads as a huge frame): nothing to skip to.
                self.log.warn("closing a connection from {peer} that does not speak Thrift", peer=self.transport.getPeer())
                self._close()
                return position + taken
        if not skipped.answered and skipped.header_is_in():
            # Answer now, in order: a client need not send gigabytes to hear why they are refused.
            skipped.answered = True
            self._frames.append(skipped)
            self._process()
        self._skip_left -= taken
        if self._skip_left == 0:
            self._skipping = None
            self.resetTimeout()
        return position + taken

    def _frame_received(self, frame: bytes) -> None:
        # The idle timer restarts on whole frames only, so a client trickling bytes is idle.
        self.resetTimeout()
        self._frames.append(frame)
        self._backlog += len(frame)
        self._process()

    def _handle_next(self) -> bool:
        if not self._frames:
            return False
        entry = self._frames.popleft()
        if isinstance(entry, OversizedFrame):
            self._refuse_oversized(entry)
        else:
            self._backlog -= len(entry)
            self._call(entry)
        return True

    def _send(self, message: bytes) -> None:
        if self._upgraded:
            self._reply(_length.pack(len(EMPTY_STRUCT) + len(message)), EMPTY_STRUCT, message)
        else:
            self._reply(_length.pack(len(message)), message)

    # Calls

    def _call(self, frame: bytes) -> None:
        try:
            if self._upgraded:
                self.session.client_id, start = read_request_header(frame)
                frame = frame[start:]
            header = scan_message(frame)
        except MalformedFrame as error:
            self._refuse_malformed(error)
            return
        if header.name == UPGRADE_METHOD and header.type == TMessageType.CALL and not self._upgraded:
            self._send(encode_upgrade_reply(header))
            self._upgraded = True
            return
        if header.type != TMessageType.CALL:
            self._send(encode_exception(header, TApplicationException.INVALID_MESSAGE_TYPE, f"message type {header.type} is not a call"))
            return
        method = METHODS.get(header.name)
        if method is None:
            name = header.name.decode("utf-8", "replace")
            self._send(encode_exception(header, TApplicationException.UNKNOWN_METHOD, f"unknown method {name!r}"))
            return
        try:
            args = decode_arguments(frame, method)
        except Exception as error:
            self.log.warn("cannot decode a {method} call: {error}", method=method.name, error=error)
            self._send(encode_exception(header, TApplicationException.PROTOCOL_ERROR, f"cannot decode the arguments: {error}"))
            return
        try:
            result = getattr(self.handler, method.name)(*args)
        except REFUSALS as error:
            self._send_failure(header, method, error)
            return
        except Exception as error:
            self.log.failure("Thrift call {method} failed", method=method.name)
            self._send_failure(header, method, error)
            return
        if isinstance(result, Deferred):
            self._awaited = (header, method)
            self._wait_for(result, self._answer_awaited)
        else:
            self._send_result(header, method, result)

    def _send_result(self, header: MessageHeader, method: Method, value) -> None:
        try:
            message = encode_reply(header, method, value)
        except Exception as error:
            self.log.failure("cannot encode the result of {method}", method=method.name)
            self._send_failure(header, method, error)
            return
        self._send(message)

    def _send_failure(self, header: MessageHeader, method: Method, error: BaseException) -> None:
        """Answer with an application exception; whatever is not a refusal has been logged."""
        if isinstance(error, REFUSALS):
            message = str(error)
        else:
            message = f"internal error in {method.name}: {error}"
        self._send(encode_exception(header, TApplicationException.INTERNAL_ERROR, message))

    def _answer_awaited(self, value) -> None:
        header, method = self._awaited
        self._awaited = None
        self._send_result(header, method, value)

    def _request_failed(self, error: BaseException) -> None:
        header, method = self._awaited
        self._awaited = None
        self._send_failure(header, method, error)

    def _refuse_malformed(self, error: MalformedFrame) -> None:
        if error.header is None:
            self.log.warn("closing a Thrift connection from {peer}: {error}", peer=self.transport.getPeer(), error=error)
            self._close()
            return
        self.log.warn("refusing a malformed Thrift frame from {peer}: {error}", peer=self.transport.getPeer(), error=error)
        self._send(encode_exception(error.header, TApplicationException.PROTOCOL_ERROR, f"malformed message: {error}"))

    def _refuse_oversized(self, skipped: OversizedFrame) -> None:
        try:
            header = read_header(bytes(skipped.head))[0]
        except MalformedFrame:
            header = MessageHeader(b"", TMessageType.CALL, 0)
        message = f"a frame of {skipped.length} bytes is larger than the limit of {self._max_frame}"
        self._send(encode_exception(header, TApplicationException.PROTOCOL_ERROR, message))


class ThriftFactory(SessionFactory):
    """The Thrift listener's factory; it holds the server-wide transaction handles."""

    def __init__(self, server: ServerContext):
        super().__init__(server)
        self.handles = TransactionHandles(server.collection, server.clock)

    def startFactory(self) -> None:
        self.handles.start()

    def stopFactory(self) -> None:
        self.handles.stop()

    def buildProtocol(self, addr) -> ThriftProtocol:
        return ThriftProtocol(self.server, self.handles)
