"""
Byte codec for history records (doc/history.md): pure functions, no I/O.

A history segment is a sequence of records, each a one-byte opcode and fields; integers are
little-endian and signed, as in the journal (`kestrel.journal.records`), but the opcodes are
history's own and never appear in a journal.

- ADDED: its flags (REWOUND: the item is a rewind's copy of an earlier one), when the item
  was added to this queue (ms), its add time, then its data.
- LEFT: when it left (ms), how (an outcome code), and what identifies it: its add time and
  the CRC-32 of its data. Items carry no id in Kestrel's journal; a reader matches a LEFT to
  the earliest ADDED before it, in its segment, with the same (add time, CRC-32) that no
  other LEFT matched.
- FLUSHED: when the queue was flushed, and the (add time, CRC-32) of each read open then:
  every earlier ADDED of the segment that no LEFT matched, but one of those, left then.
"""

from __future__ import annotations

import zlib
from struct import Struct
from typing import Final, NamedTuple

ADDED: Final = 1
LEFT: Final = 2
FLUSHED: Final = 3

# How an item left (LEFT's outcome code), and the names history reads give them.
READ: Final = 1
EXPIRED: Final = 2
DISCARDED: Final = 3
FLUSHED_OUT: Final = 4
DEAD_LETTERED: Final = 5
OUTCOMES: Final = {READ: "read", EXPIRED: "expired", DISCARDED: "discarded", FLUSHED_OUT: "flushed",
                   DEAD_LETTERED: "dead_lettered"}

# ADDED's flags: a rewind added this item as a copy of one of the queue's history (later
# rewinds pass it by). Any other bit set is damage.
REWOUND: Final = 1
_KNOWN_FLAGS: Final = REWOUND

_ADDED_HEADER: Final = Struct("<bBqqi")  # op, flags, added_ms, add_time, length; data follows
_LEFT_RECORD: Final = Struct("<bqbqI")  # op, left_ms, outcome, add_time, crc32
_FLUSHED_HEADER: Final = Struct("<bqi")  # op, ms, count of open reads; (add_time, crc32) each follows
_KEY: Final = Struct("<qI")

Key = tuple[int, int]  # (add_time, crc32 of the data): what matches a LEFT to its ADDED


class Added(NamedTuple):
    added: int
    add_time: int
    data: bytes
    rewound: bool  # a rewind's copy of an earlier item

    @property
    def key(self) -> Key:
        return self.add_time, zlib.crc32(self.data)


class Left(NamedTuple):
    left: int
    outcome: int
    key: Key


class Flushed(NamedTuple):
    at: int
    open_reads: tuple[Key, ...]


Record = Added | Left | Flushed


class BrokenRecord(Exception):
    """An unknown opcode or outcome, or a negative length: what follows cannot be read."""


class IncompleteRecord(Exception):
    """The buffer ends inside a record (a torn tail, or more to read)."""


def key_of(data: bytes, add_time: int) -> Key:
    return add_time, zlib.crc32(data)


def encode_added(added: int, add_time: int, data: bytes, rewound: bool = False) -> bytes:
    return _ADDED_HEADER.pack(ADDED, REWOUND if rewound else 0, added, add_time, len(data)) + data


def encode_left(left: int, outcome: int, key: Key) -> bytes:
    return _LEFT_RECORD.pack(LEFT, left, outcome, key[0], key[1])


def encode_flushed(at: int, open_reads: list[Key] | tuple[Key, ...]) -> bytes:
    return _FLUSHED_HEADER.pack(FLUSHED, at, len(open_reads)) + b"".join(
        _KEY.pack(add_time, crc) for add_time, crc in open_reads
    )


def encode(record: Record) -> bytes:
    if isinstance(record, Added):
        return encode_added(record.added, record.add_time, record.data, record.rewound)
    if isinstance(record, Left):
        return encode_left(record.left, record.outcome, record.key)
    return encode_flushed(record.at, record.open_reads)


def decode(buf: bytes | memoryview, pos: int) -> tuple[Record, int]:
    """The record starting at `pos`, and the position just after it."""
    if pos >= len(buf):
        raise IncompleteRecord("no opcode byte")
    op = buf[pos]
    if op == ADDED:
        _, flags, added, add_time, length = _unpack(_ADDED_HEADER, buf, pos)
        if flags & ~_KNOWN_FLAGS:
            raise BrokenRecord(f"ADDED with unknown flags {flags:#04x}")
        if length < 0:
            raise BrokenRecord(f"ADDED with length {length}")
        start = pos + _ADDED_HEADER.size
        end = _need(buf, start, length)
        return Added(added, add_time, bytes(buf[start:end]), bool(flags & REWOUND)), end
    if op == LEFT:
        _, left, outcome, add_time, crc = _unpack(_LEFT_RECORD, buf, pos)
        if outcome not in OUTCOMES:
            raise BrokenRecord(f"LEFT with unknown outcome {outcome}")
        return Left(left, outcome, (add_time, crc)), pos + _LEFT_RECORD.size
    if op == FLUSHED:
        _, at, count = _unpack(_FLUSHED_HEADER, buf, pos)
        if count < 0:
            raise BrokenRecord(f"FLUSHED with {count} open reads")
        start = pos + _FLUSHED_HEADER.size
        end = _need(buf, start, count * _KEY.size)
        keys = tuple(_KEY.unpack_from(buf, start + index * _KEY.size) for index in range(count))
        return Flushed(at, keys), end
    raise BrokenRecord(f"unknown opcode {op}")


def _unpack(header: Struct, buf: bytes | memoryview, pos: int) -> tuple:
    _need(buf, pos, header.size)
    return header.unpack_from(buf, pos)


def _need(buf: bytes | memoryview, start: int, length: int) -> int:
    end = start + length
    if end > len(buf):
        raise IncompleteRecord(f"a record needs {end - start} bytes at {start}, {len(buf) - start} remain")
    return end
