"""
Session: one client connection's dealings with the server, whatever its protocol.

It keeps the connection's open (reliable) reads per queue, oldest first, and its pending
blocking reads. It applies the per-connection rules and status refusals, and rolls
everything back when the connection ends.
"""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import Callable, ClassVar, Iterator

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from kestrel.queue import Item, PersistentQueue
from kestrel.server import ServerContext


class SessionError(Exception):
    """A request the session refuses; the protocol maps each kind to its own reply."""


class Unavailable(SessionError):
    """The server status (or a connection limit) forbids this operation now."""

    def __str__(self) -> str:
        return f"Server not available for operation {self.args[0]}"


class TooManyOpenReads(SessionError):
    def __str__(self) -> str:
        return f"Too many open transactions; limit={self.args[0]}"


class ReadStillOpen(SessionError):
    """A plain get on a queue where this connection holds an open read."""

    def __str__(self) -> str:
        return f"a read is still open on {self.args[0]}: confirm (/close) or abort it first"


FetchResult = Item | None | Deferred


class OpenReads:
    """
    The xids of one queue's open reads on a connection, oldest first, and that queue. (A
    deque it holds, not one it is: mypyc cannot compile a subclass of deque.)
    """

    __slots__ = ("queue", "_xids")

    def __init__(self, queue: PersistentQueue | None):
        self.queue = queue
        self._xids: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._xids)

    def __bool__(self) -> bool:
        # Spelled out: mypyc takes an object of a compiled class without __bool__ to be true.
        return bool(self._xids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._xids)

    def append(self, xid: int) -> None:
        self._xids.append(xid)

    def popleft(self) -> int:
        return self._xids.popleft()


class Session:
    log: ClassVar[Logger] = Logger()

    def __init__(self, server: ServerContext, track_open_reads: bool = True):
        self.server = server
        # False for Thrift: its open reads live under server-wide handles, which the
        # connection neither limits here nor aborts when it finishes.
        self.track_open_reads = track_open_reads
        self.collection = server.collection
        self.stats = server.stats
        self.latencies = server.latencies
        self._open_reads: dict[str, OpenReads] = {}
        self._pending: set[Deferred] = set()
        self.finished = False
        # The Finagle client id of the request being handled (Thrift after its protocol
        # upgrade); None for a client that sends none, and every memcache and text client.
        self.client_id: str | None = None
        self.stats.curr_connections += 1
        self.stats.total_connections += 1
        connections = self.stats.curr_connections
        config = server.config
        self._refuse_writes = config.connection_limit_refuse_writes is not None and connections > config.connection_limit_refuse_writes
        self._refuse_reads = config.connection_limit_refuse_reads is not None and connections > config.connection_limit_refuse_reads

    # Writing

    def set(self, name: str, data: bytes, expiry: int = 0) -> bool | Deferred:
        """
        Add an item (expiry in epoch ms, 0 = none). True or False at once, or, for a queue
        that fsyncs every write, a Deferred that fires True once the item is on disk.
        """
        self.check_writable("set")
        if self.collection.has_whitelists:
            self._check_client_id("set", name, enqueue=True)
        started = perf_counter()
        self.stats.cmd_set += 1
        stored = self.collection.add(name, data, expiry)
        durable = self.collection.durability(name) if stored else None
        if durable is not None:
            return durable.addCallback(self._stored, started)
        self.latencies.set.observe(perf_counter() - started)
        return stored

    def _stored(self, _, started: float) -> bool:
        self.latencies.set.observe(perf_counter() - started)
        return True

    def check_writable(self, operation: str) -> None:
        if self._refuse_writes or not self.server.status.writable:
            self._refuse(operation, self._refuse_writes)

    def check_readable(self, operation: str) -> None:
        if self._refuse_reads or not self.server.status.readable:
            self._refuse(operation, self._refuse_reads)

    def _check_client_id(self, operation: str, name: str, enqueue: bool) -> None:
        """A queue with a client-id whitelist serves only the listed ids (doc/compatibility.md §3.8)."""
        config = self.collection.queue_config(name)
        allowed = config.whitelist_client_id_for_enqueue if enqueue else config.whitelist_client_id_for_dequeue
        if allowed is not None and self.client_id not in allowed:
            self.log.debug("refused {operation} on {queue}: client id {client_id} is not listed",
                           operation=operation, queue=name, client_id=self.client_id)
            raise Unavailable(operation)

    def _refuse(self, operation: str, over_connection_limit: bool) -> None:
        reason = "over the connection limit" if over_connection_limit else f"server status {self.server.status.current.display}"
        self.log.debug("refused {operation}: {reason}", operation=operation, reason=reason)
        raise Unavailable(operation)

    # Reading

    def fetch(self, name: str, transaction: bool = False, peek: bool = False, deadline: float | None = None) -> FetchResult:
        """
        Read one item: now (an Item or None) or later (a Deferred), waiting until the
        deadline (clock seconds) if one is given. A transactional read stays open on this
        connection until it is confirmed or aborted.
        """
        self.check_readable("peek" if peek else "get")
        if not peek and self.collection.has_whitelists:
            self._check_client_id("get", name, enqueue=False)
        started = perf_counter()
        reads = self._reads(name)
        if reads:
            if not transaction and not peek:
                raise ReadStillOpen(name)
            if transaction and len(reads) >= self.server.max_open_transactions:
                raise TooManyOpenReads(self.server.max_open_transactions)
        if peek:
            self.stats.cmd_peek += 1
        else:
            self.stats.cmd_get += 1
        if self.collection.is_alias(name):
            return None
        result = self.collection.fetch(name, transaction, peek, deadline)
        # Asked this way round: an answer now is the common case, and isinstance against
        # Deferred (a generic, so an ABC check) costs more than the rest of the test.
        if result is None or isinstance(result, Item):
            return self._fetched(result, name, transaction, peek, started)
        self._pending.add(result)
        result.addBoth(self._settled, result)
        return result.addCallback(self._fetched, name, transaction, peek, started)

    def _settled(self, result, pending: Deferred):
        self._pending.discard(pending)
        return result

    def _fetched(self, item: Item | None, name: str, transaction: bool, peek: bool, started: float) -> FetchResult:
        if item is None:
            self.stats.get_misses += 1
            self.latencies.get_miss.observe(perf_counter() - started)
            return None
        self.stats.get_hits += 1
        self.latencies.get_hit.observe(perf_counter() - started)
        if not peek:
            self.latencies.delivery.observe(self.server.clock.seconds() - item.add_time / 1000)
        if transaction:
            if self.finished:
                # The connection went away while the item was on its way: put it back.
                self.collection.unremove(name, item.xid)
                return None
            if self.track_open_reads:
                reads = self._reads(name)
                if reads is None:
                    reads = self._open_reads[name] = OpenReads(self.collection.queue(name, create=False))
                reads.append(item.xid)
        if peek:
            return item
        durable = self.collection.durability(name, fanout=False)
        return item if durable is None else self._deliver_when_durable(durable, item)

    def _deliver_when_durable(self, durable: Deferred, item: Item) -> Deferred:
        # The item has left the queue: if its removal cannot be made durable now (the journal
        # retries it), it is delivered all the same rather than lost. (Apart from `_fetched`:
        # compiled, a lambda there would cost every read the allocation of its closure.)
        return durable.addBoth(lambda _: item)

    def _reads(self, name: str) -> OpenReads | None:
        reads = self._open_reads.get(name)
        if reads is not None and reads.queue is not self.collection.queue(name, create=False):
            # The queue was deleted: its open reads went with it, and a new queue of that
            # name hands out the same xids to other connections.
            del self._open_reads[name]
            return None
        return reads

    def open_reads(self, name: str) -> int:
        reads = self._reads(name)
        return len(reads) if reads else 0

    def monitor(self, name: str, timeout: float, max_items: int | None, deliver: Callable[[Item], None]) -> Deferred:
        """
        Open items one after another and hand each to `deliver`, until `max_items` have
        gone, the timeout (seconds) passes, or this connection holds as many open reads
        as it may. Fires with None when the stream ends.
        """
        self.check_readable("monitor")
        self.stats.cmd_monitor += 1
        limit = self.server.max_open_transactions if max_items is None else max_items
        deadline = self.server.clock.seconds() + timeout
        finished: Deferred = Deferred()
        sent = 0

        def next_item() -> None:
            nonlocal sent
            while sent < limit and self.open_reads(name) < self.server.max_open_transactions and not self.finished:
                if not (self.server.status.readable and not self._refuse_reads):
                    break
                self.stats.cmd_monitor_get += 1
                result = self.fetch(name, transaction=True, deadline=deadline)
                if isinstance(result, Deferred):
                    result.addCallbacks(arrived, ended)
                    return
                if result is None:
                    break
                deliver(result)
                sent += 1
            finished.callback(None)

        def arrived(item: Item | None) -> None:
            nonlocal sent
            if item is None:
                finished.callback(None)
                return
            deliver(item)
            sent += 1
            next_item()

        def ended(failure) -> None:
            failure.trap(CancelledError)
            finished.callback(None)

        next_item()
        return finished

    # Closing reads

    def confirm_oldest(self, name: str) -> bool:
        reads = self._reads(name)
        return reads is not None and bool(reads) and self.collection.confirm(name, reads.popleft())

    def abort_oldest(self, name: str) -> bool:
        reads = self._reads(name)
        return reads is not None and bool(reads) and self.collection.unremove(name, reads.popleft())

    def confirm(self, name: str, count: int) -> bool:
        """Confirm the `count` oldest open reads on a queue: all of them, or none if fewer are open."""
        reads = self._reads(name)
        if count <= 0 or not reads or count > len(reads):
            return False
        for _ in range(count):
            self.collection.confirm(name, reads.popleft())
        return True

    def confirm_all(self, name: str) -> int:
        count = self.open_reads(name)
        if count:
            self.confirm(name, count)
        return count

    def finish(self) -> None:
        """The connection is gone: cancel its waiting reads and abort its open ones."""
        if self.finished:
            return
        self.finished = True
        self.stats.curr_connections -= 1
        for pending in list(self._pending):
            pending.cancel()
        for name in list(self._open_reads):
            reads = self._reads(name)
            if reads:
                self.collection.abort(name, list(reads))
        self._open_reads.clear()
