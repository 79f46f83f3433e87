"""
Thrift transaction handles: the ids that a Thrift `get` with `auto_abort_msec` hands out
for the items it opens, and that `confirm` and `abort` take back.

Unlike memcache and text reads, these belong to no connection: any connection may confirm
any handle, and closing the connection that opened them aborts nothing. Each handle has
a timer that aborts its item when `auto_abort_msec` has passed. A handle goes when it is
confirmed, aborted or timed out, or when its queue is deleted, so the table never holds
more than the open reads themselves.

A handle keeps the queue object it was opened on, not only the name: a queue that is
deleted and created again hands out the same xids, which must not be confirmed by the
handles of the old one.
"""

from __future__ import annotations

from typing import Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from kestrel.collection import QueueCollection
from kestrel.queue import PersistentQueue


class Handle:
    __slots__ = ("id", "name", "queue", "xid", "owner", "timer")

    def __init__(self, handle_id: int, name: str, queue: PersistentQueue, xid: int, owner: object):
        self.id = handle_id
        self.name = name
        self.queue = queue
        self.xid = xid
        self.owner = owner
        self.timer: IDelayedCall | None = None


class TransactionHandles:
    """Server-wide 64-bit handles, counting from 1, for open reads with an abort timer each."""

    log = Logger()

    def __init__(self, collection: QueueCollection, clock: IReactorTime):
        self.collection = collection
        self.clock = clock
        self._next_id = 1
        self._handles: dict[int, Handle] = {}
        # Per owner (a connection's session) per queue: how many handles it opened that are open.
        self._owned: dict[tuple[object, PersistentQueue], int] = {}

    def __len__(self) -> int:
        return len(self._handles)

    def __contains__(self, handle_id: int) -> bool:
        return handle_id in self._handles

    def start(self) -> None:
        """Follow queue deletions, so the handles of a deleted queue go with it."""
        self.collection.deletion_observers.append(self._queue_deleted)

    def stop(self) -> None:
        """Stop every timer. The reads stay open, as after a crash: the next start rolls them back."""
        if self._queue_deleted in self.collection.deletion_observers:
            self.collection.deletion_observers.remove(self._queue_deleted)
        for handle in list(self._handles.values()):
            self._drop(handle)

    def open_count(self, owner: object, name: str) -> int:
        """How many handles `owner` holds on the queue now called `name`."""
        queue = self.collection.queue(name, create=False)
        return 0 if queue is None else self._owned.get((owner, queue), 0)

    def open(self, owner: object, name: str, queue: PersistentQueue, xid: int, timeout: float) -> int:
        """
        A handle for the read `xid` that `owner` opened on `queue`, aborted after `timeout`
        seconds. 0 when that queue has been deleted since: there is nothing left to confirm.
        """
        if self.collection.queue(name, create=False) is not queue:
            return 0
        handle = Handle(self._next_id, name, queue, xid, owner)
        self._next_id += 1
        self._handles[handle.id] = handle
        key = (owner, queue)
        self._owned[key] = self._owned.get(key, 0) + 1
        handle.timer = self.clock.callLater(timeout, self._time_out, handle.id)
        return handle.id

    def queue_names(self, handle_ids: Iterable[int]) -> set[str]:
        """The queues of the open reads among these handles."""
        return {self._handles[handle_id].name for handle_id in handle_ids if handle_id in self._handles}

    def confirm(self, handle_ids: Iterable[int]) -> int:
        """Confirm the reads behind these handles; returns how many were open."""
        confirmed = 0
        for handle in self._take(handle_ids):
            confirmed += self.collection.confirm(handle.name, handle.xid)
        return confirmed

    def abort(self, handle_ids: Iterable[int]) -> int:
        """Put the items behind these handles back, oldest handle first; returns how many were open."""
        by_queue: dict[str, list[int]] = {}
        for handle in self._take(handle_ids):
            by_queue.setdefault(handle.name, []).append(handle.xid)
        return sum(self.collection.abort(name, xids) for name, xids in by_queue.items())

    def _take(self, handle_ids: Iterable[int]) -> list[Handle]:
        """Remove the known handles among `handle_ids`, oldest first, and stop their timers."""
        taken = [self._handles[handle_id] for handle_id in sorted(set(handle_ids)) if handle_id in self._handles]
        for handle in taken:
            self._drop(handle)
        return taken

    def _time_out(self, handle_id: int) -> None:
        handle = self._handles.get(handle_id)
        if handle is None:
            return
        handle.timer = None
        self._drop(handle)
        if self.collection.unremove(handle.name, handle.xid):
            self.log.debug("auto-abort of handle {handle} on {queue}", handle=handle_id, queue=handle.name)

    def _queue_deleted(self, name: str, queue: PersistentQueue) -> None:
        for handle in [handle for handle in self._handles.values() if handle.queue is queue]:
            self._drop(handle)

    def _drop(self, handle: Handle) -> None:
        del self._handles[handle.id]
        key = (handle.owner, handle.queue)
        left = self._owned[key] - 1
        if left:
            self._owned[key] = left
        else:
            del self._owned[key]
        if handle.timer is not None and handle.timer.active():
            handle.timer.cancel()
        handle.timer = None
