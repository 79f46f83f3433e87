"""
A guard for Thrift frames: walks one strict binary-protocol message and checks it before
thriftpy2 decodes it.

thriftpy2's decoders (pure Python and Cython alike) trust what a frame declares: a list
of 2^31 elements of a zero-width or unknown type makes them loop for minutes, and a
negative or oversized length reads past the data. This scanner reads nothing it has not
bounded first. Every string length must fit in the bytes left; a container of N elements
whose type takes at least s bytes on the wire must have N * s bytes left; only the wire
types of the binary protocol are accepted; nesting is capped. Each element consumes at
least one byte, so a scan costs time linear in the frame. A frame that passes decodes
in bounded time.

Pure functions over bytes; no Twisted, no thriftpy2.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

STOP, BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = 0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15

# The strict header: the top 16 bits of the first word are the version, its low byte the
# message type.
VERSION_1 = 0x80010000
VERSION_MASK = 0xFFFF0000
TYPE_MASK = 0x000000FF

# Our interface nests three deep (arguments, list, element); thriftpy2 gives up at 64.
MAX_DEPTH = 16

_FIXED_SIZE = {BOOL: 1, BYTE: 1, DOUBLE: 8, I16: 2, I32: 4, I64: 8}
# The fewest bytes a value of each type takes: a length, an empty struct's STOP, a
# container's header.
_MIN_SIZE = {**_FIXED_SIZE, STRING: 4, STRUCT: 1, MAP: 6, SET: 5, LIST: 5}

_u32 = Struct("!I")
_i32 = Struct("!i")


class MessageHeader(NamedTuple):
    name: bytes
    type: int
    seqid: int


class MalformedFrame(ValueError):
    """A frame that must not reach the decoder; `header` is set when its header was readable."""

    def __init__(self, reason: str, header: MessageHeader | None = None):
        super().__init__(reason)
        self.header = header


def read_header(frame: bytes) -> tuple[MessageHeader, int]:
    """The strict message header at the start of `frame`, and the offset of the body after it."""
    end = len(frame)
    if end < 4:
        raise MalformedFrame(f"a frame of {end} bytes has no message header")
    word = _u32.unpack_from(frame, 0)[0]
    if word & VERSION_MASK != VERSION_1:
        raise MalformedFrame(f"no strict binary protocol version in {bytes(frame[:4]).hex()}")
    position = _string_end(frame, 4, end)
    if position + 4 > end:
        raise MalformedFrame("the message header ends before its sequence id")
    name = bytes(frame[8:position])
    seqid = _i32.unpack_from(frame, position)[0]
    return MessageHeader(name, word & TYPE_MASK, seqid), position + 4


def scan_message(frame: bytes, max_depth: int = MAX_DEPTH) -> MessageHeader:
    """
    Check that `frame` is exactly one well-formed message: a strict header and one struct,
    with nothing after it. Returns the header; raises MalformedFrame.
    """
    header, position = read_header(frame)
    end = len(frame)
    try:
        position = _value(frame, position, end, STRUCT, max_depth)
    except MalformedFrame as error:
        raise MalformedFrame(str(error), header) from None
    if position != end:
        raise MalformedFrame(f"{end - position} bytes after the end of the message", header)
    return header


def struct_end(frame: bytes, position: int = 0, max_depth: int = MAX_DEPTH) -> int:
    """The offset just past the well-formed struct at `position` (a header before a message)."""
    return _value(frame, position, len(frame), STRUCT, max_depth)


def _value(frame: bytes, position: int, end: int, ttype: int, budget: int) -> int:
    """The offset just past the value of type `ttype` at `position`."""
    size = _FIXED_SIZE.get(ttype)
    if size is not None:
        if position + size > end:
            raise MalformedFrame(f"a value of {size} bytes at offset {position} overruns the frame")
        return position + size
    if ttype == STRING:
        return _string_end(frame, position, end)
    if budget <= 0:
        raise MalformedFrame(f"structs and containers nest too deep at offset {position}")
    if ttype == STRUCT:
        return _struct_end(frame, position, end, budget - 1)
    if ttype == LIST or ttype == SET:
        return _list_end(frame, position, end, budget - 1)
    if ttype == MAP:
        return _map_end(frame, position, end, budget - 1)
    raise MalformedFrame(f"unknown type {ttype} at offset {position}")


def _string_end(frame: bytes, position: int, end: int) -> int:
    if position + 4 > end:
        raise MalformedFrame(f"a length at offset {position} overruns the frame")
    length = _i32.unpack_from(frame, position)[0]
    position += 4
    if length < 0 or length > end - position:
        raise MalformedFrame(f"a string of {length} bytes at offset {position} does not fit in the {end - position} bytes left")
    return position + length


def _struct_end(frame: bytes, position: int, end: int, budget: int) -> int:
    while True:
        if position >= end:
            raise MalformedFrame("a struct runs past the end of the frame")
        ftype = frame[position]
        if ftype == STOP:
            return position + 1
        if ftype not in _MIN_SIZE:
            raise MalformedFrame(f"unknown field type {ftype} at offset {position}")
        # The type byte and the field id.
        position += 3
        position = _value(frame, position, end, ftype, budget)


def _list_end(frame: bytes, position: int, end: int, budget: int) -> int:
    if position + 5 > end:
        raise MalformedFrame(f"a list header at offset {position} overruns the frame")
    etype = frame[position]
    count = _i32.unpack_from(frame, position + 1)[0]
    position += 5
    _check_count(count, _element_size(etype, position), position, end)
    size = _FIXED_SIZE.get(etype)
    if size is not None:
        return position + count * size
    if etype == STRING:
        # The common case (a put's items), without the dispatch of _value.
        for _ in range(count):
            position = _string_end(frame, position, end)
        return position
    for _ in range(count):
        position = _value(frame, position, end, etype, budget)
    return position


def _map_end(frame: bytes, position: int, end: int, budget: int) -> int:
    if position + 6 > end:
        raise MalformedFrame(f"a map header at offset {position} overruns the frame")
    ktype, vtype = frame[position], frame[position + 1]
    count = _i32.unpack_from(frame, position + 2)[0]
    position += 6
    _check_count(count, _element_size(ktype, position) + _element_size(vtype, position), position, end)
    for _ in range(count):
        position = _value(frame, position, end, ktype, budget)
        position = _value(frame, position, end, vtype, budget)
    return position


def _element_size(etype: int, position: int) -> int:
    size = _MIN_SIZE.get(etype)
    if size is None:
        raise MalformedFrame(f"unknown element type {etype} at offset {position}")
    return size


def _check_count(count: int, element_size: int, position: int, end: int) -> None:
    if count < 0 or count * element_size > end - position:
        raise MalformedFrame(f"{count} elements at offset {position} cannot fit in the {end - position} bytes left")
