"""
ServerContext: what every session of every protocol shares. That is the queue collection,
the server status, the global counters, and the operator actions (reload, shutdown).
"""

from __future__ import annotations

from typing import Callable, ClassVar

from kestrel.clock import Clock
from twisted.logger import Logger

from kestrel import PROTOCOL_VERSION, __version__
from kestrel.collection import QueueCollection
from kestrel.config import ServerConfig, load_config
from kestrel.latency import Latencies
from kestrel.status import ServerStatus


class ServerStats:
    """Counters over all connections (Kestrel's global `stats`)."""

    def __init__(self) -> None:
        self.curr_connections = 0
        self.total_connections = 0
        self.cmd_get = 0
        self.cmd_set = 0
        self.cmd_peek = 0
        self.get_hits = 0
        self.get_misses = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.cmd_monitor = 0
        self.cmd_monitor_get = 0


class ServerContext:
    """
    What every connection of every protocol shares: the config, the queue collection, the
    clock, the server status, counters and latencies, and reload and shutdown. (The service
    tree that starts and stops the server is tap.KestrelService.)
    """

    log: ClassVar[Logger] = Logger()

    def __init__(
        self,
        config: ServerConfig,
        collection: QueueCollection,
        clock: Clock,
        status: ServerStatus | None = None,
        shutdown: Callable[[], None] | None = None,
    ):
        self.config = config
        self.collection = collection
        self.clock = clock
        self.status = status or ServerStatus(
            config.status_file, config.default_status, config.status_change_grace_period, clock
        )
        self.stats = ServerStats()
        self.latencies = Latencies()
        self.version = __version__
        self.protocol_version = PROTOCOL_VERSION
        self.max_open_transactions = config.max_open_transactions
        self.started_at = clock.seconds()
        self._shutdown = shutdown
        # Set by the service that owns the listeners: (protocol, "host:port") of each one bound.
        self.listeners: Callable[[], list[tuple[str, str]]] | None = None

    def global_stats(self) -> list[tuple[str, object]]:
        """Kestrel's global stats, in its order."""
        stats, collection = self.stats, self.collection
        totals = collection.totals()
        now = self.clock.seconds()
        return [
            ("uptime", int(now - self.started_at)),
            ("time", int(now)),
            ("version", self.version),
            ("curr_items", totals.items),
            ("total_items", totals.total_items),
            ("bytes", totals.bytes),
            ("reserved_memory_ratio", f"{totals.reserved_memory_ratio:.3f}"),
            ("curr_connections", stats.curr_connections),
            ("total_connections", stats.total_connections),
            ("cmd_get", stats.cmd_get),
            ("cmd_set", stats.cmd_set),
            ("cmd_peek", stats.cmd_peek),
            ("get_hits", stats.get_hits),
            ("get_misses", stats.get_misses),
            ("bytes_read", stats.bytes_read),
            ("bytes_written", stats.bytes_written),
            ("queue_creates", collection.queue_creates),
            ("queue_deletes", collection.queue_deletes),
            ("queue_expires", collection.queue_expires),
        ] + self._listener_stats()

    def _listener_stats(self) -> list[tuple[str, object]]:
        if self.listeners is None:
            return []
        return [(f"listener_{protocol}", address) for protocol, address in self.listeners()]

    def at_connection_limit(self) -> bool:
        """True when `max_connections` are open, so a new connection must be refused."""
        limit = self.config.max_connections
        return limit is not None and self.stats.curr_connections >= limit

    def reload(self) -> None:
        """Re-read the config file: queue settings and aliases change, nothing else."""
        if self.config.config_path is None:
            raise RuntimeError("this server has no config file to reload")
        config = load_config(self.config.config_path)
        self.collection.reload(config)

    def shutdown(self) -> None:
        """Start a clean shutdown a moment from now, so the request that asked for it completes."""
        self.log.info("shutdown requested")
        if self._shutdown is not None:
            self.clock.callLater(0.1, self._shutdown)
