"""
Plot put-many throughput against client count from a `kestrel.load.compare` report.

    python -m kestrel.load.plot doc/benchmarks.json doc/throughput.png

Needs matplotlib (`pip install matplotlib`); nothing else in txkestrel does.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, target = (sys.argv[1:] if argv is None else argv)[:2]
    runs = json.load(open(source))["put_many"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for server, style in (("memcached", "s--"), ("txkestrel", "o-")):
        points = sorted((run["clients"], run["items_per_second"]) for run in runs if run["server"] == server)
        axes.plot([c for c, _ in points], [t for _, t in points], style, label=server)
    axes.set_xscale("log")
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("sets per second (1 KB items)")
    axes.set_title("kestrel-load put-many: server on one core, load tool on the other")
    axes.set_ylim(bottom=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
