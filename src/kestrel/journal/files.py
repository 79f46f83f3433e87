"""Naming, listing, clean-up and reading of a queue's journal files (doc/compatibility.md §3.1, §4.2, §4.3).

Current file ``q``; rotated ``q.<epoch_ms>``; temporary ``q~~<epoch_ms>``; pack ``q.<epoch_ms>.pack``;
a copy of a damaged file, kept before it is cut, ``<file>.<epoch_ms>.damaged``. The spool
also holds the queues' runtime settings (``queue-settings.log``, `kestrel.journal.settings_file`),
no queue's journal.
Blocking I/O: this runs at startup or on the journal writer thread.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator

from kestrel.journal.records import BrokenRecord, IncompleteRecord, Record, decode

TEMP_MARKER = "~~"
PACK_SUFFIX = ".pack"
DAMAGED_SUFFIX = ".damaged"
# The queues' runtime settings (kestrel.settings), and its replacement while it is compacted
# (`.new`). The listing passes both by, as it passes by any file that is not `<queue>`,
# `<queue>.<digits>`, a pack or a temporary file, even with a queue named `queue-settings`.
SETTINGS_FILE = "queue-settings.log"


def rotated_name(queue: str, timestamp_ms: int) -> str:
    return f"{queue}.{timestamp_ms}"


def temp_name(queue: str, timestamp_ms: int) -> str:
    return f"{queue}{TEMP_MARKER}{timestamp_ms}"


def pack_name(queue: str, timestamp_ms: int) -> str:
    return f"{queue}.{timestamp_ms}{PACK_SUFFIX}"


def rotated_timestamp(queue: str, filename: str) -> int | None:
    """The timestamp of a rotated file ``q.<ts>``; None for any other name."""
    return _timestamp_between(filename, f"{queue}.", "")


def _pack_timestamp(queue: str, filename: str) -> int | None:
    return _timestamp_between(filename, f"{queue}.", PACK_SUFFIX)


def _timestamp_between(filename: str, prefix: str, suffix: str) -> int | None:
    if not (filename.startswith(prefix) and filename.endswith(suffix)):
        return None
    digits = filename[len(prefix) : len(filename) - len(suffix)]
    # isdigit alone would accept non-ASCII digits such as "²", which int() rejects.
    if not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)


def _regular_file_names(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.is_file()]
    except FileNotFoundError:
        return []


def _owner(filename: str) -> str | None:
    """The queue a journal file belongs to; None for a file that is no queue's (doc/compatibility.md §3.1)."""
    # A leading dot would give an empty queue name; damaged copies are kept, never replayed.
    if filename.startswith(".") or filename.endswith(DAMAGED_SUFFIX):
        return None
    return filename.split(TEMP_MARKER, 1)[0].split(".", 1)[0]


def _files_by_queue(directory: str) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for filename in _regular_file_names(directory):
        queue = _owner(filename)
        if queue:
            grouped.setdefault(queue, []).append(filename)
    return grouped


def list_spool(directory: str) -> dict[str, list[str]]:
    """
    Every queue of the spool with its journal files in replay order, cleaned up as
    `settle_queue_files` does, from one listing of the folder: what a server reads once at start.
    """
    spool = {}
    for queue, filenames in sorted(_files_by_queue(directory).items()):
        settled = settle_files(directory, queue, filenames)
        if len(settled) > 1 or queue in filenames:
            spool[queue] = settled
    return spool


def settle_queue_files(directory: str, queue: str) -> list[str]:
    """The queue's journal file names in replay order, after cleaning up (doc/compatibility.md §4.2); see `settle_files`."""
    return settle_files(directory, queue, _regular_file_names(directory))


def settle_files(directory: str, queue: str, filenames: Iterable[str]) -> list[str]:
    """The queue's journal files among `filenames`, in replay order, after cleaning up (doc/compatibility.md §4.2).

    Temp files are deleted; each pack ``q.<T>.pack`` (ascending T) replaces every rotated
    file ``q.<t>`` with t <= T.  The result is the rotated files by ascending timestamp, then
    ``q`` (always, even when it does not exist yet).
    """
    filenames = list(filenames)
    temp_prefix = f"{queue}{TEMP_MARKER}"
    for filename in filenames:
        if filename.startswith(temp_prefix):
            os.remove(os.path.join(directory, filename))
    return _in_replay_order(
        queue, filenames, lambda pack_timestamp, pack, replaced: install_pack(directory, queue, pack_timestamp, replaced)
    )


def replay_order(queue: str, filenames: Iterable[str]) -> list[str]:
    """
    The files among `filenames` that a replay of `queue` reads, in order, under the names
    they have now: a pack not yet installed in place of the rotated files it replaces. Like
    `settle_files`, but it changes nothing: for reading a spool that a server may be using.
    """
    return _in_replay_order(queue, filenames, lambda pack_timestamp, pack, replaced: pack)


def _in_replay_order(queue: str, filenames: Iterable[str], place_pack: Callable[[int, str, list[str]], str]) -> list[str]:
    """
    The queue's rotated files by timestamp, then ``q``. Each pack ``q.<T>.pack`` (ascending
    T) replaces every rotated file with t <= T, earlier packs included; `place_pack(T, pack,
    replaced)` gives the name it is replayed under.
    """
    rotated: dict[int, str] = {}
    packs: dict[int, str] = {}
    for filename in filenames:
        if (timestamp := rotated_timestamp(queue, filename)) is not None:
            rotated[timestamp] = filename
        elif (timestamp := _pack_timestamp(queue, filename)) is not None:
            packs[timestamp] = filename
    for pack_timestamp in sorted(packs):
        replaced = [rotated.pop(t) for t in sorted(rotated) if t <= pack_timestamp]
        rotated[pack_timestamp] = place_pack(pack_timestamp, packs[pack_timestamp], replaced)
    return [rotated[timestamp] for timestamp in sorted(rotated)] + [queue]


def install_pack(directory: str, queue: str, pack_timestamp: int, replaced: Iterable[str]) -> str:
    """
    Let the pack ``q.<T>.pack`` take the place of the rotated files it `replaced` (every one
    with a timestamp up to T): delete them, then rename the pack to ``q.<T>``, its name.
    """
    for filename in replaced:
        try:
            os.remove(os.path.join(directory, filename))
        except FileNotFoundError:
            pass
    # The deletions must be durable before the pack takes the name: if the rename survived
    # a crash but a deletion did not, the old file would be replayed as well as the pack.
    fsync_directory(directory)
    replacement = rotated_name(queue, pack_timestamp)
    os.replace(os.path.join(directory, pack_name(queue, pack_timestamp)), os.path.join(directory, replacement))
    fsync_directory(directory)
    return replacement


def read_records(
    path: str,
    on_broken: Callable[[str, int, str, str], None] | None = None,
    chunk_size: int = 1 << 20,
) -> Iterator[tuple[Record, int]]:
    """Stream the records of one journal file, each with the file offset just after it.

    A missing file yields nothing.  On a broken record or a torn tail, a copy of the whole
    file is kept beside it (`keep_damaged_copy`), the file is truncated at the start of that
    record, ``on_broken(path, offset, reason, copy)`` is called and reading stops.
    """
    try:
        # Unbuffered: records are read in chunks anyway, and a million small journals are
        # read at start, each paying for a buffer it does not need.
        journal = open(path, "rb", buffering=0)
    except FileNotFoundError:
        return
    with journal:
        buf = b""
        buf_offset = 0  # file offset of buf[0]
        pos = 0
        # Set while the buffer ends inside a record. A buffer read to its end is not given to
        # `decode` to be told so: an exception costs more than a small journal's one record.
        incomplete: IncompleteRecord | None = None
        while True:
            if pos < len(buf):
                try:
                    record, pos = decode(buf, pos)
                except IncompleteRecord as error:
                    incomplete = error
                except BrokenRecord as broken:
                    failure: Exception = broken
                    break
                else:
                    yield record, buf_offset + pos
                    continue
            tail = buf[pos:]
            # Reading at least as much as is already buffered keeps a record longer than
            # chunk_size from being re-copied once per chunk.
            chunk = journal.read(max(chunk_size, len(tail)))
            if not chunk:
                if incomplete is None:
                    return
                failure = incomplete
                break
            buf_offset += pos
            buf = tail + chunk
            pos = 0
            incomplete = None

    broken_offset = buf_offset + pos
    copy = keep_damaged_copy(path)
    os.truncate(path, broken_offset)
    if on_broken is not None:
        on_broken(path, broken_offset, str(failure), copy)


def keep_damaged_copy(path: str) -> str:
    """
    Copy a damaged journal file to ``<file>.<epoch_ms>.damaged`` beside it, as evidence.
    Returns the copy's path, or why no copy could be made: the server starts all the same.
    """
    stamp = time.time_ns() // 1_000_000
    # A copy made earlier in the same millisecond is evidence too: never overwrite one.
    while os.path.exists(copy := f"{path}.{stamp}{DAMAGED_SUFFIX}"):
        stamp += 1
    try:
        shutil.copyfile(path, copy)
    except OSError as error:
        return f"no copy could be kept ({error.strerror})"
    return copy


def fsync_directory(directory: str) -> None:
    """Make renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
