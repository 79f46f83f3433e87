"""
SQS messages as queue items, both ways (one queue, every protocol: issue 14).

A message sent through SQS is stored as an envelope (kestrel.envelope): its body's UTF-8
bytes behind a compact JSON header of

    id          the MessageId (a uuid4)
    attrs       MessageAttributes: {name: {"t": DataType, "s": string value} or {"t": DataType, "b": base64}}
    sys         MessageSystemAttributes (AWSTraceHeader), in the same form
    group       a FIFO message's MessageGroupId
    dedup       a FIFO message's MessageDeduplicationId (given, or the body's SHA-256)
    seq         a FIFO message's SequenceNumber
    visible_at  for a delayed message, when it becomes visible (epoch ms)

(only the keys that have a value). The item's add time is the message's SentTimestamp.
memcache, Thrift and text readers get the body's bytes and nothing of the header: not its
attributes, and not its delay (they may read a delayed message at once).

An item written by memcache, Thrift or text (no envelope) reads over SQS as a message whose
body is the item's bytes when they are UTF-8 text of only the characters SQS allows in a
body, and otherwise their base64, with the String message attribute `kestrel.encoding` =
`base64` to say so. Its MessageId is derived from the queue's name, the item's add time and
its sequence number in the queue (a uuid5), so it is the same on every delivery while the
server runs; a restart numbers the items again.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from kestrel import envelope
from kestrel.queue import Item

# The characters SQS allows in a body and in a string attribute's value (the Amazon SQS API
# Reference, SendMessage: "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF").
NOT_ALLOWED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ALLOWED_CHARACTERS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
ENCODING_ATTRIBUTE = "kestrel.encoding"
# The namespace of the MessageIds of items written by other protocols.
FOREIGN_ITEMS = uuid.UUID("2fffae9e-fc81-5cb1-b7ff-a5b08a366440")  # uuid5(NAMESPACE_URL, "kestrel:items-without-envelope")

Attributes = dict[str, dict[str, Any]]


@dataclass
class Message:
    """
    What SQS knows of an item. Attributes are in the calls' shape (`{name: {"DataType": ...,
    "StringValue": str} or {"DataType": ..., "BinaryValue": bytes}}`).
    """

    message_id: str
    body: str
    attributes: Attributes = field(default_factory=dict)
    system_attributes: Attributes = field(default_factory=dict)
    group_id: str | None = None
    dedup_id: str | None = None
    sequence: str | None = None
    visible_at: int = 0


def stored(message: Message) -> bytes:
    """The item that holds `message`."""
    header: dict[str, Any] = {"id": message.message_id}
    if message.attributes:
        header["attrs"] = _stored_attributes(message.attributes)
    if message.system_attributes:
        header["sys"] = _stored_attributes(message.system_attributes)
    for key, value in (("group", message.group_id), ("dedup", message.dedup_id), ("seq", message.sequence)):
        if value is not None:
            header[key] = value
    if message.visible_at:
        header["visible_at"] = message.visible_at
    return envelope.wrap(header, message.body.encode("utf-8"))


def message_of(queue_name: str, item: Item) -> Message:
    """The message an item holds: its envelope's, or the item's bytes as a body."""
    unwrapped = envelope.unwrap(item.data)
    if unwrapped is not None:
        try:
            return _enveloped(*unwrapped)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a header this module did not write: the item is read as it is
    return _foreign(queue_name, item)


def _enveloped(header: dict[str, Any], body: bytes) -> Message:
    return Message(
        message_id=str(header["id"]),
        body=body.decode("utf-8"),
        attributes=_attributes(header.get("attrs", {})),
        system_attributes=_attributes(header.get("sys", {})),
        group_id=_optional_text(header.get("group")),
        dedup_id=_optional_text(header.get("dedup")),
        sequence=_optional_text(header.get("seq")),
        visible_at=int(header.get("visible_at", 0)),
    )


def _foreign(queue_name: str, item: Item) -> Message:
    message_id = str(uuid.uuid5(FOREIGN_ITEMS, f"{queue_name}/{item.add_time}/{item.seq}"))
    try:
        text = item.data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not NOT_ALLOWED.search(text):
        return Message(message_id, text)
    encoded = base64.b64encode(item.data).decode("ascii")
    return Message(message_id, encoded, {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}})


def _stored_attributes(attributes: Attributes) -> dict[str, dict[str, str]]:
    kept = {}
    for name, value in attributes.items():
        if "StringValue" in value:
            kept[name] = {"t": value["DataType"], "s": value["StringValue"]}
        else:
            kept[name] = {"t": value["DataType"], "b": base64.b64encode(value["BinaryValue"]).decode("ascii")}
    return kept


def _attributes(stored_attributes: dict[str, dict[str, str]]) -> Attributes:
    attributes: Attributes = {}
    for name, value in stored_attributes.items():
        if "s" in value:
            attributes[name] = {"DataType": value["t"], "StringValue": value["s"]}
        else:
            attributes[name] = {"DataType": value["t"], "BinaryValue": base64.b64decode(value["b"])}
    return attributes


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)
