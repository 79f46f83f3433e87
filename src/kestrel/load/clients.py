"""
Asyncio clients for the three protocols a Kestrel server speaks, with one queue interface:

    put(queue, items) -> how many were stored
    take(queue, timeout_ms) -> an item (removed from the queue) or None
    take_many(queue, count, timeout_ms) -> up to `count` items in one round trip
    reliable_take(queue, timeout_ms) -> confirm the read held on `queue`, open the next item
    confirm_open(queue), abandon_reliable_take(queue, timeout_ms), flush(queue), version()
    finish() (confirms held reads, closes), abort() (drops the connection)

The memcache client also talks to plain memcached, which has no queues: there `take` is a
`get` that leaves the value in place, and the Kestrel options (`/t=`, `monitor`) are not sent.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import kestrel.protocols.thrift

KESTREL = "kestrel"
MEMCACHED = "memcached"
DEFAULT_PORTS = {"memcache": 22133, "text": 2222, "thrift": 2229}
QUEUE_STATS = ("items", "total_items", "bytes", "mem_items", "mem_bytes", "logsize")


class UnexpectedReply(Exception):
    def __init__(self, request: str, reply: bytes):
        super().__init__(f"unexpected reply to {request}: {reply[:80]!r}")


@dataclass(frozen=True)
class Server:
    kind: str
    version: str

    @property
    def has_queues(self) -> bool:
        return self.kind == KESTREL

    def as_json(self) -> dict:
        return {"kind": self.kind, "version": self.version}


class StreamClient:
    """A connection on asyncio streams; subclasses speak a protocol over it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, **options):
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, **options)

    def abort(self) -> None:
        self.writer.transport.abort()

    async def finish(self) -> None:
        self.writer.close()

    def _send_and_close(self, request: bytes) -> None:
        # close() flushes what is buffered first: the server reads the request, then the EOF.
        self.writer.write(request)
        self.writer.close()


class MemcacheClient(StreamClient):
    STORED = b"STORED\r\n"
    NOT_STORED = b"NOT_STORED\r\n"
    END = b"END\r\n"

    def __init__(self, reader, writer, queues: bool = True):
        super().__init__(reader, writer)
        self.queues = queues

    async def _line(self) -> bytes:
        return await self.reader.readuntil(b"\r\n")

    async def _request(self, request: bytes) -> bytes:
        self.writer.write(request)
        return await self._line()

    async def _value(self, request: str) -> bytes | None:
        """One VALUE block with its END, or None for a lone END."""
        header = await self._line()
        if header == self.END:
            return None
        if not header.startswith(b"VALUE "):
            raise UnexpectedReply(request, header)
        data = await self.reader.readexactly(int(header.split(b" ")[3]) + 2)
        end = await self._line()
        if end != self.END:
            raise UnexpectedReply(request, end)
        return data[:-2]

    async def put(self, queue: str, items: list[bytes]) -> int:
        key = queue.encode()
        self.writer.write(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(item), item) for item in items))
        stored = 0
        for _ in items:
            reply = await self._line()
            if reply == self.STORED:
                stored += 1
            elif reply != self.NOT_STORED:
                raise UnexpectedReply("set", reply)
        return stored

    def _key(self, queue: str, timeout_ms: int, options: str = "") -> bytes:
        if not self.queues:
            return queue.encode()
        return (queue + (f"/t={timeout_ms}" if timeout_ms else "") + options).encode()

    async def take(self, queue: str, timeout_ms: int = 0) -> bytes | None:
        self.writer.write(b"get %s\r\n" % self._key(queue, timeout_ms))
        return await self._value("get")

    async def take_many(self, queue: str, count: int, timeout_ms: int) -> list[bytes]:
        if not self.queues:
            self.writer.write(b"get %s\r\n" % queue.encode() * count)
            values = [await self._value("get") for _ in range(count)]
            return [value for value in values if value is not None]
        self.writer.write(b"monitor %s %d %d\r\n" % (queue.encode(), math.ceil(timeout_ms / 1000), count))
        items = []
        while (item := await self._value("monitor")) is not None:
            items.append(item)
        if items:
            reply = await self._request(b"confirm %s %d\r\n" % (queue.encode(), len(items)))
            if reply != self.END:
                raise UnexpectedReply("confirm", reply)
        return items

    async def reliable_take(self, queue: str, timeout_ms: int) -> bytes | None:
        self.writer.write(b"get %s\r\n" % self._key(queue, timeout_ms, "/close/open"))
        return await self._value("get/close/open")

    async def confirm_open(self, queue: str) -> None:
        reply = await self._request(b"get %s/close\r\n" % queue.encode())
        if reply != self.END:
            raise UnexpectedReply("get/close", reply)

    def abandon_reliable_take(self, queue: str, timeout_ms: int) -> None:
        self._send_and_close(b"get %s\r\n" % self._key(queue, timeout_ms, "/close/open"))

    async def flush(self, queue: str) -> None:
        if self.queues:
            reply = await self._request(b"flush %s\r\n" % queue.encode())
            expected = {self.END}
        else:
            reply = await self._request(b"delete %s\r\n" % queue.encode())
            expected = {b"DELETED\r\n", b"NOT_FOUND\r\n"}
        if reply not in expected:
            raise UnexpectedReply("flush", reply)

    async def stats(self) -> dict[str, str]:
        self.writer.write(b"stats\r\n")
        stats = {}
        while (line := await self._line()) != self.END:
            parts = line.decode("latin-1").split(" ", 2)
            if parts[0] != "STAT" or len(parts) != 3:
                raise UnexpectedReply("stats", line)
            stats[parts[1]] = parts[2].rstrip()
        return stats


class TextClient(StreamClient):
    """Kestrel's text protocol, where every `get` confirms what the connection held and opens the next item."""

    def __init__(self, reader, writer):
        super().__init__(reader, writer)
        self.holding: set[str] = set()

    async def _request(self, request: bytes) -> bytes:
        self.writer.write(request)
        return await self.reader.readuntil(b"\n")

    async def _number(self, request: bytes, name: str) -> int:
        reply = await self._request(request)
        if not reply.startswith(b"+"):
            raise UnexpectedReply(name, reply)
        return int(reply[1:])

    async def _item(self, request: bytes, name: str) -> bytes | None:
        reply = await self._request(request)
        if reply == b"*\n":
            return None
        if not reply.startswith(b":"):
            raise UnexpectedReply(name, reply)
        return reply[1:-1]

    async def put(self, queue: str, items: list[bytes]) -> int:
        return await self._number(b"put %s:\n%s\n\n" % (queue.encode(), b"\n".join(items)), "put")

    async def take(self, queue: str, timeout_ms: int = 0) -> bytes | None:
        item = await self._item(b"get %s %d\n" % (queue.encode(), timeout_ms), "get")
        if item is None:
            self.holding.discard(queue)
        else:
            self.holding.add(queue)
        return item

    reliable_take = take

    async def take_many(self, queue: str, count: int, timeout_ms: int) -> list[bytes]:
        # The text monitor streams up to the server's open-read limit; `count` cannot be sent.
        self.writer.write(b"monitor %s %d\n" % (queue.encode(), timeout_ms))
        self.holding.discard(queue)
        items = []
        while (reply := await self.reader.readuntil(b"\n")) != b"*\n":
            if not reply.startswith(b":"):
                raise UnexpectedReply("monitor", reply)
            items.append(reply[1:-1])
        if items:
            await self._number(b"confirm %s %d\n" % (queue.encode(), len(items)), "confirm")
        return items

    async def confirm_open(self, queue: str) -> None:
        if queue in self.holding:
            await self._number(b"confirm %s 1\n" % queue.encode(), "confirm")
            self.holding.discard(queue)

    def abandon_reliable_take(self, queue: str, timeout_ms: int) -> None:
        self._send_and_close(b"get %s %d\n" % (queue.encode(), timeout_ms))

    async def flush(self, queue: str) -> None:
        await self._number(b"flush %s\n" % queue.encode(), "flush")

    async def version(self) -> str:
        reply = await self._request(b"version\n")
        if not reply.startswith(b":"):
            raise UnexpectedReply("version", reply)
        return reply[1:].decode().strip()

    async def finish(self) -> None:
        for queue in list(self.holding):
            await self.confirm_open(queue)
        await super().finish()


@cache
def thrift_service():
    """The Kestrel service from the server's own IDL, loaded on first use."""
    import thriftpy2

    return thriftpy2.load(str(Path(kestrel.protocols.thrift.__file__).with_name("kestrel.thrift")), module_name="kestrel_thrift")


class ThriftClient:
    """Framed transport, binary protocol, as Kestrel's own Thrift clients."""

    def __init__(self, client):
        self.client = client

    @classmethod
    async def connect(cls, host: str, port: int):
        from thriftpy2.contrib.aio.protocol.binary import TAsyncBinaryProtocolFactory
        from thriftpy2.contrib.aio.rpc import make_client
        from thriftpy2.contrib.aio.transport.framed import TAsyncFramedTransportFactory

        client = await make_client(
            thrift_service().Kestrel,
            host,
            port,
            proto_factory=TAsyncBinaryProtocolFactory(),
            trans_factory=TAsyncFramedTransportFactory(),
            timeout=None,
        )
        return cls(client)

    async def put(self, queue: str, items: list[bytes]) -> int:
        return await self.client.put(queue, items, 0)

    async def take(self, queue: str, timeout_ms: int = 0) -> bytes | None:
        items = await self.client.get(queue, 1, timeout_ms, 0)
        return items[0].data if items else None

    async def take_many(self, queue: str, count: int, timeout_ms: int) -> list[bytes]:
        return [item.data for item in await self.client.get(queue, count, timeout_ms, 0)]

    async def open(self, queue: str, count: int, timeout_ms: int, auto_abort_ms: int) -> list[tuple[int, bytes]]:
        """Reliable reads: (transaction id, item) pairs, aborted by the server after `auto_abort_ms`."""
        return [(item.id, item.data) for item in await self.client.get(queue, count, timeout_ms, auto_abort_ms)]

    async def confirm(self, queue: str, ids: set[int]) -> int:
        return await self.client.confirm(queue, ids)

    async def flush(self, queue: str) -> None:
        await self.client.flush_queue(queue)

    async def version(self) -> str:
        return await self.client.get_version()

    def abort(self) -> None:
        self.client.close()

    async def finish(self) -> None:
        self.client.close()


async def connect(protocol: str, host: str, port: int, server: Server):
    if protocol == "memcache":
        return await MemcacheClient.connect(host, port, queues=server.has_queues)
    if protocol == "text":
        return await TextClient.connect(host, port)
    return await ThriftClient.connect(host, port)


async def probe(protocol: str, host: str, port: int, kind: str = "auto") -> Server:
    """
    Which server answers. Only a Kestrel speaks text or Thrift; on memcache, Kestrel's `stats`
    has queue counters that memcached's lacks.
    """
    if protocol == "memcache":
        client = await MemcacheClient.connect(host, port)
        stats = await client.stats()
        await client.finish()
        if kind == "auto":
            kind = KESTREL if "queue_creates" in stats else MEMCACHED
        return Server(kind, stats.get("version", "unknown"))
    client = await (TextClient if protocol == "text" else ThriftClient).connect(host, port)
    version = await client.version()
    await client.finish()
    return Server(KESTREL if kind == "auto" else kind, version)


async def flush_queues(protocol: str, host: str, port: int, server: Server, queues: list[str]) -> None:
    client = await connect(protocol, host, port, server)
    for queue in queues:
        await client.flush(queue)
    await client.finish()


class QueueStatsProbe:
    """A blocking memcache connection that reads the queues' counters, for the `-M` lines."""

    TIMEOUT = 5.0

    def __init__(self, host: str, port: int, queues: list[str]):
        self.queues = queues
        self.socket = socket.create_connection((host, port), timeout=self.TIMEOUT)
        self.stream = self.socket.makefile("rb")

    def line(self) -> str:
        self.socket.sendall(b"stats\r\n")
        stats = {}
        while (line := self.stream.readline()) not in (b"END\r\n", b""):
            _, key, value = line.decode("latin-1").rstrip().split(" ", 2)
            stats[key] = value
        return "  ".join(
            f"{queue}: " + " ".join(f"{name}={stats.get(f'queue_{queue}_{name}', '-')}" for name in QUEUE_STATS)
            for queue in self.queues
        )

    def close(self) -> None:
        self.stream.close()
        self.socket.close()
