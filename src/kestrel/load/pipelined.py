"""
Pipelined memcache sets and gets on one connection: requests written `per_write` at a time,
each batch's replies read in full before the next batch is written.

The client is meant to cost the least beside the server it measures: a blocking socket, the
batch's bytes built once, and replies counted with `bytes.count` on each received chunk rather
than parsed. `kestrel.load.versus_darner` runs it; by hand, against a server already running:

    python -m kestrel.load.pipelined -p 22133 sets -b 1024 -w 200 -n 20000
    python -m kestrel.load.pipelined -p 22133 gets -w 200 -n 20000
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

STORED = b"STORED\r\n"
END = b"END\r\n"
RECEIVE_BYTES = 1 << 20
TIMEOUT = 30.0


class Occurrences:
    """
    Counts a pattern in a stream of chunks. The last `len(pattern) - 1` bytes are carried to
    the next chunk, so an occurrence split across two recv calls is counted once.
    """

    def __init__(self, pattern: bytes):
        self.pattern = pattern
        self.carried = len(pattern) - 1
        self.tail = b""
        self.count = 0

    def feed(self, chunk: bytes) -> None:
        # An occurrence inside the window between the tail and the chunk's start straddles the
        # two: the tail and the window's chunk part are each too short to hold one alone.
        self.count += (self.tail + chunk[: self.carried]).count(self.pattern) + chunk.count(self.pattern)
        self.tail = (self.tail + chunk)[-self.carried :] if len(chunk) < self.carried else chunk[-self.carried :]


def connect(host: str, port: int) -> socket.socket:
    connection = socket.create_connection((host, port), timeout=TIMEOUT)
    # The last segment of a batch must not wait for the ACK of the ones before it: the
    # client's own Nagle delay would be measured as the server's.
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def receive(connection: socket.socket) -> bytes:
    chunk = connection.recv(RECEIVE_BYTES)
    if not chunk:
        raise ConnectionError("the server closed the connection in the middle of a batch")
    return chunk


def batches(items: int, per_write: int) -> int:
    if items <= 0 or per_write <= 0 or items % per_write:
        raise ValueError(f"{items} items are not a whole number of batches of {per_write}")
    return items // per_write


def pipelined_sets(host: str, port: int, queue: str, item_size: int, per_write: int, items: int) -> float:
    """Sets `items` items of `item_size` filler bytes; returns items per second. Any reply but STORED raises."""
    request = b"set %s 0 0 %d\r\n%s\r\n" % (queue.encode(), item_size, b"x" * item_size)
    batch = request * per_write
    expected = STORED * per_write
    with connect(host, port) as connection:
        began = time.perf_counter()
        for _ in range(batches(items, per_write)):
            connection.sendall(batch)
            # Every reply to a set is one line: the batch is answered at its per_write-th line feed.
            chunks = []
            lines = 0
            while lines < per_write:
                chunk = receive(connection)
                chunks.append(chunk)
                lines += chunk.count(b"\n")
            replies = b"".join(chunks)
            if replies != expected:
                raise RuntimeError(f"{per_write} sets were not all STORED: {replies[:200]!r}")
        elapsed = time.perf_counter() - began
    return items / elapsed


def pipelined_gets(host: str, port: int, queue: str, per_write: int, items: int) -> float:
    """
    Gets `items` items (plain `get`, no transaction); returns items per second. The items must
    be filler without line feeds (as `pipelined_sets` writes them): a reply with an item then
    has three lines, and a get that finds the queue empty (a bare END, one line) raises.
    """
    batch = b"get %s\r\n" % queue.encode() * per_write
    with connect(host, port) as connection:
        began = time.perf_counter()
        for _ in range(batches(items, per_write)):
            connection.sendall(batch)
            ends = Occurrences(END)
            lines = 0
            while ends.count < per_write:
                chunk = receive(connection)
                ends.feed(chunk)
                lines += chunk.count(b"\n")
            if lines != 3 * per_write:
                raise RuntimeError(f"{(3 * per_write - lines) // 2} of {per_write} gets found {queue} empty")
        elapsed = time.perf_counter() - began
    return items / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kestrel.load.pipelined", description=__doc__.strip().splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("-q", "--queue", default="pipelined")
    parser.add_argument("-w", "--per-write", type=int, default=200)
    parser.add_argument("-n", "--items", type=int, default=20000)
    parser.add_argument("-b", "--item-size", type=int, default=1024, help="item size of sets")
    parser.add_argument("operation", choices=["sets", "gets"])
    options = parser.parse_args(argv)
    if options.operation == "sets":
        rate = pipelined_sets(options.host, options.port, options.queue, options.item_size, options.per_write, options.items)
    else:
        rate = pipelined_gets(options.host, options.port, options.queue, options.per_write, options.items)
    print(f"{options.items} {options.operation}, {options.per_write} per write: {rate:,.0f} items/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
