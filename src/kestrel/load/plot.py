"""
Plot a `kestrel.load.compare` report: put-many throughput against client count beside
memcached, or, for a report beside Darner, each cell's median rate per server as grouped bars.

    python -m kestrel.load.plot doc/benchmarks.json doc/throughput.png
    python -m kestrel.load.plot doc/darner.json doc/darner.png

Needs matplotlib (`pip install matplotlib`); nothing else in txkestrel does.
"""

from __future__ import annotations

import json
import sys

from kestrel.load.darner_report import size


def plot_beside_memcached(plt, report: dict):
    runs = report["put_many"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for server, style in (("memcached", "s--"), ("txkestrel", "o-")):
        points = sorted((run["clients"], run["items_per_second"]) for run in runs if run["server"] == server)
        axes.plot([c for c, _ in points], [t for _, t in points], style, label=server)
    axes.set_xscale("log")
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("sets per second (1 KB items)")
    axes.set_title("kestrel load put-many: server on one core, load tool on the other")
    axes.set_ylim(bottom=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return figure


def plot_beside_darner(plt, report: dict):
    db = [cell for cell in report["cells"] if cell["cell"]["bench"] == "db"]
    pipelined = [cell for cell in report["cells"] if cell["cell"]["bench"] != "db"]
    figure, (db_axes, pipelined_axes) = plt.subplots(
        1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [max(len(db), 1), max(len(pipelined), 1)]}
    )
    grouped_bars(db_axes, db, report["servers"], "requests_per_second", lambda cell: f"-c {cell['clients']}")
    db_axes.set_ylabel("requests per second (median)")
    db_axes.set_title("Darner's bench db, 64 B items")
    grouped_bars(
        pipelined_axes, pipelined, report["servers"], "items_per_second",
        lambda cell: f"{size(cell['item_size'])} {cell['bench']}\n{cell['per_write']}/write",
    )
    # Rates from 64 KB items to 64 B batches span two orders of magnitude.
    pipelined_axes.set_yscale("log")
    pipelined_axes.set_ylabel("items per second (median)")
    pipelined_axes.set_title("pipelined on one connection")
    figure.suptitle("txkestrel beside Darner: server on one core, load on the other")
    return figure


def grouped_bars(axes, cells: list[dict], servers: list[str], figure_name: str, label) -> None:
    width = 0.8 / len(servers)
    for index, server in enumerate(servers):
        offset = (index - (len(servers) - 1) / 2) * width
        axes.bar([x + offset for x in range(len(cells))], [cell["medians"][server][figure_name] for cell in cells], width, label=server)
    axes.set_xticks(range(len(cells)), [label(cell["cell"]) for cell in cells], fontsize=8)
    axes.grid(True, axis="y", which="both", alpha=0.3)
    axes.legend()


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, target = (sys.argv[1:] if argv is None else argv)[:2]
    report = json.load(open(source))
    figure = plot_beside_darner(plt, report) if "cells" in report else plot_beside_memcached(plt, report)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
