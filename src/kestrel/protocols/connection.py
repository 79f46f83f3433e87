"""
What every client connection (memcache, text, Thrift) does around its requests: a session
for the connection's life, the connection limit, the idle timeout, replies in order (those
produced while one burst of input is parsed go out in one write), answers that wait,
holding the requests behind them, and replies that wait for a client that does not read
them, holding its requests likewise.

The connection is its transport's streaming producer. Twisted pauses it when more than its
write buffer (64 KB) waits to be sent and resumes it when all of it has gone; one pass over
buffered requests also stops to write its replies once they pass `max_output_buffer`. While
paused the connection neither handles nor reads requests, so what a client that does not
read can make the server hold is bounded by about one buffer plus one reply.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

from mypy_extensions import mypyc_attr
from twisted.internet.defer import CancelledError, Deferred, FirstError
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from kestrel.protocols.sending import no_delay, send_reply, socket_of
from kestrel.server import ServerContext
from kestrel.session import Session


@mypyc_attr(allow_interpreted_subclasses=True)
class SessionFactory(Factory):
    """A listener's factory: each connection is a `protocol` on the shared server."""

    # Twisted's "Starting factory <...>" line says nothing that the listener's own line does not.
    noisy = False

    def __init__(self, server: ServerContext):
        self.server = server

    def buildProtocol(self, addr) -> Any:
        protocol = self.protocol(self.server)  # type: ignore[misc]
        protocol.factory = self
        return protocol


# The text and Thrift protocols, which are not compiled, mix it in too.
@mypyc_attr(allow_interpreted_subclasses=True)
class SessionConnection(TimeoutMixin):
    """
    A mixin for a Protocol. The protocol sets `server` before the connection is made and
    implements `_handle_next` (handle the next buffered request; False when none is
    complete), `_refuse_connection` (what to write before closing a connection over the
    limit) and `_request_failed` (the reply to an answer that failed); a line protocol
    also `_refuse_long_line`.
    """

    log: ClassVar[Logger] = Logger()

    server: ServerContext
    # Set by the Protocol this is mixed into.
    transport: Any
    # False where open reads outlive the connection (Thrift). A ClassVar, so that compiled
    # code reads it from the (possibly interpreted) subclass, not from an instance slot.
    track_open_reads: ClassVar[bool] = True
    session: Session | None = None
    _closing = False
    _waiting = False
    # Why reading is paused: an answer waits with too much input behind it; the transport
    # holds more output than it buffers. Reading resumes when neither holds.
    _input_held = False
    _output_full = False
    _reading_paused = False
    # Whether the connection is its transport's producer.
    _producing = False
    # The replies of the parse pass under way and their size; None outside a pass.
    _output: list[bytes] | None = None
    _output_bytes = 0
    # How much of `self._buffer` the requests handled in this pass took up.
    _position = 0
    # The transport's socket, for replies sent straight to it (kestrel.protocols.sending).
    _socket: Any = None
    # Whether an idle timeout is set (client_timeout, and no answer waits).
    _timing_out = False

    def connectionMade(self) -> None:
        if self.server.at_connection_limit():
            self.log.warn("refusing a connection: {limit} connections are open", limit=self.server.config.max_connections)
            self._closing = True
            self._refuse_connection()
            self.transport.loseConnection()
            return
        no_delay(self.transport)
        self._socket = socket_of(self.transport)
        self.session = Session(self.server, self.track_open_reads)
        self._max_output = self.server.config.max_output_buffer
        self.transport.registerProducer(self, True)
        self._producing = True
        # The idle timer runs on the server's clock.
        self.callLater = self.server.clock.callLater  # type: ignore[method-assign, assignment]
        self.setTimeout(self.server.config.client_timeout)

    def setTimeout(self, period: float | None) -> Any:
        self._timing_out = period is not None
        return TimeoutMixin.setTimeout(self, period)

    def resetTimeout(self) -> None:
        # Called for every request: without a timeout, skip the call into TimeoutMixin.
        if self._timing_out:
            TimeoutMixin.resetTimeout(self)

    def connectionLost(self, reason=None) -> None:
        # Requests still buffered behind a waiting one must not run for a client that left.
        self._closing = True
        self.setTimeout(None)
        self._producing = False
        self._release()
        if self.session is not None:
            self.session.finish()

    def _release(self) -> None:
        """Drop what is buffered for a connection that is gone."""
        self._buffer = bytearray()

    def timeoutConnection(self) -> None:
        self.log.info("closing idle connection from {peer}", peer=self.transport.getPeer())
        if self._output_full:
            # A client that does not read its replies would keep a closing connection open.
            self._closing = True
            self.transport.abortConnection()
        else:
            self._close()

    def _lose_connection(self) -> None:
        """Close once the replies written so far are out."""
        # A transport resumes its paused producer when its buffer drains, instead of closing.
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def _refuse_connection(self) -> None:
        raise NotImplementedError

    def _handle_next(self) -> bool:
        raise NotImplementedError

    def _refuse_long_line(self, limit: int) -> None:
        raise NotImplementedError

    def _request_failed(self, error: BaseException) -> None:
        raise NotImplementedError

    # Requests

    def _process(self) -> None:
        """Handle buffered requests until one must wait, none is complete, or the connection closes."""
        if not self._begin_pass():
            return
        try:
            while not self._waiting and not self._closing and not self._output_full and self._handle_next():
                if self._output_bytes > self._max_output:
                    # Write what the pass has produced; the transport may pause it.
                    output, self._output = self._output, []
                    self._write(output or [], self._output_bytes)
                    self._output_bytes = 0
        finally:
            if self._position:
                del self._buffer[:self._position]
                self._position = 0
            self._end_pass()

    def _next_line(self, limit: int) -> bytes | None:
        """
        The next whole line of the buffer without its line end, or None if it has not all
        arrived. A line longer than `limit` (not counting "\r\n") is refused instead.
        """
        buffer = self._buffer
        end = buffer.find(b"\n", self._position)
        if end < 0:
            # Its "\r" may already be in the buffer.
            if len(buffer) - self._position > limit + 1:
                self._refuse_long_line(limit)
            return None
        line = bytes(buffer[self._position:end])
        self._position = end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limit:
            self._refuse_long_line(limit)
            return None
        return line

    # Replies

    def _begin_pass(self) -> bool:
        """
        Start a pass over buffered requests; False when one is under way already (an answer
        that was ready at once, inside the pass that asked for it: that pass goes on).
        """
        if self._output is not None:
            return False
        self._output = []
        return True

    def _end_pass(self) -> None:
        output, self._output = self._output, None
        if output:
            self._write(output, self._output_bytes)
        self._output_bytes = 0
        if self._closing:
            self._lose_connection()

    def _reply(self, *chunks: bytes) -> None:
        # A loop, not sum(map(len, chunks)): compiled, that is two builtin lookups and calls.
        size = 0
        for chunk in chunks:
            size += len(chunk)
        if self._output is not None:
            self._output.extend(chunks)
            self._output_bytes += size
        else:
            self._write(chunks, size)

    def _write(self, chunks: Sequence[bytes], size: int) -> None:
        self.server.stats.bytes_written += size
        send_reply(self.transport, chunks, self._socket)

    def _close(self) -> None:
        """Close once the replies written so far are out; later requests are ignored."""
        self._closing = True
        if self._output is None:
            self._lose_connection()

    # Replies the client does not read: the transport calls these

    def pauseProducing(self) -> None:
        """More output waits to be sent than the transport buffers: handle and read no requests."""
        self._output_full = True
        self._update_reading()

    def resumeProducing(self) -> None:
        """Every reply has gone out: go on with the requests that wait."""
        self._output_full = False
        if self._closing:
            return
        self._update_reading()
        if not self._waiting:
            self._process()

    def stopProducing(self) -> None:
        """The connection is lost; connectionLost follows."""
        self._closing = True

    # Answers that wait

    def _wait_for(self, result: Deferred, reply: Callable[[Any], None]) -> None:
        """Hold later requests until `result` fires, then `reply` with its value and go on."""
        self._waiting = True
        self.setTimeout(None)
        result.addCallbacks(self._answered, self._failed, callbackArgs=(reply,))

    def _answered(self, value, reply: Callable[[Any], None]) -> None:
        reply(value)
        self._resume()

    def _failed(self, failure: Failure) -> None:
        error = self._failure_of(failure)
        if error is None:
            return
        self._request_failed(error)
        self._resume()

    def _failure_of(self, failure: Failure) -> BaseException | None:
        """The error a failed answer reports, logged; None if it was cancelled (its connection is gone)."""
        if failure.check(CancelledError):
            return None
        if failure.check(FirstError):
            failure = failure.value.subFailure
        self.log.failure("request failed", failure)
        return failure.value

    def _resume(self) -> None:
        self._waiting = False
        if self._closing:
            return
        self.setTimeout(self.server.config.client_timeout)
        self._input_held = False
        self._update_reading()
        self._process()

    def dataReceived(self, data: bytes) -> None:
        """
        Buffer input in `self._buffer` (a bytearray) for `_process`. While an answer waits,
        only buffer: a client pipelining more than a request's worth without reading its
        replies is not read until it catches up.
        """
        self.server.stats.bytes_read += len(data)
        if self._closing:
            return
        self._buffer += data
        if self._waiting:
            config = self.server.config
            self._hold_input(len(self._buffer), config.max_value_size + config.max_line_length)
            return
        self._process()

    def _hold_input(self, backlog: int, limit: int) -> None:
        """While an answer waits: stop reading a client that pipelines more than `limit` bytes."""
        if not self._input_held and backlog > limit:
            self._input_held = True
            self._update_reading()

    def _update_reading(self) -> None:
        """Read while neither a waiting answer nor unsent output holds the connection back."""
        paused = self._input_held or self._output_full
        if paused != self._reading_paused and not self._closing:
            self._reading_paused = paused
            if paused:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()
