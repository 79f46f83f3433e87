"""
One queue's journal as the reactor sees it.

The reactor side is the authority on the layout: which files exist, what they are named
and how many bytes each holds. Every change is queued, in order, for the writer thread
(`disk.JournalFiles`), so a size here can be trusted at once even though the bytes reach
the disk a moment later.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Final, Iterator, Sequence

from twisted.internet.defer import Deferred, fail
from kestrel.clock import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.journal import files, records
from kestrel.journal.disk import JournalFiles, ReadBehindCursor
from kestrel.journal.writer import JournalWriter, SyncedSource


def failing_softly(function, *args):
    """
    Run a read on the writer thread; its failure becomes its result. A read that fails
    leaves no hole in the journal, so it must not hold up the writes queued behind it.
    """
    try:
        return function(*args)
    except Exception:
        return Failure()


class Segment:
    """One journal file. The serial stays with the file when it is renamed by a rotation."""

    __slots__ = ("serial", "filename", "size")

    def __init__(self, serial: int, filename: str, size: int = 0):
        self.serial = serial
        self.filename = filename
        self.size = size


NO_SEGMENTS: Final[tuple[Segment, ...]] = ()


def state_size(opens: Sequence[tuple[int, Any]], items: Sequence[Any]) -> int:
    """Bytes `disk.encode_state` produces, computed without encoding anything."""
    addx = records.record_size(records.ADDX)
    tentative = records.record_size(records.REMOVE_TENTATIVE_XID)
    size = sum(addx + len(item.data) + tentative for _, item in opens)
    return size + sum(addx + (0 if item is None else len(item.data)) for item in items)


class Journal(SyncedSource):
    """
    One queue name's files. A queue that keeps no journal (`keep_journal = false`) has one
    whose `keep` is False: it records nothing. The journal of a deleted queue passes to the
    next queue of that name while its erase is pending, so that the new queue's writes are
    queued behind the erase, never before it. A journal whose writes fail retries them
    (RetryingSource); until then, its queue takes no new items. It is fsynced as
    `sync_journal` says (SyncedSource).
    """

    log: ClassVar[Logger] = Logger()

    def __init__(self, directory: str, name: str, writer: JournalWriter, clock: Clock, sync_journal: float | None = None):
        journal_files = JournalFiles(directory, name, writer.open_journals)
        # `sync_journal`, like `keep`, is the queue's setting; the queue sets it.
        super().__init__(writer, clock, journal_files, sync_journal)
        self.name = name
        self.keep = True
        self._directory = directory
        self._files = journal_files
        # A tuple, not a list: it changes only when a file is added or dropped, and a tuple
        # of one costs a queue 40 bytes less (issue 15).
        self._segments: tuple[Segment, ...] = (Segment(0, name),)
        self._next_serial = 1
        self._archived = 0
        self._last_timestamp = 0
        self._cursor: ReadBehindCursor | None = None

    def __repr__(self) -> str:
        return f"<Journal {self.name}>"

    def describe(self) -> str:
        return f"journal of queue {self.name}"

    @property
    def size(self) -> int:
        """Bytes in the current file."""
        return self._segments[-1].size

    @property
    def archived(self) -> int:
        """Bytes in the rotated files."""
        return self._archived

    def bytes_through(self, serial: int) -> int:
        """Bytes in the files up to and including the one with that serial."""
        return sum(segment.size for segment in self._segments if segment.serial <= serial)

    def filenames(self) -> list[str]:
        return [segment.filename for segment in self._segments]

    # Start-up (runs before the writer thread touches this journal)

    def replay(self, filenames: Sequence[str] | None = None) -> Iterator[tuple[records.Record, int, int]]:
        """
        Every record of the journal's files (`filenames` in replay order, as the spool listing
        found them; None lists the folder) with the serial of its file and the offset where it
        starts. Damaged tails are cut off and logged as they are met. A journal that keeps
        nothing erases the files instead.
        """
        if filenames is None:
            filenames = files.settle_queue_files(self._directory, self.name)
        if not self.keep:
            if filenames:
                self._schedule(self._files.erase, list(filenames))
            return
        self._segments = NO_SEGMENTS
        for filename in filenames:
            segment = self._new_segment(filename)
            timestamp = files.rotated_timestamp(self.name, filename)
            if timestamp is not None:
                self._last_timestamp = max(self._last_timestamp, timestamp)
            start = 0
            for record, end in files.read_records(self._files.path(filename), self._report_damage):
                yield record, segment.serial, start
                start = end
            segment.size = start
        if not self._segments or self._segments[-1].filename != self.name:
            self._new_segment(self.name)
        # The listing always ends with the current file; all before it are rotated.
        self._archived = sum(segment.size for segment in self._segments[:-1])

    def _report_damage(self, path: str, offset: int, reason: str, copy: str) -> None:
        self.log.warn(
            "DATA MAY HAVE BEEN LOST: journal {path} is damaged at byte {offset} ({reason}); truncated there; "
            "the file as it was: {copy}",
            path=path, offset=offset, reason=reason, copy=copy,
        )
        if self._cursor is not None:
            # Replay's read-behind may have read ahead into the part that was just cut off.
            self._cursor.forget_read_ahead()

    # Writes

    def append(self, record: bytes) -> None:
        if not self.keep:
            return
        if self._buffer is None:
            buffer = bytearray()
            # Per batch, not per append: whether a file closed for idleness owes an fsync first.
            self._schedule(self._files.write, buffer, self._owes_sync)
            self._buffer = buffer
        self._buffer += record
        self._segments[-1].size += len(record)
        self._appended(len(record))

    def durable(self) -> Deferred | None:
        """
        With `sync_journal = 0`: a Deferred that fires once what was appended is fsynced. Any
        journal waits for the writer while it lags behind (see JournalWriter.behind), so a
        reply never gets far ahead of the disk, and neither does memory.
        """
        if not self.keep or (self.sync_journal != 0 and not self._writer.behind(self.sync_journal)):
            return None
        if self.failure is not None:
            return fail(self.failure)
        done = self._writer.when_done(self)
        if self.sync_journal and self._writer.syncs_late(self.sync_journal):
            # A power cut loses no more than a period only if replies wait for the late fsync.
            done.addCallback(self._when_synced)
        return done

    def _when_synced(self, _) -> Deferred:
        # A method, not a lambda in `durable`: compiled, a lambda there would cost every call
        # of `durable` (every request) the allocation of its closure.
        return self._writer.when_synced()

    def rotate(self) -> int:
        """Move the current file aside and start an empty one; returns the rotated file's serial."""
        current = self._segments[-1]
        current.filename = files.rotated_name(self.name, self._timestamp())
        self._archived += current.size
        self._new_segment(self.name)
        # A journal that never fsyncs need not pay for it on every rotation.
        self._schedule(self._files.rotate, current.filename, self._owes_sync)
        return current.serial

    def rewrite(self, opens: Sequence[tuple[int, Any]], items: Sequence[Any]) -> None:
        """Replace every file with one holding just the given state."""
        rotated, pack = self._timestamp(), self._timestamp()
        replaced = self.filenames()[:-1]
        self._segments = NO_SEGMENTS
        self._archived = 0
        self._new_segment(self.name, state_size(opens, items))
        self._schedule(self._files.rewrite, opens, items, replaced, rotated, pack)

    def pack(self, upto_serial: int, opens: Sequence[tuple[int, Any]], items: Sequence[Any]) -> None:
        """Replace the rotated files up to the one with serial `upto_serial` by the given state."""
        packed = [segment for segment in self._segments if segment.serial <= upto_serial]
        kept = self._segments[len(packed):]
        replacement = Segment(packed[-1].serial, packed[-1].filename, state_size(opens, items))
        self._archived += replacement.size - sum(segment.size for segment in packed)
        self._segments = (replacement, *kept)
        timestamp = files.rotated_timestamp(self.name, replacement.filename)
        replaced = [segment.filename for segment in packed]
        self._schedule(self._files.pack, opens, items, replaced, self._timestamp(), timestamp)

    def close(self) -> None:
        self._cancel_sync()
        self.stop_reader()
        self._schedule(self._files.close)

    def erase(self) -> Deferred:
        """
        Remove every file; fires once they are gone. The journal is empty at once, and what
        it is given next is written after the erase.
        """
        self._cancel_sync()
        self.stop_reader()
        erased: Deferred = Deferred()
        self._schedule(self._files.erase, self.filenames(), result=erased)
        self._segments = NO_SEGMENTS
        self._archived = 0
        self._new_segment(self.name)
        return erased

    # Read-behind

    @property
    def reading_behind(self) -> bool:
        return self._cursor is not None

    def start_reader(self, serial: int | None = None, offset: int | None = None) -> None:
        """Place the read-behind cursor at a record, by default at the end of the journal."""
        segment = self._segments[-1] if serial is None else self._segment(serial)
        self._cursor = ReadBehindCursor(self._directory, segment.serial, segment.size if offset is None else offset)

    def stop_reader(self) -> None:
        if self._cursor is not None:
            self._schedule(self._cursor.close)
            self._cursor = None

    def read_items(self, need_bytes: int, max_items: int) -> Deferred:
        """
        Fires with (items, serial): the next items after the cursor as (data, add_time,
        expiry) tuples, and the serial of the file the cursor is in afterwards.
        """
        result: Deferred = Deferred()
        cursor = self._cursor
        assert cursor is not None
        self._schedule(failing_softly, cursor.read_items, self._layout(), need_bytes, max_items, self._now_ms(), result=result)
        self._writer.flush()
        return result

    def read_items_now(self, need_bytes: int, max_items: int) -> tuple[list[tuple[bytes, int, int]], int]:
        """`read_items` for start-up replay, before the writer thread runs."""
        cursor = self._cursor
        assert cursor is not None
        return cursor.read_items(self._layout(), need_bytes, max_items, self._now_ms())

    # Internals

    def _new_segment(self, filename: str, size: int = 0) -> Segment:
        segment = Segment(self._next_serial, filename, size)
        self._next_serial += 1
        self._segments = (*self._segments, segment)
        return segment

    def _segment(self, serial: int) -> Segment:
        return next(segment for segment in self._segments if segment.serial == serial)

    def _layout(self) -> tuple[tuple[int, str], ...]:
        return tuple((segment.serial, segment.filename) for segment in self._segments)

    def _timestamp(self) -> int:
        """A file timestamp later than every one used so far, as Kestrel's naming requires."""
        self._last_timestamp = max(self._now_ms(), self._last_timestamp + 1)
        return self._last_timestamp

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)
