"""
Read-behind: the part of a queue that waits on disk.

A queue whose contents outgrow `max_memory_size` keeps only its head in memory; the items
added after that are journaled and counted here, and read back from the journal by the
writer thread as the head drains (doc/compatibility.md §3.5). This object owns that state:
how many items are on disk, the seq the next one read back takes, the one refill that may be
under way, and the retry, with back-off, of a refill that failed for a reason that may pass.
It hands what it reads back to the queue (`loaded`) and reports what can never be read
(`unreadable`); where the items go, and which readers they wake, is the queue's business.
"""

from __future__ import annotations

from typing import Callable, ClassVar

from kestrel.clock import Clock, Timer
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.journal.disk import UnreadableJournal
from kestrel.journal.journal import Journal
from kestrel.waiters import DeadlineWaitQueue

# A refill that fails for a reason that may pass (an I/O error) is tried again after the
# first delay, doubling up to the second.
REFILL_RETRY_DELAYS = (1.0, 60.0)

# (data, add_time, expiry) of each item read back, and the serial of the file the cursor is in.
ReadItems = list[tuple[bytes, int, int]]
Loaded = Callable[[ReadItems, int], None]


class ReadBehind:
    log: ClassVar[Logger] = Logger()

    __slots__ = (
        "_name", "_journal", "_clock", "_waiters", "_room", "_loaded", "_unreadable", "disk_items",
        "next_seq", "_refilling", "_retry", "_retry_delay", "_generation", "errors",
    )

    def __init__(
        self,
        name: str,
        journal: Journal,
        clock: Clock,
        waiters: DeadlineWaitQueue,
        room: Callable[[], int],
        loaded: Loaded,
        unreadable: Callable[[str], None],
    ):
        self._name = name
        self._journal = journal
        self._clock = clock
        self._waiters = waiters
        self._room = room
        self._loaded = loaded
        self._unreadable = unreadable
        self.disk_items = 0
        # The seq of the next item read back: items on disk are numbered in add order.
        self.next_seq = 0
        self._refilling = False
        self._retry: Timer | None = None
        self._retry_delay = REFILL_RETRY_DELAYS[0]
        # Raised on stop: a refill answered after it belongs to a cursor that is gone.
        self._generation = 0
        self.errors = 0

    @property
    def active(self) -> bool:
        return self._journal.reading_behind

    @property
    def worth_waiting(self) -> bool:
        """Items on disk are worth waiting for, unless reading them failed and waits for a retry."""
        return self.disk_items > 0 and self._retry is None

    def start(self, first_seq: int, serial: int | None = None, offset: int | None = None) -> None:
        """Items from `first_seq` on wait on disk, from a record of the journal (by default its end)."""
        self._journal.start_reader(serial, offset)
        self.next_seq = first_seq

    def refill(self) -> None:
        """Ask the writer thread for the next items from disk, as many as memory has room for."""
        if self._refilling or self._retry is not None or not self.disk_items:
            return
        room = self._room()
        if room <= 0:
            return
        self._refilling = True
        reading = self._journal.read_items(room, self.disk_items)
        reading.addCallbacks(self._read, self._failed, (self._generation,), errbackArgs=(self._generation,))

    def read_now(self) -> tuple[ReadItems, int] | None:
        """
        `refill` on this thread, for replay, which owns the cursor and reads it in journal
        order; None when there is nothing to read or no room for it.
        """
        room = self._room()
        if self._retry is not None or not self.disk_items or room <= 0:
            return None
        return self._journal.read_items_now(room, self.disk_items)

    def took(self, count: int) -> int:
        """`count` items came back into memory; returns the seq of the first."""
        first = self.next_seq
        self.next_seq += count
        self.disk_items -= count
        return first

    def stop(self) -> None:
        """
        Stop reading behind: close the cursor, forget any refill under way, and count no
        items on disk (all came back, or the queue gives them up or no longer serves). A
        refill answered after this is dropped, so a closed queue is never handed items.
        """
        if self.active:
            self._journal.stop_reader()
        self._generation += 1
        self._refilling = False
        self.disk_items = 0
        if self._retry is not None:
            if self._retry.active():
                self._retry.cancel()
            self._retry = None
            self._retry_delay = REFILL_RETRY_DELAYS[0]

    def _read(self, result: tuple[ReadItems, int], generation: int) -> None:
        self._refilling = False
        if generation != self._generation:
            return
        if self._retry_delay != REFILL_RETRY_DELAYS[0]:
            self._retry_delay = REFILL_RETRY_DELAYS[0]
            self.log.info("read-behind of {queue} works again", queue=self._name)
        self._loaded(*result)

    def _failed(self, failure: Failure, generation: int) -> None:
        self._refilling = False
        if generation != self._generation:
            return
        self.errors += 1
        if failure.check(UnreadableJournal):
            self._unreadable(failure.getErrorMessage())
            return
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, REFILL_RETRY_DELAYS[1])
        if delay == REFILL_RETRY_DELAYS[0]:
            self.log.failure("read-behind of {queue} failed; retrying, every {longest} s at most", failure,
                             queue=self._name, longest=REFILL_RETRY_DELAYS[1])
        self._retry = self._clock.callLater(delay, self._try_again)
        # Reads with a deadline wait for it; a read that would wait for the disk alone ends now.
        self._waiters.evict_undated()

    def _try_again(self) -> None:
        self._retry = None
        self.refill()
