"""
Side-by-side benchmarks: txkestrel beside a peer, memcached (the default) or Darner.

Each server runs pinned to one core and the load tool to another, and the peers run
alternately (a fresh txkestrel, with an empty spool, for every run), so both see the same
machine. Prints one JSON document with every run's figures, which `kestrel.load.plot`
turns into a chart.

With memcached, both servers take the same `kestrel load` runs:

    python -m kestrel.load.compare --clients 1 10 100 --items 50000 > doc/benchmarks.json

With Darner, Darner's bench `db` and pipelined sets and gets (`kestrel.load.versus_darner`),
optionally against older checkouts of txkestrel as well:

    python -m kestrel.load.compare --peer darner --repeats 3 > doc/darner.json
    python -m kestrel.load.compare --peer darner --variant before=/tmp/old --variant after=. > doc/darner.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kestrel.load import versus_darner
from kestrel.load.pinned import LOAD_CORE, Memcached, Txkestrel
from kestrel.load.process import RawClient


def load(tool: str, port: int, *arguments: str) -> dict:
    # --flush: the servers are fresh, and the tools' read-back checks need to know it.
    command = ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "kestrel.load.cli", tool, "-p", str(port), "--json", "--flush", *arguments]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if finished.returncode not in (0, 1) or not finished.stdout.strip():
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def summary(result: dict, phase: str, latency: str) -> dict:
    figures = result["phases"][phase]
    histogram = figures["latency_us"][latency]
    return {
        "items_per_second": figures["items_per_second"],
        "p50_us": histogram["p50"],
        "p99_us": histogram["p99"],
        "p999_us": histogram["p99.9"],
        "ok": result["ok"],
    }


def compare_with_memcached(options: argparse.Namespace) -> dict:
    report: dict = {"put_many": [], "flood": [], "sync": [], "memory": {}}
    work = Path(tempfile.mkdtemp(prefix="kestrel-compare-"))
    memcached = Memcached()
    try:
        for clients in options.clients:
            args = ("-c", str(clients), "-n", str(options.items), "-b", "1024")
            for name in ("memcached", "txkestrel"):
                if name == "memcached":
                    result = load("put-many", memcached.port, *args)
                else:
                    server = Txkestrel(work / "kestrel", "never")
                    result = load("put-many", server.port, *args)
                    server.stop()
                report["put_many"].append({"server": name, "clients": clients} | summary(result, "put", "put"))
        flood_args = ("-n", str(options.flood_items), "-k", "1")
        report["flood"].append({"server": "memcached"} | summary(load("flood", memcached.port, *flood_args), "flood", "put"))
        for sync in ("never", "0"):
            server = Txkestrel(work / "kestrel", sync)
            report["flood"].append({"server": "txkestrel", "sync_journal": sync} | summary(load("flood", server.port, *flood_args), "flood", "put"))
            server.stop()
            server = Txkestrel(work / "kestrel", sync)
            result = load("put-many", server.port, "-c", "100", "-n", str(options.items), "-b", "1024")
            report["sync"].append({"sync_journal": sync, "clients": 100} | summary(result, "put", "put"))
            server.stop()
        server = Txkestrel(work / "kestrel", "never")
        baseline = server.rss_mb()
        load("put-many", server.port, "-c", "10", "-n", str(options.memory_items), "-b", "64")
        items = int(RawClient(server.port).stats()["curr_items"])
        report["memory"] = {"items": items, "item_bytes": 64, "rss_mb_empty": baseline, "rss_mb_full": server.rss_mb()}
        server.stop()
    finally:
        memcached.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--peer", choices=["memcached", "darner"], default="memcached")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100], help="put-many clients, or db's concurrency")
    with_memcached = parser.add_argument_group("--peer memcached")
    with_memcached.add_argument("--items", type=int, default=50000)
    with_memcached.add_argument("--flood-items", type=int, default=50000)
    with_memcached.add_argument("--memory-items", type=int, default=1_000_000)
    versus_darner.add_arguments(parser.add_argument_group("--peer darner"))
    options = parser.parse_args(argv)
    if options.peer == "memcached":
        report = compare_with_memcached(options)
    else:
        report = versus_darner.compare(options)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
