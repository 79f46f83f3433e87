"""
The asyncio client: the same calls as the blocking one, as coroutines, on asyncio streams.
Concurrent tasks each take their own connection from the pool, as threads do.
"""

from __future__ import annotations

import asyncio
import socket

from kestrel.client import calls
from kestrel.client.base import AsyncReservation, ClientBase, request_wait
from kestrel.client.blocking import RECEIVE_BYTES
from kestrel.client.calls import Answered, Dropped, Exchange, Outcome, Unreachable
from kestrel.client.fleet import server_address
from kestrel.client.protocol import ReplyReader, Request, UnexpectedReply


class StreamConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.replies = ReplyReader()

    @classmethod
    async def open(cls, server: str, timeout: float) -> "StreamConnection":
        host, port = server_address(server)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def alive(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, requests: tuple[Request, ...], timeout: float) -> Outcome:
        for request in requests:
            self.replies.expect(request)
        if self.writer.is_closing():
            return Unreachable(ConnectionError("the connection closed before the request went out"))
        results = []
        try:
            async with asyncio.timeout(timeout):
                self.writer.write(b"".join(request.wire for request in requests))
                await self.writer.drain()
                while len(results) < len(requests):
                    data = await self.reader.read(RECEIVE_BYTES)
                    if not data:
                        raise ConnectionError("the server closed the connection")
                    results.extend(self.replies.feed(data))
        except (OSError, UnexpectedReply, TimeoutError) as error:
            return Dropped(error, results)
        return Answered(results)


class AsyncClient(ClientBase):
    """
    AsyncClient(servers=["host:port", ...]): every call is a coroutine; `reserve` is an async
    context manager; `await client.close()`, or `async with AsyncClient(...) as client:`.
    """

    def reserve(self, queue: str, timeout: float = 0) -> AsyncReservation:
        """`async with client.reserve(queue, timeout) as item:` confirms the item when the block ends normally."""
        return AsyncReservation(self, queue, timeout)

    async def close(self) -> None:
        self._release()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def _run(self, call: calls.Call):
        return calls.run_async(call, self._exchange)

    async def _exchange(self, action: Exchange) -> Outcome:
        connection = self._connection_for(action)
        if connection is None:
            try:
                connection = await StreamConnection.open(action.server, self.connect_timeout)
            except (OSError, TimeoutError) as error:
                return self._unreachable(action, error)
        outcome = await connection.exchange(action.requests, self.reply_timeout + request_wait(action))
        return self._settle(action, connection, outcome)
