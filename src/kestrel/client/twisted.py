"""
The Twisted client: the same calls, each returning a Deferred; `reserve` is an async context
manager for coroutines run with `Deferred.fromCoroutine` (or `ensureDeferred`):

    async def work(client):
        async with client.reserve("jobs", timeout=5) as item:
            ...
    Deferred.fromCoroutine(work(client))
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ConnectError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from kestrel.client import calls
from kestrel.client.base import AsyncReservation, ClientBase, request_wait
from kestrel.client.calls import Answered, Dropped, Exchange, Outcome, Unreachable
from kestrel.client.fleet import server_address
from kestrel.client.protocol import ReplyReader, Request, Result, UnexpectedReply


class ReplyProtocol(Protocol):
    """One connection: one exchange at a time, its Deferred fired with the Outcome."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._replies = ReplyReader()
        self._waiting: Deferred | None = None
        self._expected = 0
        self._results: list[Result] = []
        self._timer = None
        self._lost = False
        self._on_lost: list[Deferred] = []

    def alive(self) -> bool:
        return not self._lost

    def close(self) -> None:
        self.transport.loseConnection()

    def lost(self) -> Deferred:
        """Fires once the connection is gone."""
        if self._lost:
            return succeed(None)
        waiting = Deferred()
        self._on_lost.append(waiting)
        return waiting

    def exchange(self, requests: tuple[Request, ...], timeout: float) -> Deferred:
        if self._lost:
            return succeed(Unreachable(ConnectionError("the connection closed before the request went out")))
        for request in requests:
            self._replies.expect(request)
        self._waiting = Deferred()
        self._expected = len(requests)
        self._results = []
        self._timer = self._clock.callLater(timeout, self._timed_out)
        self.transport.write(b"".join(request.wire for request in requests))
        return self._waiting

    def dataReceived(self, data: bytes) -> None:
        try:
            self._results.extend(self._replies.feed(data))
        except UnexpectedReply as error:
            self._end(Dropped(error, self._results))
            self.transport.abortConnection()
            return
        if self._waiting is not None and len(self._results) >= self._expected:
            self._end(Answered(self._results))

    def connectionLost(self, reason: Failure) -> None:
        self._lost = True
        if self._waiting is not None:
            self._end(Dropped(reason.value, self._results))
        waiting, self._on_lost = self._on_lost, []
        for lost in waiting:
            lost.callback(None)

    def _timed_out(self) -> None:
        self._timer = None
        self._end(Dropped(TimeoutError("no reply in time"), self._results))
        self.transport.abortConnection()

    def _end(self, outcome: Outcome) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(outcome)


class Client(ClientBase):
    """
    Client(servers=["host:port", ...], reactor=reactor): every call returns a Deferred. See
    ClientBase for the options; `close()` returns a Deferred that fires once the idle
    connections are gone.
    """

    def __init__(self, servers=None, *, reactor: IReactorTCP | None = None, **options):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        super().__init__(servers, clock=reactor.seconds, **options)

    def reserve(self, queue: str, timeout: float = 0) -> AsyncReservation:
        """`async with client.reserve(queue, timeout) as item:` in a coroutine run by Deferred.fromCoroutine."""
        return AsyncReservation(self, queue, timeout)

    def close(self) -> Deferred:
        return DeferredList([connection.lost() for connection in self._release()])

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def _run(self, call: calls.Call) -> Deferred:
        return Deferred.fromCoroutine(calls.run_async(call, self._exchange))

    async def _exchange(self, action: Exchange) -> Outcome:
        connection = self._connection_for(action)
        if connection is None:
            host, port = server_address(action.server)
            endpoint_type = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
            endpoint = endpoint_type(self._reactor, host, port, timeout=self.connect_timeout)
            try:
                connection = await connectProtocol(endpoint, ReplyProtocol(self._reactor))
            except ConnectError as error:
                return self._unreachable(action, error)
        outcome = await connection.exchange(action.requests, self.reply_timeout + request_wait(action))
        return self._settle(action, connection, outcome)
