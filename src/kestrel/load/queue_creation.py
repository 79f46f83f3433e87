"""
Queue-creation benchmark: how fast new queues are made over memcache, and what they cost.

It starts a real `twistd kestrel` on an empty spool, creates N queues of one item each
over one connection (sets pipelined, a block of them per write), and reports the rate of
the first and the last block, the server's resident memory per queue, its open descriptors
at the end and the most seen after any block (`--max-open-journals` caps its open journal
files), and how long a restart with those queues takes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from kestrel.load.process import KestrelProcess, write_config
from kestrel.load.replay import resident_memory

QUEUE_ITEMS = re.compile(r"queue_q[0-9]+_items")


def create_queues(
    server: KestrelProcess, queues: int, block: int, item: bytes, after_block: Callable[[], None] = lambda: None,
) -> list[float]:
    """
    Seconds taken by each block of `block` new queues, one write of pipelined sets per block;
    `after_block` is called once each block is STORED.
    """
    client = server.client()
    seconds = []
    for first in range(0, queues, block):
        names = range(first, min(first + block, queues))
        request = b"".join(b"set q%d 0 0 %d\r\n%s\r\n" % (number, len(item), item) for number in names)
        began = time.perf_counter()
        client.send(request)
        for _ in names:
            reply = client.line()
            if reply != b"STORED":
                raise RuntimeError(f"set answered {reply!r}")
        seconds.append(time.perf_counter() - began)
        after_block()
    client.close()
    return seconds


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run(queues: int, block: int, item_size: int, directory: Path, max_open_journals: int | None = None) -> dict:
    config = write_config(directory, "" if max_open_journals is None else f"max_open_journals = {max_open_journals}")
    server = KestrelProcess(directory, config).start()
    pid = server.process.pid
    rss_before = resident_memory(pid)
    most_descriptors = [open_descriptors(pid)]
    seconds = create_queues(
        server, queues, block, b"x" * item_size, lambda: most_descriptors.append(open_descriptors(pid)),
    )
    rss_after, descriptors = resident_memory(pid), open_descriptors(pid)
    server.stop()
    began = time.monotonic()
    server.start()
    restart_seconds = time.monotonic() - began
    stats = server.client().stats()
    server.stop()
    return {
        "queues": queues,
        "block": block,
        "first_block_per_second": round(len(range(0, min(block, queues))) / seconds[0]),
        "last_block_per_second": round((queues - block * (len(seconds) - 1)) / seconds[-1]),
        "all_per_second": round(queues / sum(seconds)),
        "rss_mb_before": round(rss_before / 2**20, 1),
        "rss_mb_after": round(rss_after / 2**20, 1),
        "rss_kb_per_queue": round((rss_after - rss_before) / queues / 1024, 2),
        "open_descriptors": descriptors,
        "most_open_descriptors": max(most_descriptors),
        "restart_seconds": round(restart_seconds, 2),
        # Above stats_queue_limit, `stats` lists no queue and counts them as left out.
        "queues_after_restart": sum(1 for key in stats if QUEUE_ITEMS.fullmatch(key)) + int(stats.get("queues_omitted", 0)),
        "items_after_restart": int(stats["curr_items"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kestrel load queue-creation", description=__doc__.strip().splitlines()[0])
    parser.add_argument("-Q", "--queues", type=int, default=5000)
    parser.add_argument("--block", type=int, default=500, help="new queues per pipelined write")
    parser.add_argument("-b", "--bytes", type=int, default=64, help="bytes per item")
    parser.add_argument("--max-open-journals", type=int, help="the server's max_open_journals (default: its own)")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print one JSON result")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        result = run(options.queues, options.block, options.bytes, Path(work), options.max_open_journals)
    if options.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0 if result["queues_after_restart"] == result["items_after_restart"] == options.queues else 1


if __name__ == "__main__":
    sys.exit(main())
