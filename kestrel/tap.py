"""
`twistd kestrel`: options and the service tree.

The tree starts in order and stops in reverse: the journal writer first (and last, so
that it drains everything the queues wrote), then the queue collection (which replays
every journal before anyone can connect), then the listeners.
"""

from __future__ import annotations

import signal

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from kestrel.admin import loopback_unless_named
from kestrel.admin.http import admin_site
from kestrel.admin.manhole import manhole_factory, manhole_namespace
from kestrel.collection import QueueCollection
from kestrel.config import ConfigError, ServerConfig, load_config
from kestrel.journal.writer import JournalWriter
from kestrel.listener import ListenerService
from kestrel.protocols.memcache import MemcacheFactory
from kestrel.protocols.text import TextFactory
from kestrel.protocols.thrift import ThriftFactory
from kestrel.server import KestrelServer


class Options(usage.Options):
    synopsis = "[-c CONFIG]"
    longdesc = "Run txkestrel, a durable message queue server that speaks Kestrel's protocols."
    optParameters = [
        ["config", "c", "etc/kestrel.conf", "Path of the TOML config file."],
    ]

    def postOptions(self) -> None:
        try:
            self["server_config"] = load_config(self["config"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


class KestrelService(MultiService):
    """The whole server. Holds the parts an operator may want to reach (manhole, admin)."""

    log = Logger()

    def __init__(self, config: ServerConfig, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self._reactor = reactor
        self.writer = JournalWriter(reactor)
        self.writer.setServiceParent(self)
        self.collection = QueueCollection(config, self.writer, reactor)
        self.collection.setServiceParent(self)
        self.server = KestrelServer(config, self.collection, reactor, shutdown=self._stop_reactor)
        self.listeners: list[ListenerService] = []
        self._listen("memcache", config.memcache_listen, MemcacheFactory(self.server))
        self._listen("text", config.text_listen, TextFactory(self.server))
        self._listen("thrift", config.thrift_listen, ThriftFactory(self.server))
        self.server.listeners = self.listener_addresses
        self.writer.batch_observer = self.server.latencies.fsync_delay.observe
        self._listen("admin", loopback_unless_named(config.admin_listen), admin_site(self.server))
        self._listen_manhole(config)

    def _listen(self, protocol: str, description: str, factory) -> None:
        if description:
            listener = ListenerService(protocol, description, factory, self._reactor)
            listener.setServiceParent(self)
            self.listeners.append(listener)

    def _listen_manhole(self, config: ServerConfig) -> None:
        if not config.manhole_listen:
            return
        if config.manhole_authorized_keys is None:
            self.log.warn("the manhole stays off: [manhole] names no authorized_keys file")
            return
        try:
            factory = manhole_factory(manhole_namespace(self), config.manhole_authorized_keys, self._reactor)
        except OSError as error:
            # The queues matter more than the shell: serve them, and say how to fix it.
            self.log.error(
                "the manhole stays off: cannot create its host key {path}: {error}; "
                "make one with: ssh-keygen -t ed25519 -N '' -f {path}",
                path=error.filename, error=error.strerror,
            )
            return
        self._listen("manhole", loopback_unless_named(config.manhole_listen), factory)

    def listener_addresses(self) -> list[tuple[str, str]]:
        """(protocol, "host:port") of each listener that is bound."""
        return [(listener.protocol, listener.address) for listener in self.listeners if listener.address is not None]

    def startService(self) -> None:
        super().startService()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._hangup)
        self.log.info(
            "txkestrel {version} started: {queues} queues from {path}",
            version=self.server.version, queues=len(self.collection), path=self.config.queue_path,
        )

    def stopService(self):
        self.log.info("txkestrel stopping")
        # A server taken out of service first (read-only, quiescent) compacts its empty queues.
        self.collection.rewrite_empty_on_close = not self.server.status.current.writable
        self.server.status.shut_down()
        return super().stopService()

    def _hangup(self, signum, frame) -> None:
        self._reactor.callFromThread(self._reload)

    def _reload(self) -> None:
        try:
            self.server.reload()
        except ConfigError as error:
            self.log.error("reload on SIGHUP failed: {error}", error=error)

    def _stop_reactor(self) -> None:
        if self._reactor.running:
            self._reactor.stop()


def makeService(options: Options) -> KestrelService:
    return KestrelService(options["server_config"])
