"""
Queue-creation benchmark: how fast new queues are made over memcache, and what they cost.

It starts a real `twistd kestrel` on an empty spool (SQS listener on), creates N queues of
one item each over one connection (sets pipelined, a block of them per write), and reports
the rate of the first and the last block and of the first and the last `--window` queues,
the server's resident memory per queue, its open descriptors at the end and the most seen
after any block (`--max-open-journals` caps its open journal files), how long a restart with
those queues takes and what it then holds, and how long listing them takes: every queue by
SQS ListQueues pages of 1,000 (boto3), one page of a name prefix, and `kestrel stats PREFIX*`
(the command line, a process of its own, and the admin call it makes), and how long the
server takes to stop. Issue 15's "a million queues" (doc/benchmarks.md):

    python -m kestrel.load.queue_creation -Q 1000000 --block 1000 --pin --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from kestrel.load.pinned import LOAD_CORE, SERVER_CORE
from kestrel.load.process import TWISTD, KestrelProcess, write_config
from kestrel.load.replay import resident_memory

QUEUE_ITEMS = re.compile(r"queue_q[0-9]+_items")
# The server's own account of its start: how long loading the queues took.
LOADED = re.compile(r"loaded [0-9]+ queues \([0-9]+ items\) from .* in ([0-9.]+) s")
# Listing pages: SQS's largest.
PAGE = 1000
# How long the restart of a million queues, or a block of sets, may take before the tool gives up.
RESTART_TIMEOUT = 600.0
BLOCK_TIMEOUT = 120.0
# The prefix listed by `stats` and by one ListQueues page: q12345 and q123450 to q123459, and so on.
PREFIX = "q12345"


def create_queues(
    server: KestrelProcess, queues: int, block: int, item: bytes, after_block: Callable[[], None] = lambda: None,
) -> list[float]:
    """
    Seconds taken by each block of `block` new queues, one write of pipelined sets per block;
    `after_block` is called once each block is STORED.
    """
    client = server.client(BLOCK_TIMEOUT)
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


def window_rate(seconds: list[float], block: int, window: int, last: bool) -> int:
    """Queues a second over the first (or last) `window` queues, in whole blocks."""
    blocks = max(1, window // block)
    taken = seconds[-blocks:] if last else seconds[:blocks]
    return round(len(taken) * block / sum(taken))


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def list_queues(port: int, prefix: str | None = None, pages: int | None = None) -> tuple[int, float]:
    """(queues listed, seconds): ListQueues in pages of PAGE, every page (or the first `pages`)."""
    from kestrel.load.sqs_throughput import boto3_client

    client = boto3_client(port, "json")
    request: dict[str, Any] = {"MaxResults": PAGE}
    if prefix is not None:
        request["QueueNamePrefix"] = prefix
    listed, page = 0, 0
    began = time.perf_counter()
    while pages is None or page < pages:
        reply = client.list_queues(**request)
        listed += len(reply.get("QueueUrls", ()))
        page += 1
        if "NextToken" not in reply:
            break
        request["NextToken"] = reply["NextToken"]
    return listed, time.perf_counter() - began


def stats_command(server: KestrelProcess, selector: str) -> tuple[int, float]:
    """(queues listed, seconds): `kestrel stats SELECTOR --json` run as a command."""
    began = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-m", "kestrel.command", "--admin", f"127.0.0.1:{server.admin_port}", "stats", selector, "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    seconds = time.perf_counter() - began
    return len(json.loads(output).get("queues", {})), seconds


def listing_figures(server: KestrelProcess) -> dict[str, Any]:
    listed, seconds = list_queues(server.sqs_port)
    pages = -(-listed // PAGE)
    prefixed, prefix_seconds = list_queues(server.sqs_port, PREFIX, pages=1)
    stats_listed, stats_seconds = stats_command(server, PREFIX + "*")
    began = time.perf_counter()
    server.admin("GET", f"/stats.json?prefix={PREFIX}")
    admin_seconds = time.perf_counter() - began
    return {
        "list_queues_listed": listed,
        "list_queues_pages": pages,
        "list_queues_seconds": round(seconds, 2),
        "list_queues_ms_per_page": round(1000 * seconds / max(1, pages), 2),
        "list_queues_prefix_listed": prefixed,
        "list_queues_prefix_ms": round(1000 * prefix_seconds, 1),
        "stats_prefix_listed": stats_listed,
        "stats_prefix_command_ms": round(1000 * stats_seconds, 1),
        "stats_prefix_admin_ms": round(1000 * admin_seconds, 1),
    }


def run(
    queues: int, block: int, item_size: int, directory: Path, max_open_journals: int | None = None,
    window: int = 10_000, pin: bool = False,
) -> dict:
    server_lines = 'sqs_listen = "tcp:0:interface=127.0.0.1"'
    if max_open_journals is not None:
        server_lines += f"\nmax_open_journals = {max_open_journals}"
    config = write_config(directory, server_lines)
    command = None
    if pin:
        # The server on one core, this tool on the other: neither takes the other's time. The
        # server is started under taskset (not pinned after its start, as `pinned.Txkestrel`
        # is) so that its restart is pinned too.
        os.sched_setaffinity(0, {int(LOAD_CORE)})
        command = ["taskset", "-c", SERVER_CORE, TWISTD, "-n", "--pidfile=", "kestrel", "-c", str(config)]
    server = KestrelProcess(directory, config, command=command).start()
    try:
        pid = server.process.pid
        rss_before = resident_memory(pid)
        most_descriptors = [open_descriptors(pid)]
        seconds = create_queues(
            server, queues, block, b"x" * item_size, lambda: most_descriptors.append(open_descriptors(pid)),
        )
        rss_after, descriptors = resident_memory(pid), open_descriptors(pid)
        listing = listing_figures(server)
        began = time.monotonic()
        server.stop(RESTART_TIMEOUT)
        stop_seconds = time.monotonic() - began
        server.log_lines.clear()
        began = time.monotonic()
        server.start(RESTART_TIMEOUT)
        restart_seconds = time.monotonic() - began
        loaded = LOADED.search(server.log())
        rss_restarted = resident_memory(server.process.pid)
        stats = server.client().stats()
    finally:
        # Also when a step fails: a server left running would keep the spool from being removed.
        server.stop(RESTART_TIMEOUT)
    first_rate, last_rate = window_rate(seconds, block, window, False), window_rate(seconds, block, window, True)
    return {
        "queues": queues,
        "block": block,
        "item_bytes": item_size,
        "first_block_per_second": round(len(range(0, min(block, queues))) / seconds[0]),
        "last_block_per_second": round((queues - block * (len(seconds) - 1)) / seconds[-1]),
        "slowest_block_per_second": round(block / max(seconds)),
        f"first_{window}_per_second": first_rate,
        f"last_{window}_per_second": last_rate,
        "last_to_first_rate": round(last_rate / first_rate, 2),
        "all_per_second": round(queues / sum(seconds)),
        "rss_mb_before": round(rss_before / 2**20, 1),
        "rss_mb_after": round(rss_after / 2**20, 1),
        "rss_kb_per_queue": round((rss_after - rss_before) / queues / 1024, 2),
        "open_descriptors": descriptors,
        "most_open_descriptors": max(most_descriptors),
        **listing,
        "stop_seconds": round(stop_seconds, 2),
        "restart_seconds": round(restart_seconds, 2),
        "restart_load_seconds": float(loaded[1]) if loaded else None,
        "rss_mb_after_restart": round(rss_restarted / 2**20, 1),
        # Above stats_queue_limit, `stats` lists no queue and counts them as left out.
        "queues_after_restart": sum(1 for key in stats if QUEUE_ITEMS.fullmatch(key)) + int(stats.get("queues_omitted", 0)),
        "items_after_restart": int(stats["curr_items"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kestrel load queue-creation", description=__doc__.strip().splitlines()[0])
    parser.add_argument("-Q", "--queues", type=int, default=5000)
    parser.add_argument("--block", type=int, default=500, help="new queues per pipelined write")
    parser.add_argument("--window", type=int, default=10_000, help="queues in the first and last windows compared")
    parser.add_argument("-b", "--bytes", type=int, default=64, help="bytes per item")
    parser.add_argument("--max-open-journals", type=int, help="the server's max_open_journals (default: its own)")
    parser.add_argument("--pin", action="store_true", help="the server on one core (taskset), this tool on the other")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print one JSON result")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        result = run(
            options.queues, options.block, options.bytes, Path(work), options.max_open_journals,
            options.window, options.pin,
        )
    if options.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0 if result["queues_after_restart"] == result["items_after_restart"] == options.queues else 1


if __name__ == "__main__":
    sys.exit(main())
