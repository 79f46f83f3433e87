"""
txkestrel beside Darner (a C++ server of Kestrel's memcache dialect): Darner's own bench `db`
at several concurrencies, then pipelined sets and gets on one connection (`kestrel.load.pipelined`).

Every run gets a fresh server with an empty data directory. For each repeat and each cell,
Darner and each txkestrel variant run in turn, so that all of them see the same machine; the
report gives every run's figures (for db, the server's CPU time per request too), the medians
of each cell and their ratio to Darner's. `--floor` adds Twisted's floor
(`kestrel.load.floor`, a responder that does no queue work) as one more server.
Servers are pinned to one core and the load (`db`, and this process) to the other. Darner and
`db` come from `bash ../shared/peers/build-darner.sh`.

    python -m kestrel.load.compare --peer darner [--darner-dir ~/peers/darner] [--repeats 3] \\
        [--db-requests 20000] [--clients 1 10 100] [--variant NAME[=PYTHONPATH] ...] [--floor] > report.json

A variant is a txkestrel imported from PYTHONPATH (a checkout of an older commit, say); the
default is one variant, "txkestrel", the installed code. A markdown summary goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kestrel
from kestrel.load.darner_report import PEER, build_report, markdown_tables
from kestrel.load.pinned import LOAD_CORE, Darner, Floor, PinnedServer, Txkestrel
from kestrel.load.pipelined import pipelined_gets, pipelined_sets

HOST = "127.0.0.1"
DB_QUEUE = "db_bench"  # the one queue `db` sets to and gets from (it names it in its data dir)
DB_PREFILL = 512  # items of 64 bytes, so that db's first gets find items
DB_TIMEOUT = 600
FLOOR = "floor"
PIPELINED_QUEUE = "pipelined"
PREFILL_PER_WRITE = 200
# Items per run, by item size and requests per write: about 0.3 to 2 s a run on either server
# on a two-core machine, and a whole number of batches.
SET_ITEMS = {
    64: {1: 20_000, 20: 40_000, 200: 100_000, 2000: 100_000},
    1024: {1: 20_000, 20: 40_000, 200: 60_000, 2000: 60_000},
    65536: {1: 2_000, 20: 2_000, 200: 2_000, 2000: 2_000},
}
GET_ITEM_SIZE = 1024
GET_ITEMS = {1: 20_000, 200: 60_000}

DB_RATE = re.compile(r"^Requests per second:\s+([\d.]+)", re.MULTILINE)
DB_PERCENTILE = re.compile(r"^\s*(\d+)%:\s+(\d+)", re.MULTILINE)


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--darner-dir", type=Path, default=Path.home() / "peers" / "darner", help="where darner and db are")
    group.add_argument("--repeats", type=int, default=3, help="runs of each cell on each server; the report gives medians")
    group.add_argument("--db-requests", type=int, default=20000, help="db's sets, and as many gets")
    group.add_argument("--floor", action="store_true", help="measure Twisted's floor (kestrel.load.floor) too")
    group.add_argument(
        "--variant", action="extend", nargs="+", metavar="NAME[=PYTHONPATH]",
        help="a txkestrel to measure, imported from PYTHONPATH (default: one, 'txkestrel', the installed code)",
    )


def parse_variants(given: list[str] | None) -> dict[str, str | None]:
    """Names to PYTHONPATH (absolute, since the server runs in its spool), None for the installed code."""
    variants: dict[str, str | None] = {}
    for variant in given or ["txkestrel"]:
        name, _, path = variant.partition("=")
        if name in (PEER, FLOOR) or name in variants:
            raise SystemExit(f"variant name {name!r} is taken")
        variants[name] = str(Path(path).resolve()) if path else None
    return variants


def cells(clients: list[int], db_requests: int) -> list[dict]:
    """What is measured, one dict a cell: db's runs, then the pipelined sets and gets."""
    return (
        [{"bench": "db", "clients": n, "requests": db_requests} for n in clients]
        + [
            {"bench": "sets", "item_size": size, "per_write": per_write, "items": items}
            for size, runs in SET_ITEMS.items()
            for per_write, items in runs.items()
        ]
        + [{"bench": "gets", "item_size": GET_ITEM_SIZE, "per_write": per_write, "items": items} for per_write, items in GET_ITEMS.items()]
    )


def parse_db_output(text: str) -> dict:
    rate = DB_RATE.search(text)
    percentiles = dict(DB_PERCENTILE.findall(text))
    if rate is None or "50" not in percentiles or "99" not in percentiles:
        raise ValueError(f"not the output of db:\n{text}")
    return {"requests_per_second": float(rate[1]), "p50_us": int(percentiles["50"]), "p99_us": int(percentiles["99"])}


def run_db(db: Path, server: PinnedServer, cell: dict) -> dict:
    pipelined_sets(HOST, server.port, DB_QUEUE, 64, DB_PREFILL, DB_PREFILL)
    requests = str(cell["requests"])
    command = ["taskset", "-c", LOAD_CORE, str(db), "-p", str(server.port), "-s", requests, "-g", requests, "-c", str(cell["clients"])]
    used_before = server.cpu_seconds()
    finished = subprocess.run(command, capture_output=True, text=True, timeout=DB_TIMEOUT)
    used = server.cpu_seconds() - used_before
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stdout}{finished.stderr}")
    # CPU time says what a request costs the server even where the client sets the pace.
    return parse_db_output(finished.stdout) | {"cpu_us_per_request": round(used * 1e6 / (2 * cell["requests"]), 2)}


def run_pipelined(port: int, cell: dict) -> dict:
    size, per_write, items = cell["item_size"], cell["per_write"], cell["items"]
    if cell["bench"] == "sets":
        return {"items_per_second": round(pipelined_sets(HOST, port, PIPELINED_QUEUE, size, per_write, items))}
    pipelined_sets(HOST, port, PIPELINED_QUEUE, size, PREFILL_PER_WRITE, items)
    return {"items_per_second": round(pipelined_gets(HOST, port, PIPELINED_QUEUE, per_write, items))}


def git_commit(directory: Path) -> dict:
    """The commit a checkout is at, and whether its files differ from it: None outside git."""
    def git(*arguments: str) -> str | None:
        finished = subprocess.run(["git", "-C", str(directory), *arguments], capture_output=True, text=True)
        return finished.stdout.strip() if finished.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": None if commit is None else bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine(darner_dir: Path, variants: dict[str, str | None]) -> dict:
    installed = Path(kestrel.__file__).resolve().parents[1]
    source_commit = darner_dir / "SOURCE_COMMIT"
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "darner": {"path": str(darner_dir), "source_commit": source_commit.read_text().strip() if source_commit.exists() else None},
        "variants": {
            name: {"pythonpath": path, "source": path or str(installed)} | git_commit(Path(path or installed))
            for name, path in variants.items()
        },
    }


def compare(options: argparse.Namespace) -> dict:
    darner, db = options.darner_dir / "darner", options.darner_dir / "db"
    if not (darner.exists() and db.exists()):
        raise SystemExit(f"no darner and db in {options.darner_dir}: bash /work/shared/peers/build-darner.sh builds them")
    variants = parse_variants(options.variant)
    # This process is the pipelined client: it belongs on the load core, like db.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    work = Path(tempfile.mkdtemp(prefix="kestrel-versus-darner-"))

    def start(server: str):
        if server == PEER:
            return Darner(darner, work / "darner", work / "darner.log")
        if server == FLOOR:
            return Floor(work / "floor.log")
        return Txkestrel(work / "kestrel", "never", variants[server])

    servers = [PEER, *variants, *([FLOOR] if options.floor else [])]
    runs = []
    try:
        for repeat in range(options.repeats):
            # The order turns with each repeat, and every run starts once the disk has written
            # back what the runs before it left (64 KB sets write 130 MB): no server always
            # runs in the writeback of the one before it.
            turn = repeat % len(servers)
            for cell in cells(options.clients, options.db_requests):
                for server in servers[turn:] + servers[:turn]:
                    os.sync()
                    with start(server) as running:
                        figures = run_db(db, running, cell) if cell["bench"] == "db" else run_pipelined(running.port, cell)
                    runs.append({"server": server, "repeat": repeat, "cell": cell, "figures": figures})
                    print(f"repeat {repeat + 1}/{options.repeats} {server} {cell}: {figures}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = build_report(runs, servers[1:], machine(options.darner_dir, variants))
    print(markdown_tables(report), file=sys.stderr)
    return report
