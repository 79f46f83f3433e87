"""
Latency histograms that the request path fills, one observation per request.

They are plain bucket counts rather than prometheus-client Histograms: everything that
observes them runs on the reactor thread, so they need no lock, and an observation costs
a short scan and two additions (about a sixth of a prometheus-client observe). The admin
service exports them in the Prometheus format at scrape time.
"""

from __future__ import annotations

# Seconds. A request answered at once takes tens of microseconds; a blocking read may wait
# for its whole timeout.
REQUEST_BOUNDS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
# An item may wait in its queue for anything from a millisecond to days.
DELIVERY_BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 21600.0, 86400.0)


class LatencyHistogram:
    """Observations in seconds, counted into the bucket of the first bound not below them."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = REQUEST_BOUNDS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # The bucket bisect_left would find, by a scan from the smallest bound: nearly every
        # request lands in the first few buckets, and compiled, the scan costs a tenth of a
        # call of bisect_left.
        bounds = self.bounds
        index = 0
        last = len(bounds)
        while index < last and bounds[index] < seconds:
            index += 1
        self.counts[index] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations up to it) per bucket, ending with (inf, count)."""
        total = 0
        buckets = []
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            total += count
            buckets.append((bound, total))
        return buckets


class Latencies:
    """The server's latency histograms (Kestrel's `*_latency_usec` and `fsync_delay_usec` metrics)."""

    __slots__ = ("set", "get_hit", "get_miss", "delivery", "fsync_delay")

    # Annotated (-> None): mypy types the attributes of a typed __init__ only, and compiled
    # callers of an untyped one observe through a generic method call.
    def __init__(self) -> None:
        self.set = LatencyHistogram()
        self.get_hit = LatencyHistogram()
        self.get_miss = LatencyHistogram()
        # From an item's add time to the read that takes it.
        self.delivery = LatencyHistogram(DELIVERY_BOUNDS)
        # From a journal batch handed to the writer thread to its completion (written, and
        # fsynced where a queue asks for it).
        self.fsync_delay = LatencyHistogram()
