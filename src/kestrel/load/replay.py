"""
Replay benchmark: how long a restart takes on a deep queue, and the memory it then holds.

It writes a spool holding one queue of N items (with the journal codec), starts a real
`twistd kestrel` on it, and reports the time from process start to "started" (replay
happens before the listeners open) and the resident memory of the process after start,
then drains a sample of items to check they come back in order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from kestrel.config import parse_size
from kestrel.journal import records
from kestrel.load.process import KestrelProcess, write_config


def write_journal(path: Path, items: int, item_size: int) -> int:
    """A journal of `items` adds, each item starting with its number so order can be checked."""
    filler = b"x" * item_size
    now = int(time.time() * 1000)
    with open(path, "wb") as journal:
        batch = []
        for n in range(items):
            data = (b"%012d" % n + filler)[:item_size]
            batch.append(records.encode_addx(data, now, 0))
            if len(batch) == 10000:
                journal.write(b"".join(batch))
                batch = []
        journal.write(b"".join(batch))
    return path.stat().st_size


def resident_memory(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def run(items: int, item_size: int, max_memory_size: str, directory: Path, sample: int) -> dict:
    spool = directory / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    journal_bytes = write_journal(spool / "bench", items, item_size)
    config = write_config(directory, queues=f'[queues.bench]\nmax_memory_size = "{max_memory_size}"\n')
    server = KestrelProcess(directory, config)
    began = time.monotonic()
    server.start()
    start_seconds = time.monotonic() - began
    rss = resident_memory(server.process.pid)
    client = server.client()
    stats = client.stats()
    drained = [client.get("bench") for _ in range(sample)]
    in_order = all(value is not None and value[:12] == b"%012d" % n for n, value in enumerate(drained))
    rss_after_drain = resident_memory(server.process.pid)
    server.stop()
    return {
        "items": items,
        "item_size": item_size,
        "max_memory_size": max_memory_size,
        "journal_bytes": journal_bytes,
        "start_seconds": round(start_seconds, 2),
        "rss_mb": round(rss / 2**20, 1),
        "queue_items": int(stats["queue_bench_items"]),
        "mem_items": int(stats["queue_bench_mem_items"]),
        "mem_bytes": int(stats["queue_bench_mem_bytes"]),
        "drained_in_order": in_order,
        "rss_mb_after_drain": round(rss_after_drain / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kestrel load replay", description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", "--items", type=int, default=1_000_000)
    parser.add_argument("-b", "--bytes", type=int, default=64, help="bytes per item")
    parser.add_argument("-m", "--max-memory-size", default="128MB")
    parser.add_argument("--sample", type=int, default=1000, help="items to drain and check after start")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print one JSON result")
    options = parser.parse_args(argv)
    parse_size(options.max_memory_size)
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        result = run(options.items, options.bytes, options.max_memory_size, Path(work), options.sample)
    if options.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0 if result["drained_in_order"] and result["queue_items"] == options.items else 1


if __name__ == "__main__":
    sys.exit(main())
