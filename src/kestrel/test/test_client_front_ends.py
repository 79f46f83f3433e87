"""
The three client front ends over their I/O: the blocking Client and AsyncClient against a fake
server on loopback, the Twisted Client on twisted.internet.testing's memory reactor.

The fake (FakeKestrel) keeps one FIFO per queue and answers `set`, `get` (with `open`,
`close`, `abort`), `delete`, `stats` and `dump_stats`. It does not: wait on `t=`, tie open
reads to a connection, refuse by status, or check what it is sent; the acceptance tests
(test_fleet.py) run real servers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import defaultdict, deque

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from kestrel.client import AsyncClient, Client, ConfirmFailed, NoServerAvailable, WriteOutcomeUnknown
from kestrel.client import twisted as twisted_client


class FakeKestrel:
    """What the fake server answers; `drop_after` names a request (line prefix) that gets no reply but a closed connection."""

    def __init__(self):
        self.queues: dict[str, deque[bytes]] = defaultdict(deque)
        self.requests: list[bytes] = []
        self.drop_after: bytes | None = None
        self.open_reads: dict[str, bytes] = {}

    @staticmethod
    def take_request(buffer: bytes) -> bytes | None:
        """The first whole request in the buffer: a line, and for `set` its data."""
        end = buffer.find(b"\r\n")
        if end < 0:
            return None
        words = buffer[:end].split(b" ")
        if words[0] == b"set":
            end += int(words[4]) + 2
        return buffer[: end + 2] if len(buffer) >= end + 2 else None

    def answer(self, data: bytes) -> bytes | None:
        """The reply to one request, or None to drop the connection."""
        line, _, payload = data.partition(b"\r\n")
        self.requests.append(line)
        if self.drop_after is not None and line.startswith(self.drop_after):
            return None
        words = line.split(b" ")
        if words[0] == b"set":
            self.queues[words[1].decode()].append(payload[: int(words[4])])
            return b"STORED\r\n"
        if words[0] == b"get":
            name, *options = words[1].decode().split("/")
            if "close" in options:
                self.open_reads.pop(name, None)
                return b"END\r\n"
            if "abort" in options:
                self.queues[name].appendleft(self.open_reads.pop(name))
                return b"END\r\n"
            if not self.queues[name]:
                return b"END\r\n"
            item = self.queues[name][0] if "peek" in options else self.queues[name].popleft()
            if "open" in options:
                self.open_reads[name] = item
            return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (words[1], len(item), item)
        if words[0] == b"delete":
            self.queues.pop(words[1].decode(), None)
            return b"DELETED\r\n"
        if words[0] == b"stats":
            return b"STAT uptime 5\r\nEND\r\n"
        return b"queue 'jobs' {\r\n  items=%d\r\n}\r\nEND\r\n" % len(self.queues["jobs"])  # dump_stats


@pytest.fixture
def fake():
    """FakeKestrel on a loopback port, a thread per connection; `fake.address`."""
    server = FakeKestrel()
    listener = socket.create_server(("127.0.0.1", 0))
    server.address = f"127.0.0.1:{listener.getsockname()[1]}"
    server.connections = []

    def serve(connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while data := connection.recv(65536):
                buffer += data
                while (request := server.take_request(buffer)) is not None:
                    buffer = buffer[len(request):]
                    reply = server.answer(request)
                    if reply is None:
                        return
                    connection.sendall(reply)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            server.connections.append(connection)
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server
    listener.close()


def test_blocking_client_puts_gets_and_reserves(fake):
    with Client([fake.address]) as client:
        client.put("jobs", b"one")
        client.put("jobs", b"two")
        client.put("jobs", b"three")
        assert client.peek("jobs") == b"one"
        assert client.get("jobs") == b"one"
        with client.reserve("jobs") as item:
            assert item == b"two"
        with pytest.raises(KeyError):
            with client.reserve("jobs") as item:
                raise KeyError(item)
        assert fake.requests[-2:] == [b"get jobs/open", b"get jobs/abort"]
        assert client.get("jobs") == b"three"
        assert client.get("jobs") is None
        stats = client.stats()[fake.address]
        assert stats.stats == {"uptime": 5} and stats.queues == {"jobs": {"items": 0}}
        client.delete("jobs")
    assert len(fake.connections) == 1  # one connection served every call in turn


def test_blocking_client_write_dropped_after_it_went_out_is_unknown(fake):
    fake.drop_after = b"set"
    with Client([fake.address]) as client, pytest.raises(WriteOutcomeUnknown):
        client.put("jobs", b"one")
    assert fake.requests == [b"set jobs 0 0 3"]  # and never sent again


def test_blocking_client_confirm_on_a_dead_connection_fails(fake):
    fake.drop_after = b"get jobs/close"
    with Client([fake.address]) as client:
        client.put("jobs", b"one")
        with pytest.raises(ConfirmFailed):
            with client.reserve("jobs") as item:
                assert item == b"one"


def test_blocking_client_replaces_a_pooled_connection_the_server_closed(fake):
    with Client([fake.address]) as client:
        client.put("jobs", b"one")
        fake.connections[0].shutdown(socket.SHUT_RDWR)
        client.put("jobs", b"two")  # not a WriteOutcomeUnknown: the dead connection was never used
    assert list(fake.queues["jobs"]) == [b"one", b"two"]


def test_blocking_client_without_a_reachable_server_says_so():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
        with Client([address]) as client, pytest.raises(NoServerAvailable):
            client.put("jobs", b"x")


@pytest.mark.parametrize("spec", ["zk:2181", "zk:2181/"])
def test_a_zookeeper_fleet_needs_a_prefix(spec):
    with pytest.raises(ValueError, match="expected host:port"):
        Client(zookeeper=spec)


def test_asyncio_client_on_the_same_fake(fake):
    async def run() -> None:
        async with AsyncClient([fake.address]) as client:
            await client.put_many("jobs", [b"one", b"two"])
            async with client.reserve("jobs", timeout=0) as item:
                assert item == b"one"
            assert await client.get("jobs") == b"two"
            fake.drop_after = b"set"
            with pytest.raises(WriteOutcomeUnknown):
                await client.put("jobs", b"three")

    asyncio.run(run())
    assert fake.requests[-3:] == [b"get jobs/close", b"get jobs", b"set jobs 0 0 5"]


# Twisted, on a memory reactor: the test plays the server on a StringTransport.


def connect(reactor: MemoryReactorClock) -> tuple[twisted_client.ReplyProtocol, StringTransport]:
    """Complete the client's last connection attempt; its protocol and transport."""
    host, port, factory, timeout, _ = reactor.tcpClients[-1]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_twisted_client_returns_deferreds():
    reactor = MemoryReactorClock()
    client = twisted_client.Client(["127.0.0.1:22133"], reactor=reactor)
    stored = client.put("jobs", b"one")
    protocol, transport = connect(reactor)
    assert transport.value() == b"set jobs 0 0 3\r\none\r\n"
    protocol.dataReceived(b"STO")
    assert not stored.called
    protocol.dataReceived(b"RED\r\n")
    assert stored.result is None
    transport.clear()
    got = client.get("jobs")
    assert transport.value() == b"get jobs\r\n"  # the pooled connection
    protocol.dataReceived(b"VALUE jobs 0 3\r\none\r\nEND\r\n")
    assert got.result == b"one"


def test_twisted_client_write_lost_after_it_went_out_is_unknown():
    reactor = MemoryReactorClock()
    client = twisted_client.Client(["127.0.0.1:22133"], reactor=reactor, reply_timeout=5)
    stored = client.put("jobs", b"one")
    protocol, transport = connect(reactor)
    reactor.advance(5)  # no reply in time: the connection is given up
    assert transport.disconnecting or transport.disconnected
    failures = []
    stored.addErrback(failures.append)
    assert failures[0].check(WriteOutcomeUnknown)


def test_twisted_client_reserves_in_a_coroutine():
    from twisted.internet.defer import Deferred

    reactor = MemoryReactorClock()
    client = twisted_client.Client(["127.0.0.1:22133"], reactor=reactor)

    async def work() -> bytes:
        async with client.reserve("jobs", timeout=1) as item:
            return item

    done = Deferred.fromCoroutine(work())
    protocol, transport = connect(reactor)
    assert transport.value() == b"get jobs/open/t=1000\r\n"
    transport.clear()
    protocol.dataReceived(b"VALUE jobs/open/t=1000 0 2\r\nhi\r\nEND\r\n")
    assert transport.value() == b"get jobs/close\r\n"
    protocol.dataReceived(b"END\r\n")
    assert done.result == b"hi"
