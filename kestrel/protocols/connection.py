"""
What every client connection (memcache, text, Thrift) does around its requests: a session
for the connection's life, the connection limit, the idle timeout, replies in order (those
produced while one burst of input is parsed go out in one write), and answers that wait,
holding the requests behind them.
"""

from __future__ import annotations

from typing import Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred, FirstError
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from kestrel.protocols.sending import send_reply
from kestrel.server import KestrelServer
from kestrel.session import Session


class SessionConnection(TimeoutMixin):
    """
    A mixin for a Protocol. The protocol sets `server` before the connection is made and
    implements `_handle_next` (handle the next buffered request; False when none is
    complete), `_refuse_connection` (what to write before closing a connection over the
    limit) and `_request_failed` (the reply to an answer that failed); a line protocol
    also `_refuse_long_line`.
    """

    log = Logger()

    server: KestrelServer
    # False where open reads outlive the connection (Thrift).
    track_open_reads = True
    session: Session | None = None
    _closing = False
    _waiting = False
    _paused = False
    # The replies of the parse pass under way; None outside a pass.
    _output: list[bytes] | None = None
    # How much of `self._buffer` the requests handled in this pass took up.
    _position = 0

    def connectionMade(self) -> None:
        if self.server.at_connection_limit():
            self.log.warn("refusing a connection: {limit} connections are open", limit=self.server.config.max_connections)
            self._closing = True
            self._refuse_connection()
            self.transport.loseConnection()
            return
        self.session = Session(self.server, self.track_open_reads)
        # The idle timer runs on the server's clock.
        self.callLater = self.server.clock.callLater
        self.setTimeout(self.server.config.client_timeout)

    def connectionLost(self, reason=None) -> None:
        # Requests still buffered behind a waiting one must not run for a client that left.
        self._closing = True
        self.setTimeout(None)
        if self.session is not None:
            self.session.finish()

    def timeoutConnection(self) -> None:
        self.log.info("closing idle connection from {peer}", peer=self.transport.getPeer())
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
            while not self._waiting and not self._closing and self._handle_next():
                pass
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
            self._write(output)
        if self._closing:
            self.transport.loseConnection()

    def _reply(self, *chunks: bytes) -> None:
        if self._output is not None:
            self._output.extend(chunks)
        else:
            self._write(chunks)

    def _write(self, chunks: Sequence[bytes]) -> None:
        self.server.stats.bytes_written += sum(map(len, chunks))
        send_reply(self.transport, chunks)

    def _close(self) -> None:
        """Close once the replies written so far are out; later requests are ignored."""
        self._closing = True
        if self._output is None:
            self.transport.loseConnection()

    # Answers that wait

    def _wait_for(self, result: Deferred, reply: Callable[[object], None]) -> None:
        """Hold later requests until `result` fires, then `reply` with its value and go on."""
        self._waiting = True
        self.setTimeout(None)
        result.addCallbacks(self._answered, self._failed, callbackArgs=(reply,))

    def _answered(self, value, reply: Callable[[object], None]) -> None:
        reply(value)
        self._resume()

    def _failed(self, failure: Failure) -> None:
        # A cancelled answer belongs to a connection that is gone.
        if failure.check(CancelledError):
            return
        if failure.check(FirstError):
            failure = failure.value.subFailure
        self.log.failure("request failed", failure)
        self._request_failed(failure.value)
        self._resume()

    def _resume(self) -> None:
        self._waiting = False
        if self._closing:
            return
        self.setTimeout(self.server.config.client_timeout)
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
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
        if not self._paused and backlog > limit:
            self._paused = True
            self.transport.pauseProducing()
