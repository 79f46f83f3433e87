"""
The reads the SQS API holds open, server-wide, and the receipt handles of the messages it
handed out (the model is kestrel.protocols.thrift.handles: reads that belong to no
connection, each with an abort timer).

Every message a receive takes leaves the queue as an open (reliable) read, held here:

- in flight: handed to a client under a receipt handle, until it is deleted (confirmed) or
  its visibility timeout ends (aborted: back to the head of the queue). ChangeMessageVisibility
  starts the timeout again; 0 aborts at once.
- delayed: met before its `visible_at`; a timer aborts it then, which puts it back at the head
  and wakes a waiting receive.
- parked: a FIFO message whose group has a message out (in flight or delayed); no timer. It
  goes back when none of its group is out, with the others of its group in the order they
  were sent (kestrel.sqs.fifo). A message of a group that comes back while others of its
  group are still out is parked too, so that it goes back before the later ones.

A receipt handle is the URL-safe base64 of a mark, the queue's incarnation (a random number
for each queue object this server has held reads on, so a handle outlives neither its queue
nor a restart), a per-delivery number, the xid of the read, and the queue's name. A handle
that reads as one but whose read is no longer held (deleted, come back, redelivered since,
purged, or from before a restart, after which the journal brought every held read back to
its queue) is stale: DeleteMessage and ChangeMessageVisibility succeed doing nothing, as SQS
does. Anything else is ReceiptHandleIsInvalid.
"""

from __future__ import annotations

import base64
import binascii
import enum
import itertools
import secrets
import struct
from typing import Iterable

from kestrel.clock import Clock, Timer
from kestrel.collection import QueueCollection
from kestrel.queue import Item, PersistentQueue
from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.fifo import MessageGroups
from kestrel.sqs.names import is_fifo

# SQS's limit on a message's visibility timeout, counted from the receive that handed it out.
MAX_VISIBILITY = 43_200
_HANDLE = struct.Struct(">4sQQI")
_HANDLE_MARK = b"KSQ1"


class Hold(enum.Enum):
    IN_FLIGHT = "in flight"
    DELAYED = "delayed"
    PARKED = "parked"


class QueueHolds:
    """The reads held on one queue object, by xid, and its message groups when it is a FIFO queue."""

    __slots__ = ("name", "queue", "incarnation", "reads", "groups")

    def __init__(self, name: str, queue: PersistentQueue):
        self.name = name
        self.queue = queue
        self.incarnation = secrets.randbits(64)
        self.reads: dict[int, HeldRead] = {}
        self.groups: MessageGroups[HeldRead] | None = MessageGroups() if is_fifo(name) else None


class HeldRead:
    __slots__ = ("holds", "item", "xid", "hold", "group", "nonce", "timer", "received_at")

    def __init__(self, holds: QueueHolds, item: Item, hold: Hold, group: str | None):
        self.holds = holds
        self.item = item
        self.xid = item.xid
        self.hold = hold
        self.group = group if holds.groups is not None else None
        self.nonce = 0
        self.timer: Timer | None = None
        self.received_at = 0.0


class HeldReads:
    def __init__(self, collection: QueueCollection, clock: Clock):
        self._collection = collection
        self._clock = clock
        self._queues: dict[str, QueueHolds] = {}
        # The reads handed out under a receipt handle, by their delivery number.
        self._handed_out: dict[int, HeldRead] = {}
        self._deliveries = itertools.count(1)

    # Holding

    def hold_in_flight(self, name: str, queue: PersistentQueue, item: Item, group: str | None, visibility: float) -> HeldRead:
        """A read handed to a client, back in the queue after `visibility` seconds unless deleted."""
        read = self._hold(name, queue, item, Hold.IN_FLIGHT, group)
        read.nonce = next(self._deliveries)
        read.received_at = self._clock.seconds()
        self._handed_out[read.nonce] = read
        self._went_out(read)
        read.timer = self._clock.callLater(visibility, self._time_up, read)
        return read

    def hold_delayed(self, name: str, queue: PersistentQueue, item: Item, group: str | None, visible_at: float) -> None:
        """A read of a message not yet due: back in the queue at `visible_at` (clock seconds)."""
        read = self._hold(name, queue, item, Hold.DELAYED, group)
        self._went_out(read)
        read.timer = self._clock.callLater(max(0.0, visible_at - self._clock.seconds()), self._time_up, read)

    def hold_parked(self, name: str, queue: PersistentQueue, item: Item, group: str) -> None:
        """A read of a FIFO message whose group is held up: back in the queue when the group is free."""
        read = self._hold(name, queue, item, Hold.PARKED, group)
        assert read.holds.groups is not None
        read.holds.groups.park(group, read)

    def held_up(self, name: str, queue: PersistentQueue, group: str) -> bool:
        """Whether FIFO queue `name` has a message of `group` out, so that later ones must wait."""
        holds = self._queues.get(name)
        return holds is not None and holds.queue is queue and holds.groups is not None and holds.groups.held_up(group)

    def _hold(self, name: str, queue: PersistentQueue, item: Item, hold: Hold, group: str | None) -> HeldRead:
        holds = self._queues.get(name)
        if holds is None or holds.queue is not queue:
            holds = self._queues[name] = QueueHolds(name, queue)
        read = HeldRead(holds, item, hold, group)
        holds.reads[read.xid] = read
        return read

    def _went_out(self, read: HeldRead) -> None:
        if read.group is not None and read.holds.groups is not None:
            read.holds.groups.went_out(read.group)

    # Receipt handles

    def receipt_handle(self, read: HeldRead) -> str:
        packed = _HANDLE.pack(_HANDLE_MARK, read.holds.incarnation, read.nonce, read.xid)
        return base64.urlsafe_b64encode(packed + read.holds.name.encode("utf-8")).decode("ascii")

    def find(self, name: str, receipt_handle: str) -> HeldRead | None:
        """
        The read in flight under `receipt_handle` on queue `name`; None for a stale handle;
        ReceiptHandleIsInvalid for a string that is no handle of this queue.
        """
        incarnation, nonce, xid, handle_name = _parse_handle(receipt_handle)
        if handle_name != name:
            raise invalid_handle(receipt_handle)
        read = self._handed_out.get(nonce)
        if read is None or read.holds.incarnation != incarnation or read.xid != xid or read.holds.name != name:
            return None
        if not self._still_open(read):
            self._come_back([read])
            return None
        return read

    # Ending

    def delete(self, read: HeldRead) -> None:
        """The client deleted the message: confirm its read."""
        self._forget(read)
        self._collection.confirm(read.holds.name, read.xid)
        self._abort(self._came_in(read))

    def change_visibility(self, read: HeldRead, timeout: int) -> None:
        """Start the visibility timeout again, `timeout` seconds from now; 0 puts the message back at once."""
        if timeout == 0:
            self._come_back([read])
            return
        if self._clock.seconds() - read.received_at + timeout > MAX_VISIBILITY:
            raise sqs_error(
                "InvalidParameterValue",
                f"Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout "
                f"for the message is beyond the limit [{MAX_VISIBILITY} seconds]",
            )
        if read.timer is not None:
            read.timer.cancel()
        read.timer = self._clock.callLater(timeout, self._time_up, read)

    def give_back(self, reads: Iterable[HeldRead]) -> None:
        """Put messages handed out back in their queue now (the receive that took them was cancelled)."""
        self._come_back(list(reads))

    def _time_up(self, read: HeldRead) -> None:
        read.timer = None
        self._come_back([read])

    def _come_back(self, reads: list[HeldRead]) -> None:
        returning: list[HeldRead] = []
        for read in reads:
            self._forget(read)
            groups = read.holds.groups
            if groups is None or read.group is None or groups.came_in(read.group):
                returning.append(read)
                returning.extend(self._unpark(read))
            else:
                # Others of its group are still out: it waits with the group's parked reads.
                read.hold = Hold.PARKED
                read.holds.reads[read.xid] = read
                groups.park(read.group, read)
        self._abort(returning)

    def _came_in(self, read: HeldRead) -> list[HeldRead]:
        """A read of a group is over: the parked reads of the group when none of it is out any more."""
        groups = read.holds.groups
        if groups is None or read.group is None or not groups.came_in(read.group):
            return []
        return self._unpark(read)

    def _unpark(self, read: HeldRead) -> list[HeldRead]:
        groups = read.holds.groups
        return [] if groups is None or read.group is None else groups.unpark(read.group)

    def _abort(self, reads: list[HeldRead]) -> None:
        """Put reads back at the head of their queues, each queue's in the order they were sent."""
        by_queue: dict[QueueHolds, list[HeldRead]] = {}
        for read in reads:
            self._forget(read)
            if self._still_open(read):
                by_queue.setdefault(read.holds, []).append(read)
        for holds, returning in by_queue.items():
            returning.sort(key=lambda read: read.item.seq)
            self._collection.abort(holds.name, [read.xid for read in returning])

    def _forget(self, read: HeldRead) -> None:
        if read.holds.reads.get(read.xid) is read:
            del read.holds.reads[read.xid]
        if read.nonce:
            self._handed_out.pop(read.nonce, None)
        if read.timer is not None and read.timer.active():
            read.timer.cancel()
        read.timer = None

    def _still_open(self, read: HeldRead) -> bool:
        """Whether the read is still open (the engine may have aborted it: `open_transaction_timeout`)."""
        queue = read.holds.queue
        return read.item.xid == read.xid and not queue.closed and self._collection.queue(read.holds.name, create=False) is queue

    # Whole queues

    def counts(self, name: str, queue: PersistentQueue) -> dict[Hold, int]:
        counts = dict.fromkeys(Hold, 0)
        holds = self._queues.get(name)
        if holds is not None and holds.queue is queue:
            for read in holds.reads.values():
                counts[read.hold] += 1
        return counts

    def purge(self, name: str, queue: PersistentQueue) -> int:
        """Confirm every read held on the queue (PurgeQueue); how many there were."""
        holds = self._queues.pop(name, None)
        if holds is None or holds.queue is not queue:
            return 0
        reads = list(holds.reads.values())
        for read in reads:
            self._forget(read)
            if self._still_open(read):
                self._collection.confirm(name, read.xid)
        return len(reads)

    def queue_deleted(self, name: str, queue: PersistentQueue) -> None:
        """The queue is gone, and its open reads with it: forget them and stop their timers."""
        holds = self._queues.get(name)
        if holds is not None and holds.queue is queue:
            del self._queues[name]
            for read in list(holds.reads.values()):
                self._forget(read)

    def give_back_all(self) -> None:
        """Put every held message back in its queue (the service stops)."""
        reads = [read for holds in self._queues.values() for read in holds.reads.values()]
        self._queues.clear()
        self._abort(reads)


def _parse_handle(receipt_handle: str) -> tuple[int, int, int, str]:
    try:
        packed = base64.b64decode(receipt_handle.encode("ascii"), altchars=b"-_", validate=True)
        mark, incarnation, nonce, xid = _HANDLE.unpack_from(packed)
        name = packed[_HANDLE.size :].decode("utf-8")
    except (UnicodeError, binascii.Error, struct.error):
        raise invalid_handle(receipt_handle) from None
    if mark != _HANDLE_MARK or not name:
        raise invalid_handle(receipt_handle)
    return incarnation, nonce, xid, name


def invalid_handle(receipt_handle: str) -> SqsError:
    return sqs_error("ReceiptHandleIsInvalid", f'The input receipt handle "{receipt_handle}" is not a valid receipt handle.')
