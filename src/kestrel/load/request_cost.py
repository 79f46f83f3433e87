"""
What a memcache request costs txkestrel's own Python, without sockets or a reactor: a
MemcacheProtocol on a memory transport, with the real session, collection, queue and journal
(a writer that writes in line), fed db's requests (a 64-byte set, then a get) one per
dataReceived, as `db` sends them. What this leaves out -- the reactor, the socket calls, the
writer thread -- is what `kestrel.load.floor` measures (issue 11, doc/benchmarks.md).

    python -m kestrel.load.request_cost [--requests 100000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from kestrel.collection import QueueCollection
from kestrel.config import ServerConfig
from kestrel.journal.writer import JournalWriter
from kestrel.protocols.memcache import MemcacheProtocol
from kestrel.server import ServerContext

SET = b"set db_bench 0 0 64\r\n" + b"x" * 64 + b"\r\n"
GET = b"get db_bench\r\n"
TURN = 100  # request pairs per reactor turn: the clock moves and the replies are read


def feed(protocol: MemcacheProtocol, transport: StringTransport, clock: Clock, pairs: int) -> None:
    for pair in range(pairs):
        protocol.dataReceived(SET)
        protocol.dataReceived(GET)
        if pair % TURN == 0:
            transport.clear()
            clock.advance(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="print the functions that take the most time")
    options = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="kestrel-request-cost-")
    try:
        clock = Clock()
        writer = JournalWriter(clock, runner=maybeDeferred)
        writer.startService()
        config = ServerConfig(queue_path=directory)
        collection = QueueCollection(config, writer, clock)
        collection.load()
        protocol, transport = MemcacheProtocol(ServerContext(config, collection, clock)), StringTransport()
        protocol.makeConnection(transport)
        pairs = options.requests // 2
        feed(protocol, transport, clock, 1000)  # warm up
        started = time.perf_counter()
        feed(protocol, transport, clock, pairs)
        elapsed = time.perf_counter() - started
        print(f"{elapsed / (2 * pairs) * 1e6:.2f} us per request ({2 * pairs} requests, a set and a get in turn)")
        if options.profile:
            profile = cProfile.Profile()
            profile.runcall(feed, protocol, transport, clock, pairs)
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
