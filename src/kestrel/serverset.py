"""
ZooKeeper server sets: the server announces itself to the clients of a fleet (doc/fleet.md).

A server that is up is a member of two sets, `<path_prefix>/write` and `<path_prefix>/read`;
write-avoid and read-only leave the write set, quiescent leaves both (doc/compatibility.md
§3.8). A member is an ephemeral sequential node `member_NNNNNNNNNN` holding the serverset
JSON that Finagle, Aurora and Prometheus' `serverset_sd_configs` read: the main endpoint
(memcache, else Thrift, else text), every protocol by name, and the admin port when it listens
beyond loopback, so Prometheus can find every server's metrics.

kazoo does the talking. Its calls block, so they run in a thread of their own, and its
connection events arrive in its thread; both reach the reactor through `callFromThread`. The
nodes are ephemeral, so ZooKeeper drops them when the server's session ends; after a lost
session the server joins again once it is back. ZooKeeper being down never stops the queue
server from serving: it only keeps it out of the sets until ZooKeeper returns.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from typing import Callable, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.config import ServerConfig
from kestrel.status import ServerStatus, Status

WRITE, READ = "write", "read"
# The sets a server belongs to in each status; a stricter status leaves the write set first.
MEMBERSHIP: dict[Status, frozenset[str]] = {
    Status.UP: frozenset((WRITE, READ)),
    Status.WRITEAVOID: frozenset((READ,)),
    Status.READONLY: frozenset((READ,)),
    Status.QUIESCENT: frozenset(),
    Status.DOWN: frozenset(),
}
# Protocols announced by name, the first one listening being the main endpoint.
QUEUE_PROTOCOLS = ("memcache", "thrift", "text")
# A failed attempt to match the sets to the status is tried again after this long.
RETRY_DELAY = 1.0
# The longest a clean shutdown waits to leave the sets before it goes on without.
LEAVE_TIMEOUT = 5.0

Endpoint = tuple[str, int]


class AdvertiseError(Exception):
    """No address other machines can reach: the message says which listener and what to do."""


def machine_address(zookeeper_hosts: str) -> str:
    """
    The address of this machine as the ZooKeeper ensemble sees it: the source address of a
    route to its first host (a UDP "connect" sends nothing), else the host name's address.
    """
    host, _, port = zookeeper_hosts.split(",")[0].rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(port)))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def advertised_endpoints(
    bound: Iterable[tuple[str, str, int]], advertise_host: str | None, machine: Callable[[], str]
) -> dict[str, Endpoint]:
    """
    (host, port) to announce for each (protocol, bound host, port) of a TCP listener:
    `advertise_host` when the config names one; else a wildcard address becomes the machine's
    address, and a loopback one is refused (AdvertiseError), as no other machine could use it.
    The admin port is announced only when it listens beyond loopback.
    """
    endpoints: dict[str, Endpoint] = {}
    for protocol, host, port in bound:
        if protocol not in QUEUE_PROTOCOLS and protocol != "admin":
            continue
        address = ipaddress.ip_address(host)
        if protocol == "admin" and address.is_loopback:
            continue
        if advertise_host is not None:
            endpoints[protocol] = (advertise_host, port)
            continue
        announced = machine() if address.is_unspecified else host
        if ipaddress.ip_address(announced).is_loopback:
            raise AdvertiseError(
                f"the {protocol} listener is on {announced}, which no other machine can reach: "
                "name the address to announce in advertise_host, or listen on an interface"
            )
        endpoints[protocol] = (announced, port)
    if not any(protocol in endpoints for protocol in QUEUE_PROTOCOLS):
        raise AdvertiseError("no memcache, thrift or text listener on TCP to announce")
    return endpoints


def member_record(endpoints: dict[str, Endpoint]) -> bytes:
    """The serverset JSON of a member (Finagle's `ServiceInstance`)."""
    main = next(endpoints[protocol] for protocol in QUEUE_PROTOCOLS if protocol in endpoints)

    def endpoint(address: Endpoint) -> dict[str, object]:
        return {"host": address[0], "port": address[1]}

    return json.dumps({
        "serviceEndpoint": endpoint(main),
        "additionalEndpoints": {protocol: endpoint(address) for protocol, address in endpoints.items()},
        "status": "ALIVE",
    }, sort_keys=True).encode()


class ServerSetService(Service):
    """Keeps this server's membership of the server sets matched to its status."""

    name = "serverset"
    log = Logger()

    def __init__(self, config: ServerConfig, status: ServerStatus, endpoints: Callable[[], dict[str, Endpoint]], reactor):
        self._config = config
        self._status = status
        self._endpoints = endpoints
        self._reactor = reactor
        self._client = None
        self._record = b""
        self._connected = False
        self._converging = False
        self._again = False
        self._retry = None
        self._failing = False
        self.members: dict[str, str] = {}  # set name -> node path, as last converged

    def startService(self) -> None:
        from kazoo.client import KazooClient  # only a server with [zookeeper] needs kazoo
        from kazoo.retry import KazooRetry

        super().startService()
        self._record = member_record(self._endpoints())
        self._client = KazooClient(
            hosts=self._config.zookeeper_hosts,
            timeout=self._config.zookeeper_session_timeout,
            # Keep trying for as long as the server runs: ZooKeeper may be down for a while.
            connection_retry=KazooRetry(max_tries=-1, max_delay=30),
        )
        self._client.add_listener(self._state_in_kazoo_thread)
        self._status.watch(lambda status: self._converge())
        self._client.start_async()
        self.log.info("announcing in ZooKeeper {hosts} under {prefix}",
                      hosts=self._config.zookeeper_hosts, prefix=self._config.zookeeper_path_prefix)

    def leave(self) -> Deferred:
        """Leave both sets (a clean shutdown, before the listeners close); gives up after LEAVE_TIMEOUT."""
        self._cancel_retry()
        if self._client is None or not self._connected or not self.members:
            return succeed(None)
        self._converging = True  # nothing else may start: the server is going down
        leaving = self._in_thread(self._match_sets, frozenset())
        leaving.addTimeout(LEAVE_TIMEOUT, self._reactor)
        leaving.addCallbacks(self._left, self._not_left)
        return leaving

    def stopService(self) -> Deferred | None:
        super().stopService()
        self._cancel_retry()
        client, self._client = self._client, None
        if client is None:
            return None
        self._connected = False
        closing = self._in_thread(_close, client)
        closing.addTimeout(LEAVE_TIMEOUT, self._reactor)
        closing.addErrback(lambda failure: self.log.warn("ZooKeeper client did not close: {error}", error=failure.value))
        return closing

    # Connection events, from kazoo's thread

    def _state_in_kazoo_thread(self, state: str) -> None:
        self._reactor.callFromThread(self._state_changed, state)

    def _state_changed(self, state: str) -> None:
        if self._client is None:
            return
        if state == "CONNECTED":
            self._connected = True
            self.log.info("connected to ZooKeeper")
            self._converge()
            return
        self._connected = False
        if state == "LOST":
            # The session ended, and its ephemeral nodes with it: join again once connected.
            self.members = {}
            self.log.warn("ZooKeeper session lost: out of the server sets until ZooKeeper is back")
        else:
            self.log.warn("connection to ZooKeeper suspended; retrying")

    # Matching the sets to the status

    def _converge(self) -> None:
        """Run `_match_sets` in the background once at a time, again if the status changed meanwhile."""
        if not self.running or not self._connected:
            return
        if self._converging:
            self._again = True
            return
        self._converging, self._again = True, False
        self._cancel_retry()
        wanted = MEMBERSHIP[self._status.current]
        matching = self._in_thread(self._match_sets, wanted)
        matching.addCallbacks(self._matched, self._not_matched)

    def _matched(self, members: dict[str, str]) -> None:
        self._converging = False
        if members != self.members:
            self.log.info("server sets joined: {sets}", sets=", ".join(sorted(members)) or "none")
        self.members = members
        if self._failing:
            self._failing = False
            self.log.info("ZooKeeper server sets are up to date again")
        if self._again:
            self._converge()

    def _not_matched(self, failure: Failure) -> None:
        self._converging = False
        if not self._failing:
            self._failing = True
            self.log.warn("cannot update the ZooKeeper server sets: {error}; retrying", error=failure.value)
        if self.running:
            self._retry = self._reactor.callLater(RETRY_DELAY, self._retried)

    def _retried(self) -> None:
        self._retry = None
        self._converge()

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _left(self, _) -> None:
        self.members = {}
        self.log.info("left the ZooKeeper server sets")

    def _not_left(self, failure: Failure) -> None:
        # Not fatal: the nodes are ephemeral, and go when the session closes or times out.
        self.log.warn("could not leave the ZooKeeper server sets: {error}", error=failure.value)

    # The blocking half, in a thread of its own

    def _match_sets(self, wanted: frozenset[str]) -> dict[str, str]:
        """Create or delete this session's member nodes so that it is in exactly `wanted`."""
        from kazoo.exceptions import NoNodeError

        client = self._client
        session = client.client_id[0] if client.client_id else None
        members = {}
        # Leave before joining, and the write set before the read set.
        for set_name in (WRITE, READ) if len(wanted) < 2 else (READ, WRITE):
            path = f"{self._config.zookeeper_path_prefix}/{set_name}"
            client.ensure_path(path)
            ours = []
            for child in sorted(client.get_children(path)):
                try:
                    _, stat = client.get(f"{path}/{child}")
                except NoNodeError:
                    continue
                if stat.ephemeralOwner == session:
                    ours.append(f"{path}/{child}")
            # A create whose answer was lost with the connection may have made a node: keep one.
            keep = ours[:1] if set_name in wanted else []
            for node in ours[len(keep):]:
                try:
                    client.delete(node)
                except NoNodeError:
                    pass
            if set_name in wanted:
                members[set_name] = keep[0] if keep else client.create(
                    f"{path}/member_", self._record, ephemeral=True, sequence=True
                )
        return members


    def _in_thread(self, function: Callable, *args) -> Deferred:
        """
        Run blocking kazoo calls in a daemon thread; the Deferred fires in the reactor. Not the
        reactor's pool: a call that waits for ZooKeeper must never hold up the process's exit.
        """
        result = Deferred()
        call_from_thread = self._reactor.callFromThread

        def run() -> None:
            try:
                value = function(*args)
            except BaseException:
                call_from_thread(result.errback, Failure())
            else:
                call_from_thread(result.callback, value)

        threading.Thread(target=run, name="kestrel-serverset", daemon=True).start()
        return result


def _close(client) -> None:
    client.stop()
    client.close()
