"""
Latency histograms (HdrHistogram) and the result of a load run: phases with their throughput
and latency distributions, counts, and the checks, as text lines or one JSON object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from kestrel.load.checks import Check

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
DISTRIBUTION = ("min", "p50", "p90", "p99", "p99.9", "max")


class Latency:
    """Request latencies in microseconds, from 1 µs to an hour at 3 significant digits."""

    LOWEST_US = 1
    HIGHEST_US = 3_600_000_000
    DIGITS = 3

    def __init__(self):
        self.histogram = HdrHistogram(self.LOWEST_US, self.HIGHEST_US, self.DIGITS)

    def record_ns(self, nanoseconds: int) -> None:
        self.histogram.record_value(min(max(nanoseconds // 1000, self.LOWEST_US), self.HIGHEST_US))

    def add(self, other: Latency) -> None:
        self.histogram.add(other.histogram)

    @property
    def count(self) -> int:
        return self.histogram.get_total_count()

    # Histograms cross process boundaries in HdrHistogram's compressed encoding.
    def __getstate__(self) -> bytes:
        return self.histogram.encode()

    def __setstate__(self, encoded: bytes) -> None:
        self.histogram = HdrHistogram.decode(encoded)

    def summary(self) -> dict[str, float]:
        """count, min, p50, p90, p99, p99.9, max and mean, in microseconds."""
        histogram = self.histogram
        summary = {"count": self.count, "min": histogram.get_min_value()}
        for name, percentile in PERCENTILES:
            summary[name] = histogram.get_value_at_percentile(percentile)
        summary["max"] = histogram.get_max_value()
        summary["mean"] = round(histogram.get_mean_value(), 1)
        return summary


def latency_line(name: str, latency: Latency) -> str:
    summary = latency.summary()
    if not summary["count"]:
        return f"  {name} latency: no requests"
    values = "  ".join(f"{key} {summary[key]}" for key in DISTRIBUTION)
    return f"  {name} latency (usec): {values}  mean {summary['mean']}  ({summary['count']} requests)"


@dataclass
class Phase:
    """One timed stretch of a run: `items` items moved in `elapsed_ns`."""

    name: str
    items: int
    elapsed_ns: int
    latencies: dict[str, Latency] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items * 1e9 / self.elapsed_ns if self.elapsed_ns else 0.0

    def as_json(self) -> dict:
        return {
            "items": self.items,
            "elapsed_ms": round(self.elapsed_ns / 1e6, 1),
            "items_per_second": round(self.items_per_second, 1),
            "latency_us": {name: latency.summary() for name, latency in sorted(self.latencies.items())},
        }

    def lines(self) -> list[str]:
        usec_per_item = self.elapsed_ns / 1000 / self.items if self.items else 0.0
        lines = [
            f"{self.name}: {self.items} items in {self.elapsed_ns / 1e6:.0f} ms: "
            f"{self.items_per_second:.0f} items/s ({usec_per_item:.1f} usec/item throughput)"
        ]
        lines.extend(latency_line(name, latency) for name, latency in sorted(self.latencies.items()))
        return lines


@dataclass
class Result:
    tool: str
    config: dict
    server: dict
    phases: list[Phase]
    counts: dict[str, int]
    checks: list[Check]
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(check.status != Check.FAILED for check in self.checks)

    def as_json(self) -> dict:
        return {
            "tool": self.tool,
            "ok": self.ok,
            "config": self.config,
            "server": self.server,
            "phases": {phase.name: phase.as_json() for phase in self.phases},
            "counts": self.counts,
            "checks": [check.as_json() for check in self.checks],
            "errors": self.errors,
        }

    def lines(self) -> list[str]:
        lines = [line for phase in self.phases for line in phase.lines()]
        lines.append("counts: " + ", ".join(f"{name} {value}" for name, value in sorted(self.counts.items())))
        lines.extend(check.line() for check in self.checks)
        lines.extend(f"error: {error}" for error in self.errors)
        failed = sum(check.status == Check.FAILED for check in self.checks) + len(self.errors)
        lines.append(f"{self.tool}: " + ("OK" if self.ok else f"FAILED ({failed} problem(s))"))
        return lines
