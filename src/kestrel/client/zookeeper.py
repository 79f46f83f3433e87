"""
The servers of a fleet, from ZooKeeper server sets (doc/fleet.md): the members of
`<prefix>/write` take writes and those of `<prefix>/read` serve reads, as each server's status
puts it there (`kestrel.serverset`). Watches keep a `Membership` matched to the sets, so
membership changes apply while the client runs.

kazoo calls the watches in a thread of its own; `Membership.replace` is safe from any thread.
While ZooKeeper cannot be reached, the last membership seen stays in force: servers that
still serve are still used.
"""

from __future__ import annotations

import json
import threading
from typing import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe.watchers import ChildrenWatch

from kestrel.client.fleet import Membership, Role
from kestrel.client.protocol import ZooKeeperUnreachable

ROLES: tuple[Role, Role] = ("write", "read")


def parse_zookeeper(spec: str) -> tuple[str, str]:
    """`host:port[,host:port...]/prefix` as (hosts, prefix)."""
    hosts, slash, prefix = spec.partition("/")
    if not hosts or not slash or not prefix or prefix.endswith("/"):
        raise ValueError(f"bad zookeeper {spec!r}: expected host:port[,host:port]/path_prefix")
    return hosts, "/" + prefix


def memcache_server(record: bytes) -> str | None:
    """The `host:port` of a member's memcache endpoint, from its serverset JSON; None if it has none."""
    try:
        member = json.loads(record)
        endpoints = member.get("additionalEndpoints") or {}
        endpoint = endpoints.get("memcache")
        if endpoint is None and not endpoints:
            endpoint = member["serviceEndpoint"]
        if endpoint is None:
            return None
        host, port = endpoint["host"], int(endpoint["port"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerSets:
    """Watches the write and read sets under a prefix and replaces `membership` as they change."""

    def __init__(self, spec: str, membership: Membership, timeout: float = 10.0,
                 on_change: Callable[[], None] | None = None):
        hosts, self.prefix = parse_zookeeper(spec)
        self._membership = membership
        self._on_change = on_change
        self._members: dict[Role, list[str]] = {"write": [], "read": []}
        self._records: dict[str, str | None] = {}  # node path -> server (member nodes never change)
        # The first calls come from this thread, later ones from kazoo's.
        self._lock = threading.Lock()
        self._client = KazooClient(hosts=hosts, timeout=timeout)
        try:
            self._client.start(timeout=timeout)
        except KazooTimeoutError:
            self._client.close()
            raise ZooKeeperUnreachable(f"no answer from ZooKeeper at {hosts} within {timeout:g} s") from None
        for role in ROLES:
            path = f"{self.prefix}/{role}"
            self._client.ensure_path(path)
            ChildrenWatch(self._client, path, lambda children, role=role: self._changed(role, children))

    def _changed(self, role: Role, children: list[str]) -> None:
        with self._lock:
            self._update(role, children)
        if self._on_change is not None:
            self._on_change()

    def _update(self, role: Role, children: list[str]) -> None:
        path = f"{self.prefix}/{role}"
        servers = []
        for child in sorted(children):
            node = f"{path}/{child}"
            if node not in self._records:
                try:
                    self._records[node] = memcache_server(self._client.get(node)[0])
                except NoNodeError:  # gone between the listing and the read
                    continue
            server = self._records[node]
            if server is not None:
                servers.append(server)
        present = {f"{path}/{child}" for child in children}
        for node in [node for node in self._records if node.startswith(path + "/") and node not in present]:
            del self._records[node]
        self._members[role] = list(dict.fromkeys(servers))
        self._membership.replace(read=self._members["read"], write=self._members["write"])

    def close(self) -> None:
        self._client.stop()
        self._client.close()
