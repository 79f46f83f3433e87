"""
Byte codec for history cursors: where the next page starts (a segment and an offset in it),
with the queue and window it was made for, as URL-safe base64. Pure functions.

The check is a CRC-32, a guard against damage and against a cursor of another read, not a
signature: a made-up offset can only make a read of the same queue's history fail.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from struct import Struct
from typing import Final, NamedTuple

from kestrel.history import BadCursor

VERSION: Final = 1
_CURSOR: Final = Struct("<BqqqqI")  # version, segment, offset, since, until (-1: none), check
NO_END: Final = -1


class Position(NamedTuple):
    segment: int  # the segment's name: the add time of its first item, epoch ms
    offset: int


def encode(queue: str, since: int, until: int | None, position: Position) -> str:
    fields = (VERSION, position.segment, position.offset, since, NO_END if until is None else until)
    packed = _CURSOR.pack(*fields, _check(queue, fields))
    return base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode(cursor: str, queue: str, since: int, until: int | None) -> Position:
    """The position in `cursor`; BadCursor unless it was made for this queue and window."""
    try:
        raw = base64.b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise BadCursor(f"cursor {cursor[:40]!r} is not base64url") from None
    if len(raw) != _CURSOR.size:
        raise BadCursor(f"cursor {cursor[:40]!r} has the wrong length")
    *fields, check = _CURSOR.unpack(raw)
    version, segment, offset, cursor_since, cursor_until = fields
    if version != VERSION or check != _check(queue, tuple(fields)):
        raise BadCursor("the cursor was not made by this server for this queue")
    if (cursor_since, cursor_until) != (since, NO_END if until is None else until):
        raise BadCursor("the cursor was made for another window (since/until)")
    if segment < 0 or offset < 0:
        raise BadCursor("the cursor points before the history")
    return Position(segment, offset)


def _check(queue: str, fields: tuple) -> int:
    return zlib.crc32(queue.encode() + _CURSOR.pack(*fields, 0))
