"""
`twistd kestrel`: options and the service tree.

The tree starts in order and stops in reverse: the journal writer first (and last, so
that it drains everything the queues wrote), then the queue collection (which replays
every journal before anyone can connect), then the SQS API's service (which gives back the
messages its receives hold before the queues close), then the listeners, then the ZooKeeper
server-set membership, which a clean shutdown leaves before the listeners close.

A config that cannot be used stops the start with one line on stderr, naming the file, the
table and the key, and exit status 1: a bad value when the options are parsed, a listener that
cannot bind when twistd calls privilegedStartService (before anything else starts).
"""

from __future__ import annotations

import signal
import sys

from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import succeed
from twisted.logger import Logger
from twisted.python import usage

from kestrel import polling
from kestrel.admin import loopback_unless_named
from kestrel.admin.http import admin_site
from kestrel.admin.manhole import manhole_factory, manhole_namespace
from kestrel.collection import QueueCollection
from kestrel.config import ConfigError, ServerConfig, listen_error, load_config, option_error
from kestrel.journal.writer import IDLE_JOURNAL_SECONDS, JournalWriter, default_max_open_journals
from kestrel.listener import ListenFailed, ListenerService
from kestrel.protocols.memcache import MemcacheFactory
from kestrel.protocols.text import TextFactory
from kestrel.protocols.thrift.protocol import ThriftFactory
from kestrel.server import ServerContext
from kestrel.serverset import AdvertiseError, ServerSetService, advertised_endpoints, machine_address
from kestrel.sqs.apps import Applications
from kestrel.sqs.history import HistoryReads
from kestrel.sqs.resource import SqsResource
from kestrel.sqs.service import SqsService
from kestrel.sqs.site import sqs_site


class StartFailed(SystemExit, Exception):
    """
    The server cannot start; the message says why in one line.

    twistd handles an Exception from the start by removing its pid file and telling a
    daemonizing parent, then re-raises it; as a SystemExit with code 1 it then ends the process
    with status 1 and no traceback.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.code = 1


def _start_failed(message: str) -> StartFailed:
    # The process's own stderr: once twistd's logging has started, sys.stderr feeds the log.
    print(message, file=sys.__stderr__, flush=True)
    return StartFailed(message)


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
            # Not a UsageError: twistd would print the whole usage text around the one line.
            raise _start_failed(str(error)) from None


class KestrelService(MultiService):
    """The whole server. Holds the parts an operator may want to reach (manhole, admin)."""

    log = Logger()

    def __init__(self, config: ServerConfig, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self._reactor = reactor
        self.writer = JournalWriter(
            reactor, max_open_journals=config.max_open_journals or default_max_open_journals(),
            idle_journal_seconds=IDLE_JOURNAL_SECONDS,
        )
        self.writer.setServiceParent(self)
        self.collection = QueueCollection(config, self.writer, reactor)
        self.collection.setServiceParent(self)
        self.server = ServerContext(config, self.collection, reactor, shutdown=self._stop_reactor)
        self.listeners: list[ListenerService] = []
        self._listen_options: dict[ListenerService, str] = {}
        # Before the listeners: it starts after the collection and stops before it.
        self.sqs = self._sqs_service(config)
        self._listen("memcache_listen", config.memcache_listen, MemcacheFactory(self.server))
        self._listen("text_listen", config.text_listen, TextFactory(self.server))
        self._listen("thrift_listen", config.thrift_listen, ThriftFactory(self.server))
        if self.sqs is not None:
            resource = SqsResource(
                self.sqs, HistoryReads(self.collection), Applications(config.apps), reactor, self.sqs.account,
                config.sqs_cors_origins,
            )
            self._listen("sqs_listen", config.sqs_listen, sqs_site(resource, reactor, config.client_timeout))
        self.server.listeners = self.listener_addresses
        self.writer.batch_observer = self.server.latencies.fsync_delay.observe
        self._listen("admin_listen", loopback_unless_named(config.admin_listen), admin_site(self.server))
        self._listen_manhole(config)
        self.serverset: ServerSetService | None = None
        self._announced: dict[str, tuple[str, int]] = {}
        if config.zookeeper_hosts:
            self.serverset = ServerSetService(config, self.server.status, lambda: self._announced, reactor)
            self.serverset.setServiceParent(self)

    def _listen(self, option: str, description: str, factory) -> None:
        """A listener for the ServerConfig field ``option`` ("memcache_listen"), unless it is off."""
        if description:
            listener = ListenerService(option.removesuffix("_listen"), description, factory, self._reactor)
            listener.setServiceParent(self)
            self.listeners.append(listener)
            self._listen_options[listener] = option

    def _sqs_service(self, config: ServerConfig) -> SqsService | None:
        """The SQS API's service, started and stopped as a child of this one; None while sqs_listen is off."""
        if not config.sqs_listen:
            return None
        if not config.apps:
            # The config allows this on loopback only (config.py, _check_open_mode).
            self.log.warn(
                "the SQS API on {endpoint} has no [apps.NAME] table: it accepts any signature, from this machine only",
                endpoint=config.sqs_listen,
            )
        service = SqsService(self.server, self._reactor)
        _StartStop(service).setServiceParent(self)
        return service

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
        self._listen("manhole_listen", loopback_unless_named(config.manhole_listen), factory)

    def listener_addresses(self) -> list[tuple[str, str]]:
        """(protocol, "host:port") of each listener that is bound."""
        return [(listener.protocol, listener.address) for listener in self.listeners if listener.address is not None]

    def privilegedStartService(self) -> None:
        """twistd binds every listener here, before anything starts; one that cannot bind stops the start."""
        try:
            super().privilegedStartService()
        except ListenFailed as failure:
            raise self._refuse_start(listen_error(self.config, self._listen_options[failure.listener], str(failure))) from None
        if self.serverset is not None:
            self._announce_listeners()

    def _announce_listeners(self) -> None:
        """What the server sets will announce; a listener no other machine can reach stops the start."""
        bound = []
        for listener in self.listeners:
            address = listener.port.getHost() if listener.port is not None else None
            if isinstance(address, (IPv4Address, IPv6Address)):
                bound.append((listener.protocol, address.host, address.port))
        config = self.config
        try:
            self._announced = advertised_endpoints(
                bound, config.zookeeper_advertise_host, lambda: machine_address(config.zookeeper_hosts)
            )
        except AdvertiseError as error:
            raise self._refuse_start(option_error(config, "zookeeper", "advertise_host", str(error))) from None

    def _refuse_start(self, error: ConfigError) -> StartFailed:
        """Close the listeners already bound; the start fails with the error's one line."""
        for listener in self.listeners:
            listener.stopService()
        return _start_failed(str(error))

    def startService(self) -> None:
        super().startService()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._hangup)
        # The epoll reactor's poll, with its per-event logging context made cheap (kestrel.polling).
        polling.install(self._reactor)
        self.log.info(
            "txkestrel {version} started: {queues} queues from {path}",
            version=self.server.version, queues=len(self.collection), path=self.config.queue_path,
        )

    def stopService(self):
        self.log.info("txkestrel stopping")
        # A server taken out of service first (read-only, quiescent) compacts its empty queues.
        self.collection.rewrite_empty_on_close = not self.server.status.current.writable
        self.server.status.shut_down()
        leaving = self.serverset.leave() if self.serverset is not None else succeed(None)
        leaving.addCallback(lambda _: super(KestrelService, self).stopService())
        return leaving

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


class _StartStop(Service):
    """An object's start() and stop() run as a service of the tree, in its place in the order."""

    def __init__(self, target: SqsService):
        self.target = target

    def startService(self) -> None:
        super().startService()
        self.target.start()

    def stopService(self) -> None:
        super().stopService()
        self.target.stop()


def makeService(options: Options) -> KestrelService:
    return KestrelService(options["server_config"])
