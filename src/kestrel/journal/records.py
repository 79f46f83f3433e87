"""Byte codec for Kestrel 2.4 journal records (doc/compatibility.md §4.1).

A journal is a sequence of records: a one-byte opcode followed by fields that depend on it.
All integers are little-endian and signed.  Pure functions only: no I/O, no logging.
"""

from struct import Struct
from typing import Final, NamedTuple

ADD: Final = 0  # legacy (starling): i32 size, i32 expiry_s, data[size - 4]
REMOVE: Final = 1
ADDX: Final = 2  # i32 size, i64 add_ms, i64 expiry_ms, data[size - 16]
REMOVE_TENTATIVE: Final = 3  # legacy 1.x: the xid is implied by the replay's xid counter
SAVE_XID: Final = 4  # legacy
UNREMOVE: Final = 5
CONFIRM_REMOVE: Final = 6
ADD_XID: Final = 7  # legacy: like CONTINUE
CONTINUE: Final = 8  # i32 xid, i32 size, i64 add_ms, i64 expiry_ms, data[size - 16]
REMOVE_TENTATIVE_XID: Final = 9

# Opcodes whose only field is an i32 xid.
_XID_ONLY_OPS: Final = frozenset((SAVE_XID, UNREMOVE, CONFIRM_REMOVE, REMOVE_TENTATIVE_XID))
# Opcodes that carry an xid in front of an ADDX-style payload.
_XID_ITEM_OPS: Final = frozenset((ADD_XID, CONTINUE))

_I32: Final = Struct("<i")
_ADD_FIELDS: Final = Struct("<ii")  # size, expiry_s
_ITEM_FIELDS: Final = Struct("<iqq")  # size, add_ms, expiry_ms
_XID_ITEM_FIELDS: Final = Struct("<iiqq")  # xid, size, add_ms, expiry_ms
_ADD_HEADER: Final = Struct("<bii")
_ADDX_HEADER: Final = Struct("<biqq")
_XID_ITEM_HEADER: Final = Struct("<biiqq")
_XID_RECORD: Final = Struct("<bi")

# The part of the "size" field that is not item data (the times).
_ADD_TIMES_SIZE: Final = _I32.size
_ITEM_TIMES_SIZE: Final = _ITEM_FIELDS.size - _I32.size

# Times (add time, expiry) are signed 64-bit counts of milliseconds.
MAX_TIME: Final = 2**63 - 1
REMOVE_BYTES: Final = bytes((REMOVE,))
REMOVE_TENTATIVE_BYTES: Final = bytes((REMOVE_TENTATIVE,))


class Record(NamedTuple):
    op: int
    xid: int = 0  # ops 4, 5, 6, 7, 8, 9; 0 otherwise
    data: bytes | None = None  # ops 0, 2, 7, 8
    add_time: int = 0  # epoch ms (ops 2, 7, 8); 0 for legacy ADD, whose caller supplies replay time
    expiry: int = 0  # epoch ms, 0 = none (legacy ADD stores seconds; decoded as seconds * 1000)


class BrokenRecord(Exception):
    """An unknown opcode, or a size field smaller than the record's fixed header."""


class IncompleteRecord(Exception):
    """The buffer ends inside a record (a torn tail)."""


# Records without fields are immutable, so decode can hand out shared instances.
_REMOVE_RECORD = Record(REMOVE)
_REMOVE_TENTATIVE_RECORD = Record(REMOVE_TENTATIVE)
_new_record = tuple.__new__  # bypasses the Python-level Record.__new__: about a quarter of decode time


def decode(buf: bytes | memoryview, pos: int) -> tuple[Record, int]:
    """Decode the record starting at ``pos``; return it and the position just after it."""
    buf_len = len(buf)
    if pos >= buf_len:
        raise IncompleteRecord("no opcode byte")
    op = buf[pos]
    if op == ADDX:
        header_end = pos + _ADDX_HEADER.size
        if header_end > buf_len:
            raise _incomplete(_ADDX_HEADER.size, buf_len - pos)
        size, add_time, expiry = _ITEM_FIELDS.unpack_from(buf, pos + 1)
        end = _item_end(op, size, _ITEM_TIMES_SIZE, header_end, pos, buf_len)
        return _new_record(Record, (op, 0, bytes(buf[header_end:end]), add_time, expiry)), end
    if op == REMOVE:
        return _REMOVE_RECORD, pos + 1
    if op in _XID_ONLY_OPS:
        end = pos + _XID_RECORD.size
        if end > buf_len:
            raise _incomplete(_XID_RECORD.size, buf_len - pos)
        return _new_record(Record, (op, _I32.unpack_from(buf, pos + 1)[0], None, 0, 0)), end
    if op in _XID_ITEM_OPS:
        header_end = pos + _XID_ITEM_HEADER.size
        if header_end > buf_len:
            raise _incomplete(_XID_ITEM_HEADER.size, buf_len - pos)
        xid, size, add_time, expiry = _XID_ITEM_FIELDS.unpack_from(buf, pos + 1)
        end = _item_end(op, size, _ITEM_TIMES_SIZE, header_end, pos, buf_len)
        return _new_record(Record, (op, xid, bytes(buf[header_end:end]), add_time, expiry)), end
    if op == ADD:
        header_end = pos + _ADD_HEADER.size
        if header_end > buf_len:
            raise _incomplete(_ADD_HEADER.size, buf_len - pos)
        size, expiry_s = _ADD_FIELDS.unpack_from(buf, pos + 1)
        end = _item_end(op, size, _ADD_TIMES_SIZE, header_end, pos, buf_len)
        return _new_record(Record, (op, 0, bytes(buf[header_end:end]), 0, expiry_s * 1000)), end
    if op == REMOVE_TENTATIVE:
        return _REMOVE_TENTATIVE_RECORD, pos + 1
    raise BrokenRecord(f"unknown opcode {op}")


def _item_end(op: int, size: int, times_size: int, header_end: int, pos: int, buf_len: int) -> int:
    """Validate an item record's size field and return the position after its data."""
    if size < times_size:
        raise BrokenRecord(f"opcode {op} has size {size}, smaller than its {times_size}-byte header")
    end = header_end + size - times_size
    if end > buf_len:
        raise _incomplete(end - pos, buf_len - pos)
    return end


def _incomplete(record_len: int, available: int) -> IncompleteRecord:
    return IncompleteRecord(f"record needs {record_len} bytes but only {available} remain")


def encode_addx(data: bytes, add_time: int, expiry: int) -> bytes:
    return _ADDX_HEADER.pack(ADDX, len(data) + _ITEM_TIMES_SIZE, add_time, expiry) + data


def encode_continue(xid: int, data: bytes, add_time: int, expiry: int) -> bytes:
    return _encode_xid_item(CONTINUE, xid, data, add_time, expiry)


def _encode_xid_item(op: int, xid: int, data: bytes, add_time: int, expiry: int) -> bytes:
    return _XID_ITEM_HEADER.pack(op, xid, len(data) + _ITEM_TIMES_SIZE, add_time, expiry) + data


def encode_remove_tentative(xid: int) -> bytes:
    """A transactional remove (open) as 2.x writes it: REMOVE_TENTATIVE_XID, not the legacy op 3."""
    return _XID_RECORD.pack(REMOVE_TENTATIVE_XID, xid)


def encode_unremove(xid: int) -> bytes:
    return _XID_RECORD.pack(UNREMOVE, xid)


def encode_confirm_remove(xid: int) -> bytes:
    return _XID_RECORD.pack(CONFIRM_REMOVE, xid)


def encode(record: Record) -> bytes:
    """Encode any record, including the legacy ones 2.x never writes."""
    op = record.op
    if op == ADDX:
        return encode_addx(_item_data(record), record.add_time, record.expiry)
    if op in _XID_ITEM_OPS:
        return _encode_xid_item(op, record.xid, _item_data(record), record.add_time, record.expiry)
    if op in _XID_ONLY_OPS:
        return _XID_RECORD.pack(op, record.xid)
    if op == REMOVE:
        return REMOVE_BYTES
    if op == REMOVE_TENTATIVE:
        return REMOVE_TENTATIVE_BYTES
    if op == ADD:
        data = _item_data(record)
        return _ADD_HEADER.pack(ADD, len(data) + _ADD_TIMES_SIZE, record.expiry // 1000) + data
    raise ValueError(f"unknown opcode {op}")


def _item_data(record: Record) -> bytes:
    if record.data is None:
        raise ValueError(f"opcode {record.op} needs data")
    return record.data


def record_size(op: int, data_len: int = 0) -> int:
    """Number of bytes a record with this opcode (and item length, for item records) takes."""
    if op == ADDX:
        return _ADDX_HEADER.size + data_len
    if op in _XID_ITEM_OPS:
        return _XID_ITEM_HEADER.size + data_len
    if op in _XID_ONLY_OPS:
        return _XID_RECORD.size
    if op == REMOVE or op == REMOVE_TENTATIVE:
        return 1
    if op == ADD:
        return _ADD_HEADER.size + data_len
    raise ValueError(f"unknown opcode {op}")
