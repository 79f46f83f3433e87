"""
What `/metrics` reports, in the Prometheus text format through prometheus-client.

Gauges and counters are read from the queues and the server when Prometheus scrapes, so
they cost the request path nothing. The latency histograms are the only per-request work;
the request path fills them (`kestrel.latency`) and they are copied out here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.utils import floatToGoString

from kestrel.latency import LatencyHistogram
from kestrel.queue import PersistentQueue
from kestrel.server import ServerContext
from kestrel.status import Status

QueueReading = Callable[[PersistentQueue], float]

# kestrel_queue_<name>{queue="..."}
QUEUE_GAUGES: tuple[tuple[str, str, QueueReading], ...] = (
    ("items", "Items in the queue (in memory and on disk), open reads not counted.", lambda q: q.items),
    ("bytes", "Payload bytes of the items in the queue.", lambda q: q.bytes),
    ("memory_items", "Items of the queue held in memory.", lambda q: q.memory_items),
    ("memory_bytes", "Payload bytes of the queue held in memory.", lambda q: q.memory_bytes),
    ("open_transactions", "Reads opened and not yet confirmed or aborted.", lambda q: q.open_transactions),
    ("waiters", "Blocked reads waiting for an item.", lambda q: len(q.waiters)),
    ("journal_bytes", "Bytes in all the journal files of the queue, rotated ones included.",
     lambda q: q.journal.size + q.journal.archived),
    ("disk_bytes", "Bytes on disk: the journal files and the retained history (retain).", lambda q: q.disk_bytes),
    ("retained_bytes", "Bytes of retained history on disk; 0 without retain.", lambda q: q.retained_bytes),
    ("age_seconds", "Time since the add of the item read last; 0 when the queue is empty.", lambda q: q.age_ms() / 1000),
    ("max_items", "The configured item limit.", lambda q: q.config.max_items),
    ("max_bytes", "The configured byte limit.", lambda q: q.config.max_size),
    ("journal_failing", "1 while writes to the queue's journal fail (they are retried), else 0.",
     lambda q: int(q.journal.failure is not None)),
)
QUEUE_COUNTERS: tuple[tuple[str, str, QueueReading], ...] = (
    ("put_items", "Items added, including the adds replayed from the journal at start.", lambda q: q.total_items),
    ("put_bytes", "Payload bytes added.", lambda q: q.put_bytes),
    ("get_hits", "Reads that found an item.", lambda q: q.get_hits),
    ("get_misses", "Reads that found the queue empty.", lambda q: q.get_misses),
    ("expired_items", "Items removed because they expired.", lambda q: q.expired_items),
    ("discarded_items", "Items dropped to make room because the queue was full.", lambda q: q.discarded),
    ("transactions", "Reads opened.", lambda q: q.transactions),
    ("canceled_transactions", "Open reads aborted: by the client, a disconnect or a timeout.",
     lambda q: q.canceled_transactions),
    ("flushes", "Flushes of the queue.", lambda q: q.total_flushes),
    ("journal_rewrites", "Rewrites of the journal to just the queue's contents.", lambda q: q.journal_rewrites),
    ("journal_rotations", "Rotations of the journal to a new file.", lambda q: q.journal_rotations),
    ("read_behind_errors", "Reads of items back from the journal that failed.", lambda q: q.read_behind_errors),
    ("lost_items", "Items on disk given up because their journal file was missing or damaged.", lambda q: q.lost_items),
    ("dead_lettered_items", "Items reliable reads handed out max_deliveries times, moved to the dead_letter_queue "
     "(or dropped without one).", lambda q: q.dead_lettered),
)
# kestrel_<name>, from the server's counters
SERVER_COUNTERS = (
    ("connections", "Connections accepted.", "total_connections"),
    ("get_hits", "Reads that found an item, all queues.", "get_hits"),
    ("get_misses", "Reads that found nothing, all queues.", "get_misses"),
    ("bytes_read", "Bytes received from clients.", "bytes_read"),
    ("bytes_written", "Bytes sent to clients.", "bytes_written"),
)
COMMANDS = ("get", "set", "peek", "monitor", "monitor_get")
LATENCIES = (
    ("set", "kestrel_set_latency_seconds",
     "Time to answer a set; for a queue that fsyncs every write, until the item is on disk."),
    ("get_hit", "kestrel_get_hit_latency_seconds", "Time to answer a read that found an item, waiting included."),
    ("get_miss", "kestrel_get_miss_latency_seconds", "Time to answer a read that found nothing, waiting included."),
    ("delivery", "kestrel_delivery_latency_seconds", "Time items spent in their queue, from their add to their read."),
    ("fsync_delay", "kestrel_fsync_delay_seconds",
     "Time from a journal batch handed to the writer thread to its completion, fsyncs included."),
)


class KestrelCollector:
    """A prometheus-client collector that reads one server's state at each scrape."""

    def __init__(self, server: ServerContext):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        yield from self._server_metrics()
        yield from self._queue_metrics()
        yield from self._alias_metrics()
        yield from self._latency_metrics()

    def _server_metrics(self) -> Iterator[Metric]:
        server, stats, collection = self.server, self.server.stats, self.server.collection
        yield InfoMetricFamily("kestrel", "The server's version.", value={"version": server.version})
        yield GaugeMetricFamily("kestrel_start_time_seconds", "When the server started, in seconds since the epoch.",
                                value=server.started_at)
        yield GaugeMetricFamily("kestrel_uptime_seconds", "Seconds since the server started.",
                                value=server.clock.seconds() - server.started_at)
        yield GaugeMetricFamily("kestrel_open_connections", "Client connections open now.", value=stats.curr_connections)
        for name, documentation, attribute in SERVER_COUNTERS:
            yield CounterMetricFamily(f"kestrel_{name}", documentation, value=getattr(stats, attribute))
        commands = CounterMetricFamily("kestrel_commands", "Commands received, by kind.", labels=["command"])
        for command in COMMANDS:
            commands.add_metric([command], getattr(stats, f"cmd_{command}"))
        yield commands
        yield GaugeMetricFamily("kestrel_queues", "Queues that exist now.", value=len(collection))
        yield CounterMetricFamily("kestrel_queues_created", "Queues created.", value=collection.queue_creates)
        yield CounterMetricFamily("kestrel_queues_deleted", "Queues deleted, expired ones included.",
                                  value=collection.queue_deletes)
        yield CounterMetricFamily("kestrel_queues_expired", "Queues deleted for being older than max_queue_age.",
                                  value=collection.queue_expires)
        status = server.status
        yield StateSetMetricFamily("kestrel_status", "The server status reported to clients.",
                                   value={each.display: each is status.current for each in Status})
        yield GaugeMetricFamily("kestrel_status_readable", "1 while the enforced status allows reads.",
                                value=int(status.readable))
        yield GaugeMetricFamily("kestrel_status_writable", "1 while the enforced status allows writes.",
                                value=int(status.writable))

    def _queue_metrics(self) -> Iterator[Metric]:
        queues = self._labelled_queues()
        for family_class, table in ((GaugeMetricFamily, QUEUE_GAUGES), (CounterMetricFamily, QUEUE_COUNTERS)):
            for name, documentation, read in table:
                family = family_class(f"kestrel_queue_{name}", documentation, labels=["queue"])
                for queue in queues:
                    family.add_metric([queue.name], read(queue))
                yield family
        collection = self.server.collection
        totals = collection.totals()
        yield GaugeMetricFamily("kestrel_items", "Items in all queues (in memory and on disk).", value=totals.items)
        yield GaugeMetricFamily("kestrel_bytes", "Payload bytes of the items in all queues.", value=totals.bytes)
        yield CounterMetricFamily("kestrel_put_items", "Items added to all queues, including those replayed at start.",
                                  value=totals.total_items)
        yield GaugeMetricFamily("kestrel_unlabelled_queues",
                                "Queues left out of the kestrel_queue_* series (beyond metrics_top_queues "
                                "and metrics_queue_prefixes).", value=len(collection) - len(queues))

    def _labelled_queues(self) -> list[PersistentQueue]:
        """
        The queues that get series of their own, by name: the config's metrics_top_queues
        deepest and every one under metrics_queue_prefixes, so that a million queues do not
        make a million label sets (a Prometheus server would not keep up).
        """
        collection, config = self.server.collection, self.server.config
        chosen = {queue.name: queue for queue in collection.deepest(config.metrics_top_queues)}
        for prefix in config.metrics_queue_prefixes:
            for name in collection.names_starting_with(prefix):
                queue = collection.queue(name, create=False)
                if queue is not None:
                    chosen[name] = queue
        return [chosen[name] for name in sorted(chosen)]

    def _alias_metrics(self) -> Iterator[Metric]:
        collection = self.server.collection
        put_items = CounterMetricFamily("kestrel_alias_put_items", "Items added through an alias.", labels=["alias"])
        put_bytes = CounterMetricFamily("kestrel_alias_put_bytes", "Payload bytes added through an alias.",
                                        labels=["alias"])
        for name, stats in collection.queue_stats(sorted(collection.aliases())):
            counters = dict(stats)
            put_items.add_metric([name], counters["put_items"])
            put_bytes.add_metric([name], counters["put_bytes"])
        yield put_items
        yield put_bytes

    def _latency_metrics(self) -> Iterator[Metric]:
        latencies = self.server.latencies
        for attribute, name, documentation in LATENCIES:
            histogram: LatencyHistogram = getattr(latencies, attribute)
            buckets = [(floatToGoString(bound), count) for bound, count in histogram.cumulative()]
            yield HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


def metrics_registry(server: ServerContext) -> CollectorRegistry:
    """A registry of this server's metrics and its process's (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KestrelCollector(server))
    ProcessCollector(registry=registry)
    return registry
