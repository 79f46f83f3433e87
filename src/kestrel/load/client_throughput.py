"""
Throughput of the blocking `kestrel.client.Client` (doc/benchmarks.md): threads put 64-byte
items through one client, then threads get them all back, against one fresh server and then a
fleet of three (each a `twistd kestrel` on an empty spool). Prints items/s and the client's
CPU time per item, which is what bounds it: one Python process, one GIL.

    python -m kestrel.load.client_throughput [--items 40000] [--threads 4]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from kestrel.client import Client
from kestrel.load.process import KestrelProcess, write_config

QUEUE = "client_throughput"
ITEM = b"x" * 64


def measure(client: Client, items: int, threads: int) -> dict[str, tuple[float, float]]:
    """items/s and client CPU µs per item, for the puts and then the gets."""

    def put(first: int) -> None:
        for _ in range(first, items, threads):
            client.put(QUEUE, ITEM)

    def get(_: int) -> None:
        while client.get(QUEUE) is not None:
            pass

    figures = {}
    for name, work in (("put", put), ("get", get)):
        started, cpu = time.perf_counter(), time.process_time()
        workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        figures[name] = (items / elapsed, 1e6 * (time.process_time() - cpu) / items)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=40000)
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args(argv)
    for count in (1, 3):
        servers = []
        try:
            for _ in range(count):
                directory = Path(tempfile.mkdtemp(prefix="kestrel-client-throughput-"))
                servers.append(KestrelProcess(directory, write_config(directory)).start())
            with Client([f"127.0.0.1:{server.memcache_port}" for server in servers]) as client:
                for name, (rate, cpu) in measure(client, options.items, options.threads).items():
                    print(f"{count} server(s), {name}: {rate:,.0f} items/s, client CPU {cpu:.1f} us/item", flush=True)
        finally:
            for server in servers:
                server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
