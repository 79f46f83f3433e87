"""
One queue's history as the reactor sees it: which segments exist, how big they are, where
each record goes. Every change is queued, in order, for the writer thread
(`kestrel.history.segments.HistoryFiles`), like a journal's (`kestrel.journal.journal`).

An item's ADDED record goes to the newest segment; a new one starts at the first add 60 s
of add time after the newest segment's first, or once it holds 16 MB (never within one
millisecond: each millisecond's adds are in one segment). The LEFT record of an item goes to
the segment of its add time (`segments.filed_under`), after its ADDED, so a read finds both
in the segments it reads; for an item that came with an older add time (a dead letter), a
read looks in that earlier segment too.
"""

from __future__ import annotations

from typing import Final, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from kestrel.clock import Clock, Timer
from kestrel.history import BadCursor, HistoryEntry, HistoryPage, cursor, records
from kestrel.history.cursor import Position
from kestrel.history.segments import HistoryFiles, filed_under, history_directory, list_segments, segment_index
from kestrel.journal.journal import failing_softly
from kestrel.journal.writer import JournalWriter, Operation, SyncedSource

SEGMENT_SPAN_MS: Final = 60_000
SEGMENT_BYTES: Final = 16 * 1024**2
# Entry data a page holds at most (beyond its first entry), and its most entries.
PAGE_BYTES: Final = 4 * 1024**2
MAX_PAGE_ENTRIES: Final = 1000
# Retention runs every tenth of `retain`, within these bounds (seconds).
SWEEP_MIN_SECONDS: Final = 1.0
SWEEP_MAX_SECONDS: Final = 60.0


class History(SyncedSource):
    """
    The history of queue `name`, kept for `retain` seconds after each add, and fsynced as the
    queue's journal is (`sync_journal`, SyncedSource): with 0, a reply waits for it too
    (`durable`). Its files are listed once, when it is made, if it `has_files` (found at
    start): a history made later starts empty, and making it touches no disk.
    """

    log = Logger()

    def __init__(
        self, spool: str, name: str, writer: JournalWriter, clock: Clock, retain: float,
        sync_journal: float | None = None, has_files: bool = True,
    ):
        history_files = HistoryFiles(history_directory(spool, name), writer.open_journals)
        super().__init__(writer, clock, history_files, sync_journal)
        self.name = name
        self.retain_ms = int(retain * 1000)
        self._files = history_files
        found = list_segments(self._files.directory) if has_files else []
        self._names: list[int] = [segment.name for segment in found]
        self._sizes: dict[int, int] = {segment.name: segment.size for segment in found}
        self.retained_bytes = sum(self._sizes.values())
        # Segments found at start: a crash may have torn their tails, cut before they are written again.
        self._unchecked: set[int] = set(self._names)
        # The newest add (at least: the newest segment's first, until one is written), and
        # whether it is known to be the newest of the newest segment; until then, that
        # segment's newest add is taken as its file's last change.
        self._last_add = self._names[-1] if self._names else 0
        self._last_add_known = False
        self._found_modified_ms = found[-1].modified_ms if found else 0
        # The newest add of each segment this run has closed; of the others, the next one's
        # first add bounds it.
        self._newest: dict[int, int] = {}
        self._pending: dict[int, bytearray] = {}
        self._sweep_call: Timer | None = None
        self._schedule_sweep()

    def __repr__(self) -> str:
        return f"<History {self.name}>"

    def describe(self) -> str:
        return f"history of queue {self.name}"

    def configure(self, retain: float, sync_journal: float | None) -> None:
        """Take its queue's settings anew."""
        self.sync_journal = sync_journal
        self.retain_ms = int(retain * 1000)
        self._cancel_sweep()
        self._schedule_sweep()

    # Writes

    def added(self, data: bytes, add_time: int, rewound: bool = False) -> None:
        """An item was added to the queue now (`add_time` is the item's own); `rewound`: by a rewind, a copy."""
        added = max(self._now_ms(), self._last_add)
        names = self._names
        if not names or (
            added > self._last_add and (added - names[-1] >= SEGMENT_SPAN_MS or self._sizes[names[-1]] >= SEGMENT_BYTES)
        ):
            if names and self._last_add_known:
                self._newest[names[-1]] = self._last_add
            names.append(added)
            self._sizes[added] = 0
        self._last_add = added
        self._last_add_known = True
        self._append(names[-1], records.encode_added(added, add_time, data, rewound))

    def left(self, data: bytes, add_time: int, outcome: int) -> None:
        """An item left the queue now: read (and confirmed), expired, discarded or dead-lettered."""
        segment = filed_under(self._names, add_time)
        if segment is not None:
            self._append(segment, records.encode_left(self._now_ms(), outcome, records.key_of(data, add_time)))

    def flushed(self, open_reads: Sequence[records.Key], oldest_add_time: int | None) -> None:
        """
        The queue was flushed; the reads open then stay open. Every segment that may hold the
        add of a flushed item gets the record: those from the one of the oldest add time in
        memory on (None: from the first).
        """
        first = 0 if oldest_add_time is None else segment_index(self._names, oldest_add_time)
        record = records.encode_flushed(self._now_ms(), list(open_reads))
        for segment in self._names[first:]:
            self._append(segment, record)

    def _append(self, segment: int, record: bytes) -> None:
        buffer = self._pending.get(segment)
        if buffer is None:
            if segment in self._unchecked:
                self._unchecked.discard(segment)
                checked: Deferred[int] = Deferred()
                checked.addCallback(self._tail_checked, segment)
                self._schedule(self._files.cut_torn_tail, segment, result=checked)
            buffer = self._pending[segment] = bytearray()
            self._schedule(self._files.write, segment, buffer, self._owes_sync)
        buffer += record
        self._sizes[segment] += len(record)
        self.retained_bytes += len(record)
        self._appended(len(record))

    def durable(self) -> Deferred | None:
        """
        With `sync_journal = 0`: a Deferred that fires once what was appended is fsynced (its
        queue's journal's `durable` waits for a writer that lags behind, for both). None
        otherwise.
        """
        if self.sync_journal != 0:
            return None
        if self.failure is not None:
            return fail(self.failure)
        return self._writer.when_done(self)

    def _tail_checked(self, cut: int, segment: int) -> None:
        if cut:
            self.log.warn(
                "history of queue {queue}: cut {cut} bytes a crash left half written at the end of segment {segment}",
                queue=self.name, cut=cut, segment=segment,
            )
            if segment in self._sizes:
                self._sizes[segment] -= cut
                self.retained_bytes -= cut

    def take_operations(self) -> list[Operation]:
        self._pending = {}
        return super().take_operations()

    # Reads

    def read(self, since: int, until: int | None, limit: int, page_cursor: str | None = None) -> Deferred[HistoryPage]:
        """A page of the entries added in [since, until); BadCursor (raised) for a cursor of another read."""
        start = self.start(since) if page_cursor is None else self._resume(cursor.decode(page_cursor, self.name, since, until))
        if start is None:
            return succeed(HistoryPage([], None))
        return self.read_from(start, since, until, None, limit).addCallback(self._page, since, until)

    def _page(self, found: tuple[list[HistoryEntry], Position | None], since: int, until: int | None) -> HistoryPage:
        entries, following = found
        return HistoryPage(entries, None if following is None else cursor.encode(self.name, since, until, following))

    def read_from(
        self, start: Position, since: int, until: int | None, stop: Position | None, limit: int
    ) -> Deferred[tuple[list[HistoryEntry], Position | None]]:
        """Entries from `start` (not past `stop`), and where the next page starts: on the writer thread, after every write queued before."""
        result: Deferred = Deferred()
        self._schedule(
            failing_softly, self._files.read_page, list(self._names), start, since, until, stop, limit, PAGE_BYTES,
            result=result,
        )
        self._writer.flush()
        return result

    def end(self) -> Position | None:
        """Where the next add will be written, as things stand: what a rewind reads up to."""
        if not self._names:
            return None
        return Position(self._names[-1], self._sizes[self._names[-1]])

    def start(self, since: int) -> Position | None:
        """Where a read of the adds from `since` on starts: the segment that holds `since`, or the oldest."""
        if not self._names:
            return None
        return Position(self._names[segment_index(self._names, since)], 0)

    def _resume(self, position: Position) -> Position | None:
        if not self._names:
            return None  # all past retention
        size = self._sizes.get(position.segment)
        if size is not None:
            if position.offset > size:
                raise BadCursor("the cursor points past the end of its segment")
            return position
        if position.segment > self._names[0]:
            raise BadCursor("the cursor names a segment this history never had")
        # Its segment is past retention: go on from the oldest kept.
        return Position(self._names[0], 0)

    # Retention

    def _schedule_sweep(self) -> None:
        period = min(SWEEP_MAX_SECONDS, max(SWEEP_MIN_SECONDS, self.retain_ms / 10_000))
        self._sweep_call = self._clock.callLater(period, self._sweep)

    def _cancel_sweep(self) -> None:
        if self._sweep_call is not None:
            if self._sweep_call.active():
                self._sweep_call.cancel()
            self._sweep_call = None

    def _sweep(self) -> None:
        self._sweep_call = None
        self.drop_expired()
        self._schedule_sweep()

    def drop_expired(self) -> None:
        """Drop the segments whose every add is older than `retain`."""
        horizon = self._now_ms() - self.retain_ms
        names = self._names
        dropped = 0
        while dropped < len(names) and self._newest_add(dropped) < horizon:
            dropped += 1
        if not dropped:
            return
        gone, self._names = names[:dropped], names[dropped:]
        for segment in gone:
            self.retained_bytes -= self._sizes.pop(segment)
            self._unchecked.discard(segment)
            self._newest.pop(segment, None)
        if not self._names:
            self._last_add_known = False
        self._schedule(self._files.remove, gone)

    def _newest_add(self, index: int) -> int:
        """An upper bound on the newest add in the segment at `index`."""
        names = self._names
        if index + 1 < len(names):
            return self._newest.get(names[index], names[index + 1] - 1)
        return self._last_add if self._last_add_known else max(self._found_modified_ms, names[index])

    # Closing

    def close(self) -> None:
        self._cancel_sweep()
        self._cancel_sync()
        self._schedule(self._files.release)

    def erase(self) -> Deferred:
        """Remove every segment; fires once they are gone. What is written next follows the erase."""
        self._cancel_sweep()
        self._cancel_sync()
        erased: Deferred = Deferred()
        self._schedule(self._files.erase, result=erased)
        self._names = []
        self._sizes = {}
        self._unchecked = set()
        self._newest = {}
        self.retained_bytes = 0
        self._last_add_known = False
        return erased

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)
