"""
What a queue costs in memory, in process: a QueueCollection on a temporary spool with a
writer that writes in line, N queues each given one item that is then read (so every queue
has written its journal and holds nothing) or, with `--keep`, kept (issue 15's target: a
million queues of one item each), and the memory that took, per queue, by resident memory
(everything, the C of the compiled build included) or, with `--traced`, by tracemalloc
(Python's allocations; tracemalloc's own bookkeeping then swells the resident figure), and
with `--top N` the N source lines that allocated most of it. Doc/benchmarks.md.

    python -m kestrel.load.queue_memory [--queues 100000] [--keep] [--traced [--top 15]]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from kestrel.collection import QueueCollection
from kestrel.config import ServerConfig
from kestrel.journal.writer import JournalWriter
from kestrel.load.replay import resident_memory

ITEM_TEMPLATE = bytearray(b"x" * 64)
TURN = 1000  # queues per reactor turn: the writer takes their writes in one batch


def measure(queues: int, directory: str, traced: bool, keep: bool = False, top: int = 0) -> dict:
    clock = Clock()
    writer = JournalWriter(clock, runner=maybeDeferred)
    writer.startService()
    collection = QueueCollection(ServerConfig(queue_path=directory), writer, clock)
    collection.load()
    gc.collect()
    if traced:
        tracemalloc.start()
    rss_before = resident_memory(os.getpid())
    for first in range(0, queues, TURN):
        for number in range(first, min(first + TURN, queues)):
            # A name and an item of its own, as a server decodes them from each request: a
            # queue keeps both.
            name = f"q{number}"
            collection.add(name, bytes(ITEM_TEMPLATE))
            if not keep:
                collection.fetch(name)
        writer.flush()
    gc.collect()
    result: dict[str, Any] = {"queues": queues, "items_kept": keep, "rss_bytes_per_queue": round((resident_memory(os.getpid()) - rss_before) / queues)}
    if traced:
        result["traced_bytes_per_queue"] = round(tracemalloc.get_traced_memory()[0] / queues)
        if top:
            lines = tracemalloc.take_snapshot().statistics("lineno")[:top]
            result["traced_bytes_per_queue_by_line"] = {
                str(line.traceback): round(line.size / queues) for line in lines
            }
        tracemalloc.stop()
    collection.close()
    writer.flush()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kestrel.load.queue_memory", description=__doc__.strip().splitlines()[0])
    parser.add_argument("-Q", "--queues", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="each queue keeps its one item (default: it is read)")
    parser.add_argument("--traced", action="store_true", help="also count Python's allocations with tracemalloc")
    parser.add_argument("--top", type=int, default=0, help="with --traced: the N source lines that allocated most")
    parser.add_argument("--dir", help="where the temporary spool goes (default: the system's temporary folder)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=options.dir) as spool:
        print(json.dumps(measure(options.queues, spool, options.traced, options.keep, options.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
