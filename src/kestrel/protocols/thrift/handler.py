"""
The Kestrel Thrift service (doc/compatibility.md §2.3) for one connection: the eleven methods of
kestrel.thrift, each returning its result at once, or a Deferred of it when it has to
wait (a get with a timeout, a put to a queue that fsyncs every write).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.envelope import body_of
from kestrel.protocols.thrift.codec import QueueInfo, ThriftItem, ThriftStatus
from kestrel.protocols.thrift.handles import TransactionHandles
from kestrel.queue import Item, PersistentQueue
from kestrel.server import ServerContext
from kestrel.session import Session, Unavailable
from kestrel.status import Status

# What current_status reports; anything else (write-avoid, down, no status file) is NOT_CONFIGURED.
REPORTED_STATUS = {
    Status.UP: ThriftStatus.UP,
    Status.READONLY: ThriftStatus.READ_ONLY,
    Status.QUIESCENT: ThriftStatus.QUIESCENT,
}
SETTABLE_STATUS = {ThriftStatus.UP: "up", ThriftStatus.READ_ONLY: "readonly", ThriftStatus.QUIESCENT: "quiescent"}


class ThriftRefusal(Exception):
    """A call refused for a reason the client should read (an application exception)."""


def name_of(value: bytes | None) -> str:
    if not value:
        raise ThriftRefusal("queue_name is required")
    return value.decode("latin-1")


class ThriftHandler:
    log = Logger()

    def __init__(self, server: ServerContext, session: Session, handles: TransactionHandles):
        self.server = server
        self.collection = server.collection
        self.clock = server.clock
        self.session = session
        self.handles = handles

    def put(self, queue_name: bytes, items: list[bytes] | None, expiration_msec: int | None) -> int | Deferred:
        """Add in order until the queue refuses one; the count of those added."""
        name = name_of(queue_name)
        expiry = 0
        if expiration_msec and expiration_msec > 0:
            expiry = int(self.clock.seconds() * 1000) + expiration_msec
        added = 0
        durable = []
        for data in items or ():
            stored = self.session.set(name, data, expiry)
            if not stored:
                break
            added += 1
            if isinstance(stored, Deferred):
                durable.append(stored)
        if durable:
            return gatherResults(durable, consumeErrors=True).addCallback(lambda _: added)
        return added

    def get(self, queue_name: bytes, max_items: int | None, timeout_msec: int | None, auto_abort_msec: int | None):
        name = name_of(queue_name)
        deadline = None
        if timeout_msec and timeout_msec > 0:
            deadline = self.clock.seconds() + timeout_msec / 1000
        auto_abort = auto_abort_msec / 1000 if auto_abort_msec and auto_abort_msec > 0 else 0.0
        return ThriftGet(self, name, max_items or 0, deadline, auto_abort).run()

    def confirm(self, queue_name: bytes, ids: list[int] | None) -> int | Deferred:
        # Handles are server-wide: the queue name does not narrow the lookup (as in Kestrel).
        ids = ids or ()
        names = self.handles.queue_names(ids)
        confirmed = self.handles.confirm(ids)
        # On queues that fsync every write, the count acknowledges durable confirms.
        waits = [wait for wait in (self.session.collection.durability(name, fanout=False) for name in names) if wait]
        if waits:
            return gatherResults(waits, consumeErrors=True).addCallback(lambda _: confirmed)
        return confirmed

    def abort(self, queue_name: bytes, ids: list[int] | None) -> int:
        return self.handles.abort(ids or ())

    def peek(self, queue_name: bytes):
        name = name_of(queue_name)
        result = self.session.fetch(name, peek=True)
        if isinstance(result, Deferred):
            return result.addCallback(self._queue_info, name)
        return self._queue_info(result, name)

    def _queue_info(self, head: Item | None, name: str):
        queue = self.collection.queue(name, create=False)
        stats = dict(queue.stats()) if queue is not None else {}
        return QueueInfo(
            head_item=None if head is None else body_of(head.data),
            items=stats.get("items", 0),
            bytes=stats.get("bytes", 0),
            journal_bytes=stats.get("logsize", 0),
            age=stats.get("age", 0),
            waiters=stats.get("waiters", 0),
            open_transactions=stats.get("open_transactions", 0),
        )

    def flush_queue(self, queue_name: bytes) -> None:
        name = name_of(queue_name)
        self.session.check_writable("flush")
        self.collection.flush(name)

    def flush_all_queues(self) -> None:
        self.session.check_writable("flush_all")
        self.collection.flush_all()

    def delete_queue(self, queue_name: bytes) -> None:
        name = name_of(queue_name)
        self.session.check_writable("delete")
        self.collection.delete(name)

    def current_status(self) -> int:
        status = self.server.status
        if not status.configured:
            return ThriftStatus.NOT_CONFIGURED
        return REPORTED_STATUS.get(status.current, ThriftStatus.NOT_CONFIGURED)

    def set_status(self, status: int | None) -> None:
        name = SETTABLE_STATUS.get(status)
        if name is None:
            raise ThriftRefusal(f"status {status} cannot be set")
        try:
            self.server.status.set(name)
        except OSError as error:
            self.log.error("cannot save the server status: {error}", error=error)
            raise ThriftRefusal("cannot save the server status") from None

    def get_version(self) -> str:
        return self.server.protocol_version


class ThriftGet:
    """
    One `get`: takes items until it has `max_items`, a read finds nothing by the deadline,
    or (when it opens them) the connection holds `max_open_transactions` on the queue.
    Items opened with an auto-abort get their handles and timers when the get completes.
    """

    __slots__ = ("handler", "name", "max_items", "deadline", "auto_abort", "taken", "done")

    def __init__(self, handler: ThriftHandler, name: str, max_items: int, deadline: float | None, auto_abort: float):
        self.handler = handler
        self.name = name
        self.max_items = max_items
        self.deadline = deadline
        self.auto_abort = auto_abort
        # Each item with the queue that gave it, which a handle must name.
        self.taken: list[tuple[Item, PersistentQueue | None]] = []
        self.done: Deferred | None = None

    def run(self) -> list | Deferred:
        if self._collect():
            return self._items()
        return self.done

    def _collect(self) -> bool:
        """Take what is there now; True when the get is complete, False while a read waits."""
        session = self.handler.session
        opening = self.auto_abort > 0
        while len(self.taken) < self.max_items:
            if opening and not self._may_open():
                break
            try:
                result = session.fetch(self.name, transaction=opening, deadline=self.deadline)
            except Unavailable:
                if not self.taken and self.done is None:
                    raise
                # The status changed while the get waited: it ends with what it has.
                break
            if isinstance(result, Deferred):
                if self.done is None:
                    self.done = Deferred()
                result.addCallbacks(self._arrived, self._abandoned)
                return False
            if result is None:
                break
            self._take(result)
        return True

    def _may_open(self) -> bool:
        held = self.handler.handles.open_count(self.handler.session, self.name) + len(self.taken)
        return held < self.handler.server.max_open_transactions

    def _take(self, item: Item) -> None:
        self.taken.append((item, self.handler.collection.queue(self.name, create=False)))

    def _arrived(self, item: Item | None) -> None:
        try:
            if item is not None:
                self._take(item)
                if not self._collect():
                    return
            items = self._items()
        except Exception:
            self.done.errback()
            return
        self.done.callback(items)

    def _abandoned(self, failure: Failure) -> None:
        # The connection went away while a read waited (or the read failed): what this get
        # opened goes back to the queue.
        if self.auto_abort:
            collection = self.handler.collection
            xids = [item.xid for item, queue in self.taken if queue is collection.queue(self.name, create=False)]
            if xids:
                collection.abort(self.name, xids)
        self.taken = []
        self.done.errback(failure)

    def _items(self) -> list:
        if not self.auto_abort:
            return [ThriftItem(data=body_of(item.data), id=0) for item, _ in self.taken]
        handler = self.handler
        return [
            ThriftItem(data=body_of(item.data), id=handler.handles.open(handler.session, self.name, queue, item.xid, self.auto_abort))
            for item, queue in self.taken
        ]
