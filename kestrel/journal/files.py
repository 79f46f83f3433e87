"""Naming, listing, clean-up and reading of a queue's journal files (spec 3.1, 4.2, 4.3).

Current file ``q``; rotated ``q.<epoch_ms>``; temporary ``q~~<epoch_ms>``; pack ``q.<epoch_ms>.pack``.
Blocking I/O: this runs at startup or on the journal writer thread.
"""

import os
from collections.abc import Callable, Iterator

from kestrel.journal.records import BrokenRecord, IncompleteRecord, Record, decode

TEMP_MARKER = "~~"
PACK_SUFFIX = ".pack"


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


def queue_names(directory: str) -> list[str]:
    """Queues that have journal files in ``directory`` (spec 3.1 and appendix A.8)."""
    names = {
        filename.split(".", 1)[0]
        for filename in _regular_file_names(directory)
        # A leading dot would give an empty queue name.
        if TEMP_MARKER not in filename and not filename.startswith(".")
    }
    return sorted(names)


def journal_files(directory: str, queue: str) -> list[str]:
    """The queue's journal file names in replay order, after cleaning up (spec 4.2).

    Temp files are deleted; each pack ``q.<T>.pack`` (ascending T) replaces every rotated
    file ``q.<t>`` with t <= T.  The result is the rotated files by ascending timestamp, then
    ``q`` (always, even when it does not exist yet).
    """
    rotated: dict[int, str] = {}
    packs: dict[int, str] = {}
    temp_prefix = f"{queue}{TEMP_MARKER}"
    for filename in _regular_file_names(directory):
        if filename.startswith(temp_prefix):
            os.remove(os.path.join(directory, filename))
        elif (timestamp := rotated_timestamp(queue, filename)) is not None:
            rotated[timestamp] = filename
        elif (timestamp := _pack_timestamp(queue, filename)) is not None:
            packs[timestamp] = filename

    for pack_timestamp in sorted(packs):
        for timestamp in [t for t in rotated if t <= pack_timestamp]:
            os.remove(os.path.join(directory, rotated.pop(timestamp)))
        # The deletions must be durable before the pack takes the name: if the rename survived
        # a crash but a deletion did not, the old file would be replayed as well as the pack.
        fsync_directory(directory)
        replacement = rotated_name(queue, pack_timestamp)
        os.replace(os.path.join(directory, packs[pack_timestamp]), os.path.join(directory, replacement))
        rotated[pack_timestamp] = replacement
    if packs:
        fsync_directory(directory)

    return [rotated[timestamp] for timestamp in sorted(rotated)] + [queue]


def read_records(
    path: str,
    on_broken: Callable[[str, int, str], None] | None = None,
    chunk_size: int = 1 << 20,
) -> Iterator[tuple[Record, int]]:
    """Stream the records of one journal file, each with the file offset just after it.

    A missing file yields nothing.  On a broken record or a torn tail, the file is truncated
    at the start of that record, ``on_broken(path, offset, reason)`` is called and reading stops.
    """
    try:
        journal = open(path, "rb")
    except FileNotFoundError:
        return
    with journal:
        buf = b""
        buf_offset = 0  # file offset of buf[0]
        pos = 0
        while True:
            try:
                record, pos = decode(buf, pos)
            except IncompleteRecord as incomplete:
                tail = buf[pos:]
                # Reading at least as much as is already buffered keeps a record longer than
                # chunk_size from being re-copied once per chunk.
                chunk = journal.read(max(chunk_size, len(tail)))
                if not chunk:
                    if not tail:
                        return
                    failure: Exception = incomplete
                    break
                buf_offset += pos
                buf = tail + chunk
                pos = 0
                continue
            except BrokenRecord as broken:
                failure = broken
                break
            yield record, buf_offset + pos

    broken_offset = buf_offset + pos
    os.truncate(path, broken_offset)
    if on_broken is not None:
        on_broken(path, broken_offset, str(failure))


def fsync_directory(directory: str) -> None:
    """Make renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
