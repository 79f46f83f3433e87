"""
The blocking half of one queue's journal: file writes, renames and reads.

Only the journal writer thread calls into this module once the server runs (start-up
replay calls it before). The reactor side (`journal.py`) decides every file name and
size; this side just carries the decisions out, so the two never disagree about which
file holds what.

A journal's current file is open only while it is in use: it opens on a write and closes
when it has not been written for a while (`OpenJournals.close_idle`) or when the server-wide
cap on open journal files needs its descriptor for another (issue 15: a server of many
queues would otherwise hold one descriptor per queue that was ever written).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, Sequence

from kestrel.journal import files, records

READ_CHUNK = 1 << 20
ITEM_OPS = frozenset((records.ADD, records.ADDX, records.ADD_XID, records.CONTINUE))


class UnreadableJournal(Exception):
    """Read-behind met a journal file that is gone or damaged: what follows in it cannot be read."""


def encode_state(opens: Iterable[tuple[int, object]], items: Iterable[object | None]) -> Iterator[bytes]:
    """
    Journal records that rebuild a queue: each open read as an add then a tentative remove
    of it, then the queued items. A None item is a placeholder for an item that later
    records remove again, so it carries no data.
    """
    for xid, item in opens:
        yield records.encode_addx(item.data, item.add_time, item.expiry)
        yield records.encode_remove_tentative(xid)
    for item in items:
        if item is None:
            yield records.encode_addx(b"", 0, 0)
        else:
            yield records.encode_addx(item.data, item.add_time, item.expiry)


def fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class OpenJournals:
    """
    The journal (and history) files the writer thread holds open, least recently written first, never more
    than `cap`: opening one more closes the least recently written first. `close_idle`, run
    every idle period, closes those not written since the run before. Writer thread only.
    """

    __slots__ = ("cap", "_files")

    def __init__(self, cap: int):
        self.cap = cap
        # Insertion order is the order of last writes; the value says whether the file was
        # written since the last `close_idle`.
        self._files: dict[HeldFile, bool] = {}

    def __len__(self) -> int:
        return len(self._files)

    def make_room(self) -> None:
        """A file is about to open: close the least recently written ones while the cap is reached."""
        while len(self._files) >= self.cap:
            next(iter(self._files)).release()

    def written(self, journal: HeldFile) -> None:
        self._files.pop(journal, None)
        self._files[journal] = True

    def closed(self, journal: HeldFile) -> None:
        self._files.pop(journal, None)

    def close_idle(self) -> int:
        """Close the files not written since the last call; returns how many stay open."""
        for journal, written in list(self._files.items()):
            if written:
                self._files[journal] = False  # keeps its place in the order
            else:
                journal.release()
        return len(self._files)


class HeldFile:
    """
    A file a queue writes (its journal's current file, or its history's newest segment), held
    open between writes until it is idle or the cap needs its descriptor, and fsynced as the
    queue's `sync_journal` promises: each write says whether it owes an fsync, which closing
    the file (for idleness, the cap or another file) must not skip.
    """

    # Slots (and in subclasses): every queue has one, and a million queues is a use case (issue 15).
    __slots__ = ("_open_journals", "_current", "_size", "_sync_owed", "_sync_queued")

    def __init__(self, open_journals: OpenJournals):
        self._open_journals = open_journals
        self._current: int | None = None
        # The open file's size: where a failed write is cut back to.
        self._size = 0
        # Written since the last fsync, by a source whose sync_journal promises one.
        self._sync_owed = False
        # A periodic fsync is waiting for the fsync thread (set by the writer thread, cleared
        # by the fsync thread as it starts).
        self._sync_queued = False

    @property
    def is_open(self) -> bool:
        return self._current is not None

    def _append(self, path: str, data: bytes | bytearray, owes_sync: bool) -> None:
        """
        Append whole records to the file at `path`, opened (under the cap) unless it is the
        one open: a write that fails is cut back off, so no record is left half-written.
        `owes_sync`: the queue's sync_journal promises an fsync of them.
        """
        fd = self._current
        if fd is None:
            self._open_journals.make_room()
            fd = self._current = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(fd).st_size
        self._open_journals.written(self)
        try:
            write_all(fd, data)
        except OSError:
            os.ftruncate(fd, self._size)
            raise
        self._size += len(data)
        self._sync_owed = self._sync_owed or owes_sync

    def fsync(self) -> None:
        if self._current is not None:
            os.fsync(self._current)
            self._sync_owed = False

    def release(self) -> None:
        """
        Close the file until the next write, as idle or to make room under the cap; first
        fsync it when its sync_journal still owes that (a periodic fsync then finds the file
        closed and has nothing left to do).
        """
        fd, self._current = self._current, None
        if fd is None:
            return
        self._open_journals.closed(self)
        owed, self._sync_owed = self._sync_owed, False
        if owed:
            fsync_and_close(fd)
        else:
            os.close(fd)

    def fsync_aside(self, run_elsewhere: Callable[..., None] | None) -> None:
        """
        A periodic fsync that does not hold up the writes queued behind it: it runs on a
        duplicate descriptor on another thread. (A write waiting for an fsync has not reached
        the OS, so a killed process would lose it.) While one waits for that thread, another
        is not queued: the waiting one covers every write made before it starts.
        """
        if self._current is None:
            return
        if run_elsewhere is None:
            self.fsync()
        elif not self._sync_queued:
            self._sync_queued = True
            # The duplicate outlives a release of the file and covers every write made so far.
            self._sync_owed = False
            run_elsewhere(self._fsync_queued, os.dup(self._current))

    def _fsync_queued(self, fd: int) -> None:
        """On the fsync thread. Writes made from here on need the next one."""
        self._sync_queued = False
        fsync_and_close(fd)

    def _close_without_sync(self) -> None:
        """Close the file, fsynced already or not to be kept."""
        if self._current is not None:
            os.close(self._current)
            self._current = None
            self._sync_owed = False
            self._open_journals.closed(self)


class JournalFiles(HeldFile):
    """The files of one queue: `<name>` is written, `<name>.<ms>` are rotated away."""

    __slots__ = ("directory", "name")

    def __init__(self, directory: str, name: str, open_journals: OpenJournals):
        super().__init__(open_journals)
        self.directory = directory
        self.name = name

    def path(self, filename: str) -> str:
        return os.path.join(self.directory, filename)

    def write(self, data: bytes | bytearray, owes_sync: bool = False) -> None:
        """Append whole records to `<name>` (`HeldFile._append`)."""
        self._append(self.path(self.name), data, owes_sync)

    def close(self) -> None:
        self.fsync()
        self._close_without_sync()

    def rotate(self, rotated_filename: str, sync: bool = True) -> None:
        """Rename the current file away and start a new one; `sync` fsyncs the old one first."""
        if sync:
            self.fsync()
        self._close_without_sync()
        self._rename_if_present(self.name, rotated_filename)
        self.write(b"")
        files.fsync_directory(self.directory)

    def rewrite(
        self, opens: Sequence[tuple[int, object]], items: Sequence[object], replaced: Sequence[str],
        rotated_timestamp: int, pack_timestamp: int,
    ) -> None:
        """
        Replace every file of the queue (the rotated files `replaced`, and `<name>`) with the
        given state, so that a crash at any step leaves either the old files or the new
        content for the next replay, never both: write a temp file; rotate `<name>` away so
        that all old content sits in rotated files; rename the temp file to a pack newer than
        all of them (from here on the start-up listing replaces the old files by the pack);
        install the pack as the listing would; then move it into place as `<name>`.
        """
        temp = self._write_temp(encode_state(opens, items), pack_timestamp)
        self.close()
        rotated = files.rotated_name(self.name, rotated_timestamp)
        self._rename_if_present(self.name, rotated)
        os.rename(self.path(temp), self.path(files.pack_name(self.name, pack_timestamp)))
        files.fsync_directory(self.directory)
        installed = files.install_pack(self.directory, self.name, pack_timestamp, [*replaced, rotated])
        os.rename(self.path(installed), self.path(self.name))
        files.fsync_directory(self.directory)

    def pack(
        self, opens: Sequence[tuple[int, object]], items: Sequence[object | None], replaced: Sequence[str],
        temp_timestamp: int, checkpoint_timestamp: int,
    ) -> None:
        """Replace the rotated files `replaced`, up to and including `<name>.<checkpoint>`, by the given state."""
        temp = self._write_temp(encode_state(opens, items), temp_timestamp)
        os.rename(self.path(temp), self.path(files.pack_name(self.name, checkpoint_timestamp)))
        files.fsync_directory(self.directory)
        files.install_pack(self.directory, self.name, checkpoint_timestamp, replaced)

    def erase(self, filenames: Sequence[str]) -> None:
        self.close()
        for filename in filenames:
            self._remove_if_present(filename)
        files.fsync_directory(self.directory)

    def _remove_if_present(self, filename: str) -> None:
        try:
            os.unlink(self.path(filename))
        except FileNotFoundError:
            pass

    def _write_temp(self, content: Iterable[bytes], timestamp: int) -> str:
        temp = files.temp_name(self.name, timestamp)
        try:
            self._write_file(self.path(temp), content)
        except OSError:
            self._remove_if_present(temp)
            raise
        return temp

    @staticmethod
    def _write_file(path: str, content: Iterable[bytes]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            # Joining in slices bounds memory while keeping the number of writes small.
            batch: list[bytes] = []
            size = 0
            for record in content:
                batch.append(record)
                size += len(record)
                if size >= READ_CHUNK:
                    write_all(fd, b"".join(batch))
                    batch, size = [], 0
            write_all(fd, b"".join(batch))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rename_if_present(self, source: str, target: str) -> None:
        try:
            os.rename(self.path(source), self.path(target))
        except FileNotFoundError:
            pass


class ReadBehindCursor:
    """
    Reads the items of a queue forward through its journal files, for a queue that holds
    only the head of its contents in memory. It knows its file by serial and finds the
    file's name in the layout it is given when it runs, because a rotation may have renamed
    the file since the cursor was placed; it opens the file for each read and seeks to where
    it left off. It moves on to the next file when it reaches the end of one that is no
    longer current.
    """

    def __init__(self, directory: str, serial: int, offset: int):
        self._directory = directory
        self.serial = serial
        self._fd: int | None = None
        self._buffer = b""
        self._buffer_offset = offset  # the file offset of _buffer[0]
        self._position = 0

    def read_items(
        self, segments: Sequence[tuple[int, str]], need_bytes: int, max_items: int, now_ms: int
    ) -> tuple[list[tuple[bytes, int, int]], int]:
        """
        Up to `max_items` items, stopping once they hold `need_bytes` bytes, and the serial of
        the file the cursor is in afterwards. `segments` lists (serial, file name) of the
        journal's files as they stand when this runs. The file is closed again afterwards: a
        queue reading behind holds no descriptor between refills, however many such queues
        there are (issue 15), and reopening costs one open per refill of up to
        `max_memory_size` bytes.
        """
        found: list[tuple[bytes, int, int]] = []
        total = 0
        try:
            # At least one item, even when memory is already at its limit: the caller needs the head.
            while len(found) < max_items and (not found or total < need_bytes):
                record = self._next_record(segments)
                if record is None:
                    break
                if record.op in ITEM_OPS:
                    found.append((record.data, record.add_time or now_ms, record.expiry))
                    total += len(record.data)
        finally:
            self.close()
        return found, self.serial

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def forget_read_ahead(self) -> None:
        """
        Drop what was read past the next record and read it from the file again: the file
        was cut shorter (a damaged tail, at start-up) since it was read, and what is written
        after the cut must not be joined to the bytes that were cut off.
        """
        self.close()
        self._buffer_offset += self._position
        self._buffer = b""
        self._position = 0

    def _next_record(self, segments: Sequence[tuple[int, str]]) -> records.Record | None:
        while True:
            try:
                record, self._position = records.decode(self._buffer, self._position)
                return record
            except records.IncompleteRecord:
                pass
            except records.BrokenRecord as broken:
                path = self._path(segments)
                raise UnreadableJournal(f"{path} is damaged ({broken}); the file as it was: {files.keep_damaged_copy(path)}") from None
            if self._fd is None:
                path = self._path(segments)
                try:
                    self._fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    raise UnreadableJournal(f"{path} is missing") from None
                os.lseek(self._fd, self._buffer_offset + len(self._buffer), os.SEEK_SET)
            chunk = os.read(self._fd, READ_CHUNK)
            if chunk:
                self._buffer = self._buffer[self._position:] + chunk
                self._buffer_offset += self._position
                self._position = 0
                continue
            if not self._advance(segments):
                return None

    def _path(self, segments: Sequence[tuple[int, str]]) -> str:
        return os.path.join(self._directory, dict(segments)[self.serial])

    def _advance(self, segments: Sequence[tuple[int, str]]) -> bool:
        serials = [serial for serial, _ in segments]
        index = serials.index(self.serial)
        if index + 1 == len(serials):
            return False
        self.close()
        self.serial = segments[index + 1][0]
        self._buffer = b""
        self._buffer_offset = 0
        self._position = 0
        return True
