"""
The blocking client: plain sockets, safe to share between threads. Each call takes an idle
connection to its server from the pool (or opens one) and gives it back when done, so
threads never share a connection, and a reserved item keeps its connection until the block
that holds it ends.
"""

from __future__ import annotations

import socket

from kestrel.client import calls
from kestrel.client.base import ClientBase, Reservation, request_wait
from kestrel.client.calls import Answered, Dropped, Exchange, Outcome, Unreachable
from kestrel.client.fleet import server_address
from kestrel.client.protocol import ReplyReader, Request, UnexpectedReply

RECEIVE_BYTES = 64 * 1024


class SocketConnection:
    def __init__(self, sock: socket.socket):
        self.socket = sock
        self.reader = ReplyReader()

    @classmethod
    def open(cls, server: str, timeout: float) -> "SocketConnection":
        sock = socket.create_connection(server_address(server), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def alive(self) -> bool:
        """Not closed by the server while it sat idle: an idle connection has nothing to read."""
        self.socket.settimeout(0)  # with a timeout, Python would wait that long for a byte
        try:
            self.socket.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # end of file, or bytes nobody asked for

    def close(self) -> None:
        self.socket.close()

    def exchange(self, requests: tuple[Request, ...], timeout: float) -> Outcome:
        for request in requests:
            self.reader.expect(request)
        self.socket.settimeout(timeout)
        wire = memoryview(b"".join(request.wire for request in requests))
        sent = 0
        results = []
        try:
            while sent < len(wire):
                sent += self.socket.send(wire[sent:])
            while len(results) < len(requests):
                data = self.socket.recv(RECEIVE_BYTES)
                if not data:
                    raise ConnectionError("the server closed the connection")
                results.extend(self.reader.feed(data))
        except (OSError, UnexpectedReply) as error:
            return Unreachable(error) if sent == 0 else Dropped(error, results)
        return Answered(results)


class Client(ClientBase):
    """
    Client(servers=["host:port", ...]) — see ClientBase for the options and doc/fleet.md for
    how calls spread over the servers. Use it from any number of threads; `close()` (or leaving
    a `with` block) closes its idle connections.
    """

    def reserve(self, queue: str, timeout: float = 0) -> Reservation:
        """`with client.reserve(queue, timeout) as item:` confirms the item when the block ends normally."""
        return Reservation(self, queue, timeout)

    def close(self) -> None:
        self._release()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, call: calls.Call):
        return calls.run_blocking(call, self._exchange)

    def _exchange(self, action: Exchange) -> Outcome:
        connection = self._connection_for(action)
        if connection is None:
            try:
                connection = SocketConnection.open(action.server, self.connect_timeout)
            except OSError as error:
                return self._unreachable(action, error)
        outcome = connection.exchange(action.requests, self.reply_timeout + request_wait(action))
        return self._settle(action, connection, outcome)
