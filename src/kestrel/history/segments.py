"""
The blocking half of one queue's history: its segment files, written, read and removed.

A queue's history lives in `<spool>/.history/<queue>/`, one file per segment, named by the
time of its first add (epoch ms). The spool listing passes directories and dot names by, and
Kestrel 2.4 never looks there. Only the journal writer thread calls into this module once the
server runs, in the order the reactor side (`kestrel.history.log`) queued the calls, so a read
sees every write queued before it. Like a journal's file, the file written last is held open
until it is idle or the server's cap on open files needs its descriptor (`OpenJournals`).
"""

from __future__ import annotations

import os
import shutil
from bisect import bisect_right
from collections import Counter, deque
from typing import Iterator, NamedTuple, Sequence

from kestrel.history import HistoryEntry
from kestrel.history import records
from kestrel.history.cursor import Position
from kestrel.journal.disk import HeldFile, OpenJournals

READ_CHUNK = 1 << 20
HISTORY_FOLDER = ".history"
# A page looks for the leaves of items that came with an older add time (dead letters) in at
# most this many other segments: each is read whole.
MOVED_IN_SEGMENTS = 4


class SegmentFile(NamedTuple):
    name: int  # epoch ms of its first add
    size: int
    modified_ms: int


def history_directory(spool: str, queue: str) -> str:
    return os.path.join(spool, HISTORY_FOLDER, queue)


def retained_queues(spool: str) -> list[str]:
    """The queues that have a history folder in the spool (a spool without histories is not listed)."""
    folder = os.path.join(spool, HISTORY_FOLDER)
    if not os.path.isdir(folder):
        return []
    with os.scandir(folder) as entries:
        return [entry.name for entry in entries if entry.is_dir()]


def list_segments(directory: str) -> list[SegmentFile]:
    """The segments of a history folder, oldest first; other names are passed by."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.isascii() and entry.name.isdigit() and entry.is_file():
                    status = entry.stat()
                    found.append(SegmentFile(int(entry.name), status.st_size, int(status.st_mtime * 1000)))
    except FileNotFoundError:
        return []
    return sorted(found)


def segment_index(names: Sequence[int], time: int) -> int:
    """The index among `names` (not empty) of the segment that `time` falls in, or of the oldest."""
    return max(0, bisect_right(names, time) - 1)


def filed_under(names: Sequence[int], add_time: int) -> int | None:
    """
    The segment among `names` where the leave of an item with this add time is written: the
    one its add time falls in (where its add is, unless it came with an older add time), or
    the oldest.
    """
    return names[segment_index(names, add_time)] if names else None


def scan(path: str, offset: int, end: int | None = None) -> Iterator[tuple[records.Record, int, int]]:
    """
    The records of a segment file from `offset` (up to `end`): each with where it starts and
    ends. It stops at a torn or damaged tail, and at a file that is gone.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        buffer = b""
        position = 0  # in buffer; buffer[0] is at file offset `offset`
        while end is None or offset + position < end:
            try:
                record, after = records.decode(buffer, position)
            except records.IncompleteRecord:
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    return
                offset += position
                buffer = buffer[position:] + chunk
                position = 0
                continue
            except records.BrokenRecord:
                return
            yield record, offset + position, offset + after
            position = after
    finally:
        os.close(fd)


class HistoryFiles(HeldFile):
    """
    One queue's history folder, on the writer thread. It holds at most one file open: the
    one written last, fsynced as its queue's `sync_journal` says (`HeldFile`).
    """

    __slots__ = ("directory", "_segment")

    def __init__(self, directory: str, open_journals: OpenJournals):
        super().__init__(open_journals)
        self.directory = directory
        self._segment = 0

    def path(self, segment: int) -> str:
        return os.path.join(self.directory, str(segment))

    def write(self, segment: int, data: bytes | bytearray, owes_sync: bool = False) -> None:
        """
        Append whole records to a segment (`HeldFile._append`); moving on to another segment
        closes the one before, fsyncing it first when that is owed.
        """
        if self._segment != segment:
            self.release()
            self._segment = segment
        if self._current is None:
            os.makedirs(self.directory, exist_ok=True)
        self._append(self.path(segment), data, owes_sync)

    def cut_torn_tail(self, segment: int) -> int:
        """
        Before a segment found at start is written again: cut off what a crash left half
        written at its end, so that new records do not follow a torn one. Returns the bytes cut.
        """
        path = self.path(segment)
        good = 0
        for _, _, good in scan(path, 0):
            pass
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return 0
        if size > good:
            os.truncate(path, good)
        return size - good

    def remove(self, segments: Sequence[int]) -> None:
        """Drop segments past retention."""
        for segment in segments:
            if segment == self._segment:
                self._close_without_sync()
            try:
                os.unlink(self.path(segment))
            except FileNotFoundError:
                pass

    def erase(self) -> None:
        self._close_without_sync()
        shutil.rmtree(self.directory, ignore_errors=True)

    def read_page(
        self, names: Sequence[int], start: Position, since: int, until: int | None, stop: Position | None,
        limit: int, budget: int,
    ) -> tuple[list[HistoryEntry], Position | None]:
        """
        The entries added in [since, until) from `start` (a segment among `names`, the
        segments as they stand when this runs), at most `limit` of them and, beyond the first,
        no more than `budget` bytes of data; never past `stop`. Returns them and where the
        next page starts, None at the end of the window. Each segment that gives entries is
        read to its end, where the records of their leaving are; so are up to
        MOVED_IN_SEGMENTS earlier ones, for entries that came with an older add time.
        """
        page = PageBuilder(names, since, until, limit, budget)
        index = names.index(start.segment)
        offset = start.offset
        for index in range(index, len(names)):
            segment = names[index]
            end = None
            if stop is not None:
                if segment > stop.segment or (segment == stop.segment and stop.offset == 0):
                    break
                if segment == stop.segment:
                    end = stop.offset
            if until is not None and segment >= until:
                break
            page.read_segment(segment, scan(self.path(segment), offset, end))
            offset = 0
            if page.full or page.ended:
                break
        moved_in = page.moved_in()
        for segment in sorted(moved_in)[:MOVED_IN_SEGMENTS]:
            page.match_moved_in(moved_in[segment], scan(self.path(segment), 0))
        next_position = page.next_position
        if next_position is None and page.full and not page.ended and index + 1 < len(names):
            segment = names[index + 1]
            if (until is None or segment < until) and (stop is None or (segment, 0) < stop):
                next_position = Position(segment, 0)
        return page.entries(), next_position


class FoundEntry:
    """An entry of a page as it is read: its add, and how and when it left once that is matched."""

    __slots__ = ("added", "consumed", "outcome", "data", "key", "segment", "rewound")

    def __init__(self, record: records.Added, segment: int):
        self.added = record.added
        self.consumed: int | None = None
        self.outcome: str | None = None
        self.data = record.data
        self.key = record.key
        self.segment = segment  # the segment its add is in
        self.rewound = record.rewound

    def leave(self, at: int, outcome: int) -> None:
        self.consumed, self.outcome = at, records.OUTCOMES[outcome]

    def entry(self) -> HistoryEntry:
        return HistoryEntry(self.added, self.consumed, self.outcome, self.data, self.rewound)


class PageBuilder:
    """The entries of one page as its segments are read, and their leaving matched to them."""

    def __init__(self, names: Sequence[int], since: int, until: int | None, limit: int, budget: int):
        self._names = names
        self._since = since
        self._until = until
        self._limit = limit
        self._budget = budget
        self._found: list[FoundEntry] = []
        self._bytes = 0
        self.full = False  # the page has its entries: no more are taken
        self.ended = False  # an add at or after `until` was met: the window ends there
        self.next_position: Position | None = None

    def read_segment(self, segment: int, segment_records: Iterator[tuple[records.Record, int, int]]) -> None:
        # The entries of this segment not matched yet, by key, oldest first: the records of
        # their leaving are in the same segment, after them.
        unmatched: dict[records.Key, deque[FoundEntry]] = {}
        for record, start, _ in segment_records:
            if isinstance(record, records.Added):
                self._added(record, segment, start, unmatched)
            elif isinstance(record, records.Left):
                waiting = unmatched.get(record.key)
                if waiting:
                    waiting.popleft().leave(record.left, record.outcome)
            else:
                self._flushed(record, unmatched)

    def _added(self, record: records.Added, segment: int, start: int, unmatched: dict) -> None:
        if record.added < self._since:
            return
        if self.ended or (self._until is not None and record.added >= self._until):
            self.ended = True  # adds are in time order: the window ends here
            return
        if self.full:
            return
        if self._found and (len(self._found) >= self._limit or self._bytes >= self._budget):
            self.full = True
            self.next_position = Position(segment, start)
            return
        entry = FoundEntry(record, segment)
        self._found.append(entry)
        self._bytes += len(record.data)
        if self._filed_here(record.add_time, segment):
            unmatched.setdefault(entry.key, deque()).append(entry)

    def _filed_here(self, add_time: int, segment: int) -> bool:
        """Whether the leave of an item added in `segment` is filed there too (see `filed_under`)."""
        return add_time >= segment or segment == self._names[0]

    @staticmethod
    def _flushed(record: records.Flushed, unmatched: dict[records.Key, deque[FoundEntry]]) -> None:
        # The reads open at the flush were the oldest of their items: those stay.
        still_open = Counter(record.open_reads)
        for key, waiting in unmatched.items():
            kept = still_open[key]
            while len(waiting) > kept:
                waiting.pop().leave(record.at, records.FLUSHED_OUT)

    def moved_in(self) -> dict[int, list[FoundEntry]]:
        """
        The entries whose leave is filed under an earlier segment, as they came with an add
        time older than their segment (a dead letter keeps its first add time), by that segment.
        """
        elsewhere: dict[int, list[FoundEntry]] = {}
        for entry in self._found:
            add_time = entry.key[0]
            if not self._filed_here(add_time, entry.segment):
                elsewhere.setdefault(segment_index(self._names, add_time), []).append(entry)
        return {self._names[index]: entries for index, entries in elsewhere.items()}

    @staticmethod
    def match_moved_in(moved: list[FoundEntry], segment_records: Iterator[tuple[records.Record, int, int]]) -> None:
        """
        Match leaves in another segment to entries that came with an older add time: there,
        file order says nothing about them, so a leave (or flush) counts for the earliest
        entry with its key that was added before it and not matched yet.
        """
        by_key: dict[records.Key, list[FoundEntry]] = {}
        for entry in moved:
            by_key.setdefault(entry.key, []).append(entry)
        for record, _, _ in segment_records:
            if isinstance(record, records.Left):
                for entry in by_key.get(record.key, ()):
                    if entry.consumed is None and entry.added <= record.left:
                        entry.leave(record.left, record.outcome)
                        break
            elif isinstance(record, records.Flushed):
                still_open = Counter(record.open_reads)
                for key, entries in by_key.items():
                    waiting = [entry for entry in entries if entry.consumed is None and entry.added <= record.at]
                    for entry in waiting[still_open[key]:]:
                        entry.leave(record.at, records.FLUSHED_OUT)

    def entries(self) -> list[HistoryEntry]:
        return [entry.entry() for entry in self._found]
