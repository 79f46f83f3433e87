"""
Journal upkeep: when a queue's journal is rotated, rewritten or packed, so that it stays near
the size of what the queue holds (doc/compatibility.md §3.7).

Kestrel's rule: the journal moves to a new file once the current one outgrows
`max_memory_size`; it is rewritten to just the queue's contents when that is cheap (the queue
is empty, or all of it is in memory while the files have outgrown `max_journal_size`), no
sooner than `min_journal_compact_delay` after the last such rewrite. While the queue reads
behind, its contents are not all in memory and cannot be rewritten; instead each file rotated
away gets a checkpoint of the queue as it stood, and once the read-behind cursor has passed
that file, every file up to it is packed to the checkpoint's state.

The queue calls `after_change` after each change to what it holds and hands itself in as
`QueueContents`, the little this needs to read of it.
"""

from __future__ import annotations

from typing import ClassVar, Final, NamedTuple, Protocol, Sequence, TYPE_CHECKING

from kestrel.clock import Clock
from twisted.logger import Logger

from kestrel.journal import records
from kestrel.journal.journal import Journal

if TYPE_CHECKING:
    from kestrel.queue import Item, QueueLimits

PLACEHOLDER_BYTES: Final = records.record_size(records.ADDX)


class Checkpoint(NamedTuple):
    """
    The queue as it stood when the journal file `serial` was rotated away during
    read-behind: its open reads and the seqs of its items, head first. Items consumed since
    become placeholders in the pack, which the records in later files consume again on replay.

    Items leave only from the head and aborted ones return to it, so a queue is a few
    returned items followed by a run of consecutive seqs (in memory, then on disk): the
    checkpoint is that short list and one range, however deep the queue.
    """

    serial: int
    opens: list[tuple[int, Item]]
    returned_seqs: list[int]
    seqs: range


class QueueContents(Protocol):
    # What the queue's config says, in the form the queue reads it on every add.
    limits: QueueLimits
    items: int
    bytes: int
    memory_bytes: int

    @property
    def reading_behind(self) -> bool: ...

    def open_reads(self) -> list[tuple[int, Item]]: ...

    def memory(self) -> Sequence[Item]: ...

    def checkpoint(self, serial: int) -> Checkpoint: ...


class JournalUpkeep:
    log: ClassVar[Logger] = Logger()

    __slots__ = (
        "_name", "_journal", "_clock", "_rewrites_allowed_at", "_checkpoints", "rewrites", "rotations",
    )

    def __init__(self, name: str, journal: Journal, clock: Clock):
        self._name = name
        self._journal = journal
        self._clock = clock
        self._rewrites_allowed_at = 0.0
        # A list, not a deque: it holds a few checkpoints at most, and an empty deque costs
        # every queue 600 bytes more; made at the first, as only a queue reading behind has
        # any (issue 15).
        self._checkpoints: list[Checkpoint] | None = None
        self.rewrites = 0
        self.rotations = 0

    def after_change(self, queue: QueueContents) -> None:
        config, journal = queue.limits, self._journal
        if not config.keep_journal:
            return
        aggressive = not config.disable_aggressive_rewrites
        if journal.size >= config.default_journal_size and queue.items == 0 and (aggressive or self._rewrites_allowed()):
            self.rewrite(queue)
            if not aggressive and journal.size >= config.default_journal_size // 2:
                self._delay_rewrites(config)
        elif (
            # The clock last: the sizes nearly always settle it.
            journal.size + journal.archived > config.max_journal_size
            and queue.bytes < config.max_memory_size
            and not queue.reading_behind
            and self._rewrites_allowed()
        ):
            self.rewrite(queue)
            self._delay_rewrites(config)
        elif journal.size > config.max_memory_size:
            if not aggressive and queue.items == 0:
                self.rewrite(queue)
                if journal.size <= config.max_memory_size:
                    return
            serial = journal.rotate()
            self.rotations += 1
            self.log.info("rotated journal of {queue}: {archived} bytes in older files", queue=self._name, archived=journal.archived)
            if queue.reading_behind and journal.size + journal.archived > config.max_journal_size:
                self.file_ended(queue.checkpoint(serial))

    def file_ended(self, checkpoint: Checkpoint) -> None:
        """A file was rotated away during read-behind: it can be packed once the cursor passes it."""
        if self._checkpoints is None:
            self._checkpoints = []
        self._checkpoints.append(checkpoint)

    def rewrite(self, queue: QueueContents) -> None:
        """Replace every file of the journal with one holding just the queue's contents."""
        opens = sorted(queue.open_reads(), reverse=True, key=lambda entry: entry[0])
        self._journal.rewrite(opens, queue.memory())
        self._checkpoints = None
        self.rewrites += 1
        self.log.info("rewrote journal of {queue}: {size} bytes", queue=self._name, size=self._journal.size)

    def forget_checkpoints(self) -> None:
        """Read-behind ended: there is no cursor left to pass the rotated files."""
        self._checkpoints = None

    def pack_passed_files(self, serial: int, queue: QueueContents) -> None:
        """Pack every file the read-behind cursor has left behind (it is now in file `serial`)."""
        checkpoints = self._checkpoints
        passed = None
        while checkpoints and checkpoints[0].serial < serial:
            passed = checkpoints.pop(0)
        if checkpoints is None or passed is None:
            return
        # A pack writes a placeholder for every item consumed since its checkpoint, about the
        # whole backlog: wait until it frees at least twice what it writes, or packing would
        # cost more than it saves on a deep queue.
        writes = PLACEHOLDER_BYTES * (len(passed.returned_seqs) + len(passed.seqs)) + queue.memory_bytes
        if self._journal.bytes_through(passed.serial) < 2 * writes:
            checkpoints.insert(0, passed)
            return
        alive = {item.seq: item for item in queue.memory()}
        alive.update((item.seq, item) for _, item in queue.open_reads())
        items = [alive.get(seq) for seq in passed.returned_seqs]
        items.extend(alive.get(seq) for seq in passed.seqs)
        self._journal.pack(passed.serial, passed.opens, items)
        self.log.info("packed journal of {queue}: {size} bytes in older files", queue=self._name, size=self._journal.archived)

    def _rewrites_allowed(self) -> bool:
        return self._clock.seconds() >= self._rewrites_allowed_at

    def _delay_rewrites(self, config: QueueLimits) -> None:
        delay = config.min_journal_compact_delay
        if delay:
            self._rewrites_allowed_at = self._clock.seconds() + delay
