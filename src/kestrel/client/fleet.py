"""
Which server a call goes to, with no I/O: sticky writes, rotating reads, and servers marked
down with back-off, on an injected clock (doc/fleet.md).

`Membership` says which servers there are for writes and for reads; `replace` changes them
live: a fixed list here, or ZooKeeper server sets (`kestrel.client.zookeeper`), which call
`replace` as their membership changes.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence

Role = Literal["read", "write"]

DEFAULT_PORT = 22133


def server_address(server: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or a bare host on the memcache port 22133) as a socket address."""
    host, colon, port = server.rpartition(":")
    if not colon or "]" in port:
        host, port = server, str(DEFAULT_PORT)
    if not port.isdigit() or not host:
        raise ValueError(f"bad server {server!r}: expected host:port")
    return host.strip("[]"), int(port)


class Membership:
    """The servers for each role, replaceable at any time from any thread."""

    def __init__(self, servers: Iterable[str] = (), *, read: Iterable[str] | None = None, write: Iterable[str] | None = None):
        self._lock = threading.Lock()
        self._servers: dict[Role, tuple[str, ...]] = {}
        self.replace(servers, read=read, write=write)

    def replace(self, servers: Iterable[str] = (), *, read: Iterable[str] | None = None, write: Iterable[str] | None = None) -> None:
        """Serve from these servers now: `servers` for both roles, unless `read` or `write` name their own."""
        servers = tuple(servers)
        chosen: dict[Role, tuple[str, ...]] = {
            "read": servers if read is None else tuple(read),
            "write": servers if write is None else tuple(write),
        }
        for role_servers in chosen.values():
            for server in role_servers:
                server_address(server)
        with self._lock:
            self._servers = chosen

    def servers_for(self, role: Role) -> tuple[str, ...]:
        with self._lock:
            return self._servers[role]

    def all_servers(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(dict.fromkeys(self._servers["write"] + self._servers["read"]))


@dataclass
class Health:
    failures: int = 0
    down_until: float = 0.0


class Fleet:
    """
    The server-choice policy of one client, shared by its threads (hence the lock).

    - Writes stick to one healthy server, chosen at random, for `writes_per_server` calls,
      so that many clients spread their writes without a new choice per request.
    - Reads rotate: each read starts one server further along, so consumers spread and no
      server is left unread.
    - A server that fails is down for `backoff_initial` seconds, doubling with each failure
      in a row up to `backoff_max`; a success clears it. When every server is down, all are
      offered anyway, the ones whose back-off ends first first: there is nothing better to try.
    """

    def __init__(
        self,
        membership: Membership,
        *,
        writes_per_server: int = 100,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        choose: random.Random | None = None,
    ):
        if writes_per_server < 1:
            raise ValueError("writes_per_server must be at least 1")
        self.membership = membership
        self.writes_per_server = writes_per_server
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock = clock
        self._random = choose or random.Random()
        self._lock = threading.Lock()
        self._health: dict[str, Health] = {}
        self._write_server: str | None = None
        self._writes_left = 0
        self._next_read = 0

    def is_up(self, server: str) -> bool:
        with self._lock:
            return self._is_up(server)

    def _is_up(self, server: str) -> bool:
        health = self._health.get(server)
        return health is None or health.down_until <= self.clock()

    def _usable(self, servers: Sequence[str]) -> list[str]:
        up = [server for server in servers if self._is_up(server)]
        if up:
            return up
        return sorted(servers, key=lambda server: self._health[server].down_until)

    def write_servers(self) -> list[str]:
        """The servers to try for one write, in order: the sticky choice, then the others up, shuffled."""
        with self._lock:
            usable = self._usable(self.membership.servers_for("write"))
            if not usable:
                return []
            if self._write_server not in usable or self._writes_left <= 0 or not self._is_up(self._write_server):
                self._write_server = self._random.choice(usable)
                self._writes_left = self.writes_per_server
            self._writes_left -= 1
            others = [server for server in usable if server != self._write_server]
            self._random.shuffle(others)
            return [self._write_server, *others]

    def read_servers(self) -> list[str]:
        """The servers to try for one read, in order: a rotation that starts one further each time."""
        with self._lock:
            usable = self._usable(self.membership.servers_for("read"))
            if not usable:
                return []
            start = self._next_read % len(usable)
            self._next_read += 1
            return usable[start:] + usable[:start]

    def failed(self, server: str) -> None:
        """The server refused or dropped a call: down for a back-off that doubles while it keeps failing."""
        with self._lock:
            health = self._health.setdefault(server, Health())
            now = self.clock()
            if health.down_until > now:
                return  # a call that started before it went down: its back-off stands
            health.failures += 1
            health.down_until = now + min(self.backoff_initial * 2 ** min(health.failures - 1, 32), self.backoff_max)
            if server == self._write_server:
                self._writes_left = 0

    def succeeded(self, server: str) -> None:
        with self._lock:
            self._health.pop(server, None)
