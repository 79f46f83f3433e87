"""
The envelope: how an item carries a header beside its body (the SQS API's message id,
attributes, FIFO ids and delay, issue 14), in a form every protocol can tell from a plain item.

An enveloped item's bytes are

    MAGIC (8 bytes) | header length (4 bytes, big-endian) | header (compact JSON object) | body

MAGIC begins with 0xFF, which no UTF-8 text begins with, and goes on with bytes that a binary
item is unlikely to begin with, so an item written by memcache, Thrift or the text protocol
is taken for an envelope only if its writer meant it to be one. The header is a JSON object
whose keys are the writer's business (kestrel.sqs.messages); this module only wraps and
unwraps it. An item that starts with MAGIC but whose header length runs past its end is no
envelope, and every protocol delivers it as it is; one whose header is not a JSON object is
delivered whole by the SQS API and from the end of that header by the others.

The protocols that know nothing of headers (memcache, text, Thrift) deliver `body_of(data)`:
the body of an envelope, any other item unchanged.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Final, Mapping

MAGIC: Final = b"\xffKSQ\x00\x01\xfe\xfd"
_LENGTH: Final = struct.Struct(">I")
HEADER_START: Final = len(MAGIC) + _LENGTH.size


def wrap(header: Mapping[str, Any], body: bytes) -> bytes:
    """The bytes of an item holding `header` (anything JSON can write) and `body`."""
    encoded = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return b"".join((MAGIC, _LENGTH.pack(len(encoded)), encoded, body))


def unwrap(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, body) of an enveloped item; None for any other item."""
    body_start = _body_start(data)
    if body_start < 0:
        return None
    try:
        header = json.loads(data[HEADER_START:body_start].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    return header, data[body_start:]


def body_of(data: bytes) -> bytes:
    """What a protocol without headers delivers: an envelope's body, or the item as it is."""
    body_start = _body_start(data)
    return data if body_start < 0 else data[body_start:]


def _body_start(data: bytes) -> int:
    """Where an envelope's body starts; -1 when `data` is no envelope."""
    if not data.startswith(MAGIC) or len(data) < HEADER_START:
        return -1
    body_start: int = HEADER_START + _LENGTH.unpack_from(data, len(MAGIC))[0]
    return body_start if body_start <= len(data) else -1
