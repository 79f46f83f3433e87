"""
PersistentQueue: a strict FIFO of items, held in memory and journaled to disk.

A queue whose contents outgrow `max_memory_size` keeps only its head in memory and reads
the rest back from its journal as the head drains (`kestrel.read_behind`). Reads that open
a transaction move the item to a table of open reads under a per-queue id (xid) until the
client confirms or aborts it. Its journal is kept small by `kestrel.upkeep`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar, Final, Sequence, cast

from twisted.internet.defer import Deferred
from kestrel.clock import Clock
from twisted.logger import Logger

from kestrel.config import QueueConfig
from kestrel.head_list import HeadList
from kestrel.history import records as history_records
from kestrel.history.log import History
from kestrel.journal import records
from kestrel.journal.journal import Journal
from kestrel.journal.writer import all_durable
from kestrel.read_behind import ReadBehind, ReadItems
from kestrel.upkeep import Checkpoint, JournalUpkeep
from kestrel.waiters import DeadlineWaitQueue, Waiter

MAX_XID: Final = 2**31 - 1
# Distinct configs whose QueueLimits are kept for the queues to share: many more would be
# many configured queues, each with its own anyway.
SHARED_LIMITS: Final = 1024


class QueueUnavailable(Exception):
    """The queue cannot take items now: its journal cannot be written."""

    def __str__(self) -> str:
        return f"queue {self.args[0]} cannot be written: {self.args[1]}"


class Item:
    """
    One queued item. Times are epoch milliseconds; an expiry of 0 means none. `seq` numbers
    items in the order they were added, so a read-behind checkpoint can name them; `xid` is
    the id of the open read that holds the item, or 0. `deliveries` counts the reliable reads
    that handed it out (aborts keep the count), `first_delivery_time` is when the first did
    (0 before): they live in memory only, as the journal has no place for them, so a
    replayed item or one read back from disk starts again at 0 (doc/configuration.md).
    """

    __slots__ = ("data", "add_time", "expiry", "seq", "xid", "deliveries", "first_delivery_time")

    def __init__(self, data: bytes, add_time: int, expiry: int, seq: int):
        self.data = data
        self.add_time = add_time
        self.expiry = expiry
        self.seq = seq
        self.xid = 0
        self.deliveries = 0
        self.first_delivery_time = 0

    def __repr__(self) -> str:
        return f"<Item {self.data[:20]!r} seq={self.seq} xid={self.xid}>"


class QueueLimits:
    """
    The settings a queue (and its journal upkeep) reads on every add, copied from its
    QueueConfig. The compiled build reads these as fields of a compiled class; each read of
    the config, a plain dataclass, is a lookup by name.
    """

    __slots__ = (
        "max_items", "max_size", "max_item_size", "max_age_ms", "discard_old_when_full", "max_expire_sweep",
        "fanout_only", "keep_journal", "max_memory_size", "default_journal_size", "max_journal_size",
        "disable_aggressive_rewrites", "min_journal_compact_delay", "max_deliveries",
    )

    def __init__(self, config: QueueConfig):
        self.max_items = config.max_items
        self.max_size = config.max_size
        self.max_item_size = config.max_item_size
        self.max_age_ms: int | None = None if config.max_age is None else int(config.max_age * 1000)
        self.discard_old_when_full = config.discard_old_when_full
        self.max_expire_sweep = config.max_expire_sweep
        self.fanout_only = config.fanout_only
        self.keep_journal = config.keep_journal
        self.max_memory_size = config.max_memory_size
        self.default_journal_size = config.default_journal_size
        self.max_journal_size = config.max_journal_size
        self.disable_aggressive_rewrites = config.disable_aggressive_rewrites
        self.min_journal_compact_delay = config.min_journal_compact_delay
        self.max_deliveries = config.max_deliveries


_limits_by_config: Final[dict[QueueConfig, QueueLimits]] = {}

# The open reads of every queue that has none: empty, and never written to (a queue gets a
# dict of its own at its first open read, `_open_read`), as most of a million queues have none.
NO_OPEN_READS: Final[dict[int, tuple[Item, float]]] = {}


def shared_limits(config: QueueConfig) -> QueueLimits:
    """
    The QueueLimits of `config`, one for all the queues with equal configs, which is most of
    them: 144 bytes a queue fewer (issue 15). Nothing changes a QueueLimits once made.
    """
    limits = _limits_by_config.get(config)
    if limits is None:
        if len(_limits_by_config) >= SHARED_LIMITS:
            _limits_by_config.clear()
        limits = _limits_by_config[config] = QueueLimits(config)
    return limits


class PersistentQueue:
    log: ClassVar[Logger] = Logger()

    # Slots: every queue has one, and a million queues is a use case (issue 15).
    __slots__ = (
        "name", "config", "limits", "_clock", "journal", "waiters", "closed", "expired_sink",
        "_expiry_refused", "dead_letter_sink", "_dead_letter_refused", "_memory", "_open", "items", "bytes",
        "memory_bytes", "_next_seq", "_xid", "_replaying", "_returned_at_head", "_last_removed_add_time",
        "_read_behind", "_upkeep", "created_at", "total_items", "put_bytes", "expired_items", "discarded",
        "transactions", "canceled_transactions", "total_flushes", "get_hits", "get_misses", "lost_items",
        "dead_lettered", "history",
    )

    def __init__(self, name: str, config: QueueConfig, journal: Journal, clock: Clock):
        self.name = name
        self.config = config
        self.limits = shared_limits(config)
        self._clock = clock
        self.journal = journal
        journal.keep = config.keep_journal
        journal.sync_journal = config.sync_journal
        self.waiters = DeadlineWaitQueue(clock)
        self.closed = False
        # Given each expired item before it is removed, when the config names a queue for
        # them; it returns False when that queue refuses the item, which then stays here.
        self.expired_sink: Callable[[Item], bool] | None = None
        self._expiry_refused = False
        # The same for items read `max_deliveries` times, when the config names a
        # `dead_letter_queue`; without one, they are dropped.
        self.dead_letter_sink: Callable[[Item], bool] | None = None
        self._dead_letter_refused = False

        self._memory = HeadList()
        self._open = NO_OPEN_READS
        self.items = 0
        self.bytes = 0
        self.memory_bytes = 0
        self._next_seq = 1
        self._xid = 0
        self._replaying = False
        # How many items at the head of memory came back from aborted reads (see kestrel.upkeep.Checkpoint).
        self._returned_at_head = 0
        self._last_removed_add_time = 0
        # Made when the queue first reads behind (`_reader`), which most never do: an
        # empty queue is kept small (issue 15).
        self._read_behind: ReadBehind | None = None
        self._upkeep = JournalUpkeep(name, journal, clock)
        self.created_at = clock.seconds()

        self.total_items = 0
        self.put_bytes = 0
        self.expired_items = 0
        self.discarded = 0
        self.transactions = 0
        self.canceled_transactions = 0
        self.total_flushes = 0
        self.get_hits = 0
        self.get_misses = 0
        self.lost_items = 0
        self.dead_lettered = 0
        # Its history (`kestrel.history`) when `retain` is set; the collection sets it. Each
        # place an item is added or leaves tells it.
        self.history: History | None = None

    def __repr__(self) -> str:
        return f"<PersistentQueue {self.name} items={self.items}>"

    # Views

    @property
    def memory_items(self) -> int:
        return len(self._memory)

    @property
    def open_transactions(self) -> int:
        return len(self._open)

    @property
    def reading_behind(self) -> bool:
        return self.journal.reading_behind

    @property
    def journal_rewrites(self) -> int:
        return self._upkeep.rewrites

    @property
    def journal_rotations(self) -> int:
        return self._upkeep.rotations

    @property
    def read_behind_errors(self) -> int:
        return 0 if self._read_behind is None else self._read_behind.errors

    def open_xids(self) -> list[int]:
        return list(self._open)

    def open_reads(self) -> list[tuple[int, Item]]:
        """(xid, item) of each open read, oldest first."""
        return [(xid, item) for xid, (item, _) in self._open.items()]

    def memory(self) -> list[Item]:
        """The items held in memory, head first (a copy)."""
        return self._memory.items()

    def checkpoint(self, serial: int) -> Checkpoint:
        """The queue as it stands, for the journal file `serial` rotated away during read-behind."""
        returned = [self._memory[index].seq for index in range(self._returned_at_head)]
        first = (
            self._memory[self._returned_at_head].seq if len(self._memory) > self._returned_at_head
            else self._reader().next_seq
        )
        return Checkpoint(serial, self.open_reads(), returned, range(first, self._next_seq))

    def age_ms(self) -> int:
        """Milliseconds since the add time of the item removed last; 0 when the queue is empty."""
        if self.bytes == 0:
            return 0
        return max(0, self._now_ms() - self._last_removed_add_time)

    @property
    def retained_bytes(self) -> int:
        """Bytes of its history on disk (0 without `retain`)."""
        history = self.history
        return 0 if history is None else history.retained_bytes

    @property
    def disk_bytes(self) -> int:
        """Bytes of its journal files and its history."""
        return self.journal.size + self.journal.archived + self.retained_bytes

    def head_age_ms(self) -> int:
        """Milliseconds since the add time of the item at the head (the oldest waiting); 0 when none is."""
        return max(0, self._now_ms() - self._memory[0].add_time) if self._memory else 0

    def stats(self) -> list[tuple[str, int]]:
        """Kestrel's per-queue stats, in its order, then the project's own; disk use only for a queue with `retain`."""
        stats = [
            ("items", self.items),
            ("bytes", self.bytes),
            ("total_items", self.total_items),
            ("logsize", self.journal.size),
            ("expired_items", self.expired_items),
            ("mem_items", self.memory_items),
            ("mem_bytes", self.memory_bytes),
            ("age", self.age_ms()),
            ("discarded", self.discarded),
            ("waiters", len(self.waiters)),
            ("open_transactions", self.open_transactions),
            ("transactions", self.transactions),
            ("canceled_transactions", self.canceled_transactions),
            ("total_flushes", self.total_flushes),
            ("journal_rewrites", self.journal_rewrites),
            ("journal_rotations", self.journal_rotations),
            # Trouble: beyond Kestrel's list.
            ("journal_failing", int(self.journal.failure is not None)),
            ("read_behind_errors", self.read_behind_errors),
            ("lost_items", self.lost_items),
            ("head_age", self.head_age_ms()),
            ("dead_lettered", self.dead_lettered),
        ]
        if self.history is not None:
            stats.append(("disk_bytes", self.disk_bytes))
            stats.append(("retained_bytes", self.history.retained_bytes))
        return stats

    # Start-up

    def replay(self, filenames: Sequence[str] | None = None) -> None:
        """
        Rebuild the queue from its journal files (as the spool listing found them; None
        lists them), then roll back the reads left open in it.
        """
        self._replaying = True
        previous_serial = None
        try:
            for record, serial, offset in self.journal.replay(filenames):
                if serial != previous_serial and previous_serial is not None and self.reading_behind:
                    self._upkeep.file_ended(self.checkpoint(previous_serial))
                previous_serial = serial
                self._replay_record(record, serial, offset)
        finally:
            self._replaying = False
        self.abort(sorted(self._open))
        self.canceled_transactions = 0

    def _replay_record(self, record: records.Record, serial: int, offset: int) -> None:
        op = record.op
        if op in (records.ADDX, records.ADD, records.ADD_XID):
            if not self.reading_behind and self.bytes >= self.config.max_memory_size:
                self._reader().start(self._next_seq, serial, offset)
            self._store(Item(cast(bytes, record.data), record.add_time or self._now_ms(), record.expiry, self._next_seq))
        elif op == records.REMOVE:
            self._replay_take_head()
        elif op in (records.REMOVE_TENTATIVE_XID, records.REMOVE_TENTATIVE):
            xid = record.xid if op == records.REMOVE_TENTATIVE_XID else self._next_xid()
            item = self._replay_take_head()
            if item is not None:
                self._xid = xid
                item.xid = xid
                self._open_read(item)
        elif op == records.SAVE_XID:
            self._xid = record.xid
        elif op == records.UNREMOVE:
            self._put_back(record.xid)
        elif op == records.CONFIRM_REMOVE:
            self._open.pop(record.xid, None)
        elif op == records.CONTINUE:
            self._open.pop(record.xid, None)
            self._store(Item(cast(bytes, record.data), record.add_time, record.expiry, self._next_seq))
        self._fill_from_disk()

    def _replay_take_head(self) -> Item | None:
        self._fill_from_disk()
        return self._take_head() if self._memory else None

    # Adding

    def add(self, data: bytes, expiry: int = 0, add_time: int | None = None, rewound: bool = False) -> bool:
        """
        Add an item (expiry in epoch ms, 0 = none). False if the queue refuses it (full, item
        too large, closed); QueueUnavailable while its journal cannot be written. `rewound`:
        a rewind adds it, as a copy of an item of the queue's history, which says so.
        """
        limits = self.limits
        if self.closed or len(data) > limits.max_item_size:
            return False
        if self.journal.failure is not None:
            raise QueueUnavailable(self.name, self.journal.failure.getErrorMessage())
        self.discard_expired()
        while self.items >= limits.max_items or self.bytes >= limits.max_size:
            if not limits.discard_old_when_full or not self._memory:
                return False
            discarded = self._take_head()
            self.journal.append(records.REMOVE_BYTES)
            self.discarded += 1
            self._left(discarded, history_records.DISCARDED)
        now = self._now_ms()
        max_age_ms = limits.max_age_ms
        if max_age_ms is not None:
            limit = now + max_age_ms
            expiry = min(expiry, limit) if expiry else limit
        item = Item(data, now if add_time is None else add_time, expiry, self._next_seq)
        self._upkeep.after_change(self)
        if not self.reading_behind and self.bytes >= limits.max_memory_size and limits.keep_journal:
            self._reader().start(item.seq)
        self.journal.append(records.encode_addx(data, item.add_time, expiry))
        self._store(item)
        self.put_bytes += len(data)
        history = self.history
        if history is not None:
            history.added(data, item.add_time, rewound)
        if self.reading_behind:
            self._fill_from_disk()
        else:
            self.waiters.trigger()
        return True

    def _store(self, item: Item) -> None:
        self._next_seq += 1
        size = len(item.data)
        self.items += 1
        self.bytes += size
        self.total_items += 1
        read_behind = self._read_behind
        if read_behind is not None and read_behind.active:
            read_behind.disk_items += 1
        else:
            self._memory.append(item)
            self.memory_bytes += size

    # Removing

    def remove(self, transaction: bool = False) -> Item | None:
        """The head item, or None. A transactional remove opens a read under a new xid."""
        if self.closed:
            return None
        if transaction and self.config.open_transaction_timeout is not None:
            self._abort_timed_out_read()
        self.discard_expired()
        if transaction and self.limits.max_deliveries is not None:
            self._dead_letter_spent(self.limits.max_deliveries)
        if not self._memory:
            return None
        item = self._take_head()
        if transaction:
            self.transactions += 1
            item.deliveries += 1
            if not item.first_delivery_time:
                item.first_delivery_time = self._now_ms()
            item.xid = self._next_xid()
            self._open_read(item)
            self.journal.append(records.encode_remove_tentative(item.xid))
        else:
            self.journal.append(records.REMOVE_BYTES)
            if self.history is not None:
                self._left(item, history_records.READ)
        self._upkeep.after_change(self)
        self._fill_from_disk()
        return item

    def peek(self) -> Item | None:
        if self.closed:
            return None
        self.discard_expired()
        return self._memory[0] if self._memory else None

    def fetch(self, transaction: bool, peek: bool, deadline: float | None) -> Item | None | Deferred:
        """
        A read as a client asks for it: an item or None when the answer is ready now, or a
        Deferred when the read has to wait, for an item to arrive before the deadline (in
        clock seconds) or for read-behind to bring the head back from disk.
        """
        item = self.peek() if peek else self.remove(transaction)
        counted = item is not None or not self._must_wait(deadline)
        if counted:
            self._count_fetch(item)
            return item
        return self._wait(transaction, peek, deadline)

    def _must_wait(self, deadline: float | None) -> bool:
        if self.closed:
            return False
        read_behind = self._read_behind
        return (read_behind is not None and read_behind.worth_waiting) or (
            deadline is not None and deadline > self._clock.seconds()
        )

    def _wait(self, transaction: bool, peek: bool, deadline: float | None) -> Deferred:
        waiter: Waiter | None = None

        def cancel(_: Deferred) -> None:
            if waiter is not None:
                self.waiters.remove(waiter)

        result: Deferred = Deferred(cancel)

        def on_wake():
            item = self.peek() if peek else self.remove(transaction)
            if item is not None:
                self._count_fetch(item)
                result.callback(item)
                if peek:
                    # A peek leaves the item there for the next waiter.
                    self.waiters.trigger()
            elif self._must_wait(deadline):
                self.waiters.requeue(waiter)
            else:
                on_timeout()

        def on_timeout():
            self._count_fetch(None)
            result.callback(None)

        waiter = self.waiters.add(deadline, on_wake, on_timeout)
        return result

    def _count_fetch(self, item: Item | None) -> None:
        if item is None:
            self.get_misses += 1
        else:
            self.get_hits += 1

    def _take_head(self) -> Item:
        item = self._memory.popleft()
        if self._returned_at_head:
            self._returned_at_head -= 1
        size = len(item.data)
        self.items -= 1
        self.bytes -= size
        self.memory_bytes -= size
        self._last_removed_add_time = item.add_time
        return item

    # Transactions

    def confirm(self, xid: int) -> bool:
        entry = self._open.pop(xid, None)
        if entry is None:
            return False
        entry[0].xid = 0
        self.journal.append(records.encode_confirm_remove(xid))
        if self.history is not None:
            self._left(entry[0], history_records.READ)
        return True

    def unremove(self, xid: int) -> bool:
        """Abort an open read: the item goes back to the head of the queue."""
        return self.abort((xid,)) == 1

    def abort(self, xids: Sequence[int]) -> int:
        """
        Abort open reads: their items go back to the head of the queue, the first of `xids`
        first. Waiters are woken only once all are back, so the first waiter gets the first
        item. Returns how many were open.
        """
        returned = 0
        for xid in reversed(xids):
            if self._put_back(xid):
                self.journal.append(records.encode_unremove(xid))
                self.canceled_transactions += 1
                returned += 1
        for _ in range(min(returned, len(self.waiters))):
            self.waiters.trigger()
        return returned

    def continue_transaction(self, xid: int, data: bytes, expiry: int = 0) -> bool:
        """Confirm an open read and add a new item in one journal record."""
        entry = self._open.pop(xid, None)
        if entry is None or self.closed:
            return False
        entry[0].xid = 0
        item = Item(data, self._now_ms(), expiry, self._next_seq)
        self.journal.append(records.encode_continue(xid, data, item.add_time, expiry))
        self._store(item)
        history = self.history
        if history is not None:
            history.left(entry[0].data, entry[0].add_time, history_records.READ)
            history.added(data, item.add_time)
        if not self.reading_behind:
            self.waiters.trigger()
        return True

    def _put_back(self, xid: int) -> bool:
        entry = self._open.pop(xid, None)
        if entry is None:
            return False
        item = entry[0]
        item.xid = 0
        self._memory.appendleft(item)
        self._returned_at_head += 1
        size = len(item.data)
        self.items += 1
        self.bytes += size
        self.memory_bytes += size
        return True

    def _open_read(self, item: Item) -> None:
        if self._open is NO_OPEN_READS:
            self._open = {}
        self._open[item.xid] = (item, self._clock.seconds())

    def _next_xid(self) -> int:
        xid = self._xid
        while True:
            xid = xid + 1 if xid < MAX_XID else 1
            if xid not in self._open:
                self._xid = xid
                return xid

    def _abort_timed_out_read(self) -> None:
        """Roll back the oldest open read if it has been open longer than the queue allows."""
        if self._open:
            xid, (_, opened_at) = next(iter(self._open.items()))
            timeout = self.config.open_transaction_timeout
            if timeout is not None and self._clock.seconds() - opened_at > timeout:
                self.unremove(xid)

    # Expiry and flushing

    def discard_expired(self, limit: int | None = None) -> int:
        """Sweep expired items off the head; returns how many went."""
        memory = self._memory
        if not memory:
            return 0
        max_age_ms = self.limits.max_age_ms
        if not memory[0].expiry and max_age_ms is None:
            return 0
        now = self._now_ms()
        limit = self.limits.max_expire_sweep if limit is None else limit
        count = 0
        while memory and count < limit and self._expired(memory[0], now, max_age_ms):
            if self.expired_sink is not None and not self._hand_on_expired(memory[0]):
                break
            expired = self._take_head()
            self.journal.append(records.REMOVE_BYTES)
            self.expired_items += 1
            self._left(expired, history_records.EXPIRED)
            count += 1
        self._fill_from_disk()
        return count

    def _hand_on_expired(self, item: Item) -> bool:
        """Give an expired item to `expire_to_queue` before it leaves; False (logged once) while refused."""
        sink = self.expired_sink
        handed = sink is not None and sink(item)
        if handed == self._expiry_refused:
            self._expiry_refused = not handed
            self._log_hand_on(handed, f"expired items of {self.name}", self.config.expire_to_queue)
        return handed

    def _log_hand_on(self, handed: bool, items: str, target: str | None) -> None:
        """Items that leave for another queue: say when it starts refusing them, and when it takes them again."""
        if handed:
            self.log.info("{items} move to {target} again", items=items, queue=self.name, target=target)
        else:
            self.log.warn("{items} stay in it: {target} refuses them", items=items, queue=self.name, target=target)

    # Dead letters

    def _dead_letter_spent(self, max_deliveries: int) -> None:
        """
        Take the items at the head that reliable reads have handed out `max_deliveries` times
        off to `dead_letter_queue` (or drop them without one), journaled as removes. Only items
        that came back from aborted reads have been handed out, and those return to the head,
        so no others need looking at. An item the dead-letter queue refuses stays, and goes
        out again.
        """
        memory = self._memory
        while memory and memory[0].deliveries >= max_deliveries:
            if self.dead_letter_sink is not None and not self._hand_on_dead_letter(memory[0]):
                return
            spent = self._take_head()
            self.journal.append(records.REMOVE_BYTES)
            self.dead_lettered += 1
            self._left(spent, history_records.DEAD_LETTERED)
            # What follows may have expired (this also refills memory from disk).
            self.discard_expired()

    def _hand_on_dead_letter(self, item: Item) -> bool:
        """Give a spent item to `dead_letter_queue` before it leaves; False (logged once) while refused."""
        sink = self.dead_letter_sink
        handed = sink is not None and sink(item)
        if handed == self._dead_letter_refused:
            self._dead_letter_refused = not handed
            items = f"items of {self.name} that reached max_deliveries ({self.limits.max_deliveries})"
            self._log_hand_on(handed, items, self.config.dead_letter_queue)
        return handed

    @staticmethod
    def _expired(item: Item, now: int, max_age_ms: int | None) -> bool:
        expiry = item.expiry or math.inf
        if max_age_ms is not None:
            expiry = min(expiry, item.add_time + max_age_ms)
        return expiry < now

    def flush(self) -> None:
        """Remove every queued item (open reads stay open)."""
        removed = self.items
        if removed and self.history is not None:
            self._flushed_to_history(self.history)
        self._memory.clear()
        self._returned_at_head = 0
        self.items = self.bytes = self.memory_bytes = 0
        self._leave_read_behind()
        if removed:
            self.journal.append(records.REMOVE_BYTES * removed)
        self.total_flushes += 1
        self._upkeep.after_change(self)

    # History

    def durable(self) -> Deferred | None:
        """
        With `sync_journal = 0`: a Deferred that fires once what the queue has written is on
        disk, its journal's records and its history's (`Journal.durable`, `History.durable`).
        None when there is nothing to wait for.
        """
        history = self.history
        if history is None:
            return self.journal.durable()
        return all_durable((self.journal.durable(), history.durable()))

    def _left(self, item: Item, outcome: int) -> None:
        """`item` left the queue: its history says so."""
        history = self.history
        if history is not None:
            history.left(item.data, item.add_time, outcome)

    def _flushed_to_history(self, history: History) -> None:
        """A flush, before it: which reads stay open, and the oldest add time it removes from memory."""
        open_reads = [history_records.key_of(item.data, item.add_time) for item, _ in self._open.values()]
        oldest = min(item.add_time for item in self._memory) if self._memory else None
        history.flushed(open_reads, oldest)

    # Closing

    def close(self, rewrite_if_empty: bool = False) -> None:
        """
        Stop serving: blocked readers get no item, the journal is closed. With
        `rewrite_if_empty` (a shutdown while the server is read-only or quiescent), an empty
        queue leaves a journal of just its open reads, so the next start replays nothing else.
        """
        if self.closed:
            return
        self.closed = True
        self.waiters.evict_all()
        self._leave_read_behind()
        if rewrite_if_empty and self.config.keep_journal and self.items == 0:
            self._upkeep.rewrite(self)
        self.journal.close()
        if self.history is not None:
            self.history.close()

    def destroy(self) -> Deferred:
        """Close and erase every journal file; fires once they are gone."""
        self.close()
        return self.journal.erase()

    def reconfigure(self, config: QueueConfig) -> None:
        """
        Take new settings. `keep_journal` turned on writes the queue's state to a new journal;
        turned off, it erases the journal, unless items wait on disk (read-behind): then the
        queue keeps its journal until a later reload finds them all in memory.
        """
        if config.keep_journal != self.journal.keep:
            if config.keep_journal:
                self.journal.keep = True
                self._upkeep.rewrite(self)
            elif self._read_behind is not None and self._read_behind.disk_items:
                self.log.warn(
                    "queue {queue} keeps its journal: keep_journal = false applies once its {items} items on disk "
                    "are read back into memory, at a later reload",
                    queue=self.name, items=self._read_behind.disk_items,
                )
                config = dataclasses.replace(config, keep_journal=True)
            else:
                self._leave_read_behind()
                self.journal.erase()
                self.journal.keep = False
                self.log.info("queue {queue} no longer keeps a journal; its files are erased", queue=self.name)
        self.config = config
        self.limits = shared_limits(config)
        self.journal.sync_journal = config.sync_journal

    # Read-behind

    def _fill_from_disk(self) -> None:
        """Bring the next items back from disk while memory has room for them."""
        read_behind = self._read_behind
        if read_behind is None:
            return
        if not self._replaying:
            read_behind.refill()
            return
        # Replay owns the cursor and reads it on this thread, in journal order.
        read = read_behind.read_now()
        if read is not None:
            self._load_from_disk(*read)

    def _refilled(self, found: ReadItems, serial: int) -> None:
        loaded = self._load_from_disk(found, serial)
        for _ in range(min(loaded, len(self.waiters))):
            self.waiters.trigger()
        self._fill_from_disk()

    def _disk_unreadable(self, reason: str) -> None:
        """What is left on disk cannot be read: give it up, and write the journal anew from memory."""
        self._lose_disk_items(reason)
        self._upkeep.rewrite(self)
        self.waiters.trigger_all()

    def _load_from_disk(self, found: ReadItems, serial: int) -> int:
        if not found:
            self._lose_disk_items("the journal ended before them")
            return 0
        read_behind = self._reader()
        seq = read_behind.took(len(found))
        for data, add_time, expiry in found:
            self._memory.append(Item(data, add_time, expiry, seq))
            seq += 1
            self.memory_bytes += len(data)
        if not self._replaying:
            # Files are not touched until replay is over.
            self._upkeep.pack_passed_files(serial, self)
        if not read_behind.disk_items:
            self._leave_read_behind()
        return len(found)

    def _lose_disk_items(self, reason: str) -> None:
        """The items counted on disk cannot be read: say so, and stop counting them."""
        lost = self._reader().disk_items
        self.log.error(
            "DATA MAY HAVE BEEN LOST: {lost} items of {queue} on disk cannot be read: {reason}",
            queue=self.name, lost=lost, reason=reason,
        )
        self.lost_items += lost
        self.items -= lost
        self.bytes = self.memory_bytes
        self._leave_read_behind()

    def _reader(self) -> ReadBehind:
        """The queue's ReadBehind, made the first time it is needed and kept (it counts errors)."""
        read_behind = self._read_behind
        if read_behind is None:
            read_behind = self._read_behind = ReadBehind(
                self.name, self.journal, self._clock, self.waiters,
                room=lambda: self.limits.max_memory_size - self.memory_bytes,
                loaded=self._refilled, unreadable=self._disk_unreadable,
            )
        return read_behind

    def _leave_read_behind(self) -> None:
        if self._read_behind is not None:
            self._read_behind.stop()
        self._upkeep.forget_checkpoints()

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)
