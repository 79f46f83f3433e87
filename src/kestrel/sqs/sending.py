"""
SendMessage and SendMessageBatch: a message's checks (its characters, its attributes, its
size, a FIFO queue's ids), its deduplication, and its write as an envelope.

A send answers once its item is queued, or, on a queue that fsyncs every write
(`sync_journal = 0`), once it is on disk: then `session.set` returns a Deferred and so does
the send. A duplicate FIFO send (kestrel.sqs.fifo) is answered at once with the first
send's MessageId and SequenceNumber, and adds nothing.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from kestrel.clock import Clock
from kestrel.collection import QueueCollection
from kestrel.envelope import unwrap
from kestrel.session import Session
from kestrel.sqs.attributes import LARGEST_MESSAGE
from kestrel.sqs.digests import md5_of_body, md5_of_message_attributes, md5_of_message_system_attributes
from kestrel.sqs.errors import SqsError, batch_entry_error, sqs_error
from kestrel.sqs.fifo import DEDUPLICATION_WINDOW, DeduplicationWindow, FirstSend, SequenceNumbers, content_deduplication_id
from kestrel.sqs.messages import ALLOWED_CHARACTERS, NOT_ALLOWED, Attributes, Message, stored
from kestrel.sqs.rules import ATTRIBUTE_LABELS

MAX_ATTRIBUTE_NAME = 256
MAX_DATA_TYPE = 256
# A message attribute's name: letters, digits, `_`, `-` and `.`, not starting with `AWS.` or
# `Amazon.`, nor starting or ending with a dot, nor holding two in a row.
ATTRIBUTE_NAME = re.compile(r"(?!(?i:aws|amazon)\.)(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]+(?<!\.)")
SYSTEM_ATTRIBUTES = frozenset({"AWSTraceHeader"})
# MessageGroupId and MessageDeduplicationId: 1 to 128 letters, digits and punctuation.
FIFO_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class SendTarget:
    """What a send needs to know of its queue."""

    name: str  # the engine's
    fifo: bool
    delay_seconds: int
    max_message_size: int
    max_item_size: int
    content_based_deduplication: bool


@dataclass
class Outgoing:
    """A checked message, ready to store."""

    message: Message
    dedup_id: str | None


def message_size(entry: dict[str, Any]) -> int:
    """A message's size as SQS counts it: its body and its attributes' names, types and values."""
    size = len(entry.get("MessageBody", "").encode("utf-8"))
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode("utf-8")) + len(value["DataType"].encode("utf-8"))
        if "StringValue" in value:
            size += len(value["StringValue"].encode("utf-8"))
        else:
            size += len(value.get("BinaryValue", b""))
    return size


class Sender:
    """Sends to any queue of the collection through the service's session."""

    def __init__(self, session: Session, clock: Clock):
        self._session = session
        self._collection: QueueCollection = session.collection
        self._clock = clock
        self._sequences = SequenceNumbers(clock)
        self._windows: dict[str, DeduplicationWindow] = {}

    def send(self, target: SendTarget, params: dict[str, Any]) -> dict[str, Any] | Deferred:
        result, written = self._send(target, self._outgoing(target, params))
        return result if written is None else written.addCallback(lambda _: result)

    def send_batch(self, target: SendTarget, entries: list[dict[str, Any]]) -> dict[str, Any] | Deferred:
        total = sum(message_size(entry) for entry in entries)
        if total > LARGEST_MESSAGE:
            raise sqs_error(
                "AWS.SimpleQueueService.BatchRequestTooLong",
                f"Batch requests cannot be longer than {LARGEST_MESSAGE} bytes. You have sent {total} bytes.",
            )
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, object]] = []
        writes: list[Deferred] = []
        for entry in entries:
            try:
                result, written = self._send(target, self._outgoing(target, entry))
            except SqsError as error:
                failed.append(batch_entry_error(entry["Id"], error))
                continue
            successful.append({"Id": entry["Id"], **result})
            if written is not None:
                writes.append(written)
        answer = {"Successful": successful, "Failed": failed}
        if not writes:
            return answer
        return gatherResults(writes, consumeErrors=True).addCallback(lambda _: answer)

    def queue_deleted(self, name: str) -> None:
        self._windows.pop(name, None)

    # Checks

    def _outgoing(self, target: SendTarget, params: dict[str, Any]) -> Outgoing:
        body: str = params.get("MessageBody", "")
        if not body:
            raise sqs_error("MissingParameter", "The request must contain the parameter MessageBody.")
        invalid = NOT_ALLOWED.search(body)
        if invalid:
            raise sqs_error(
                "InvalidMessageContents",
                f"Invalid binary character '#x{ord(invalid[0]):X}' was found in the message body, "
                f"the set of allowed characters is {ALLOWED_CHARACTERS}",
            )
        attributes: Attributes = params.get("MessageAttributes", {})
        system_attributes: Attributes = params.get("MessageSystemAttributes", {})
        _check_attributes("MessageAttributes", attributes)
        _check_attributes("MessageSystemAttributes", system_attributes)
        for name in system_attributes:
            if name not in SYSTEM_ATTRIBUTES:
                raise sqs_error("InvalidParameterValue", f"Message system attribute name '{name}' is invalid.")
        limit = target.max_message_size
        if message_size(params) > limit:
            raise too_long(limit)
        message = Message(str(uuid.uuid4()), body, attributes, system_attributes)
        delay = params.get("DelaySeconds")
        if target.fifo:
            if delay is not None:
                raise not_for_this_queue_type("DelaySeconds", delay)
            return self._fifo_outgoing(target, params, message)
        if "MessageDeduplicationId" in params:
            raise not_for_this_queue_type("MessageDeduplicationId", params["MessageDeduplicationId"])
        # A standard queue takes a MessageGroupId (SQS's fair queues) and orders nothing by it.
        delay = target.delay_seconds if delay is None else delay
        if delay:
            message.visible_at = int(self._clock.seconds() * 1000) + delay * 1000
        return Outgoing(message, None)

    def _fifo_outgoing(self, target: SendTarget, params: dict[str, Any], message: Message) -> Outgoing:
        group = params.get("MessageGroupId")
        if group is None:
            raise sqs_error("MissingParameter", "The request must contain the parameter MessageGroupId.")
        _check_fifo_id("MessageGroupId", group)
        dedup = params.get("MessageDeduplicationId")
        if dedup is None:
            if not target.content_based_deduplication:
                raise sqs_error(
                    "InvalidParameterValue",
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                )
            dedup = content_deduplication_id(message.body)
        else:
            _check_fifo_id("MessageDeduplicationId", dedup)
        message.group_id = group
        message.dedup_id = dedup
        if target.delay_seconds:
            message.visible_at = int(self._clock.seconds() * 1000) + target.delay_seconds * 1000
        return Outgoing(message, dedup)

    # Writing

    def _send(self, target: SendTarget, outgoing: Outgoing) -> tuple[dict[str, Any], Deferred | None]:
        message = outgoing.message
        window = self._window(target.name) if outgoing.dedup_id is not None else None
        if window is not None and outgoing.dedup_id is not None:
            first = window.first_send(outgoing.dedup_id)
            if first is not None:
                message.message_id = first.message_id
                message.sequence = first.sequence
                return self._answer(message), None
            message.sequence = self._sequences.next()
        data = stored(message)
        if len(data) > target.max_item_size:
            raise too_long(target.max_message_size)
        written = self._session.set(target.name, data)
        if written is False:
            raise sqs_error("OverLimit", "The queue is full: it refused the message.")
        if window is not None and outgoing.dedup_id is not None:
            assert message.sequence is not None
            window.remember(outgoing.dedup_id, FirstSend(message.message_id, message.sequence))
        return self._answer(message), None if written is True else written

    @staticmethod
    def _answer(message: Message) -> dict[str, Any]:
        answer: dict[str, Any] = {"MessageId": message.message_id, "MD5OfMessageBody": md5_of_body(message.body)}
        if message.attributes:
            answer["MD5OfMessageAttributes"] = md5_of_message_attributes(message.attributes)
        if message.system_attributes:
            answer["MD5OfMessageSystemAttributes"] = md5_of_message_system_attributes(message.system_attributes)
        if message.sequence is not None:
            answer["SequenceNumber"] = message.sequence
        return answer

    def _window(self, name: str) -> DeduplicationWindow:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = self._rebuilt_window(name)
        return window

    def _rebuilt_window(self, name: str) -> DeduplicationWindow:
        """The window of a queue this run has not sent to yet, from the envelopes of its items in memory."""
        window = DeduplicationWindow(self._clock)
        queue = self._collection.queue(name, create=False)
        if queue is None:
            return window
        since = int((self._clock.seconds() - DEDUPLICATION_WINDOW) * 1000)
        items = [*queue.memory(), *(item for _, item in queue.open_reads())]
        sent = []
        for item in items:
            if item.add_time <= since:
                continue
            unwrapped = unwrap(item.data)
            if unwrapped is None:
                continue
            header = unwrapped[0]
            if isinstance(header.get("dedup"), str) and isinstance(header.get("id"), str) and isinstance(header.get("seq"), str):
                sent.append((item.add_time, header["dedup"], FirstSend(header["id"], header["seq"])))
        for add_time, dedup_id, first in sorted(sent, key=lambda entry: entry[0]):
            window.remember(dedup_id, first, add_time / 1000)
        return window


def _check_attributes(member: str, attributes: Attributes) -> None:
    label = ATTRIBUTE_LABELS[member]
    for name, value in attributes.items():
        if len(name) > MAX_ATTRIBUTE_NAME or not ATTRIBUTE_NAME.fullmatch(name):
            raise sqs_error(
                "InvalidParameterValue",
                f"{label} name '{name}' is invalid: a name may hold letters, digits, '_', '-' and '.', "
                f"up to {MAX_ATTRIBUTE_NAME} of them, not start with 'AWS.' or 'Amazon.', nor start or end "
                "with '.', nor hold '..'.",
            )
        data_type: str = value["DataType"]
        if len(data_type) > MAX_DATA_TYPE:
            raise sqs_error("InvalidParameterValue", f"{label} '{name}' has a data type longer than {MAX_DATA_TYPE} characters.")
        text = value.get("StringValue")
        if text is None:
            continue
        if NOT_ALLOWED.search(text):
            raise sqs_error(
                "InvalidParameterValue",
                f"{label} '{name}' holds a character outside {ALLOWED_CHARACTERS}.",
            )
        if data_type.split(".", 1)[0] == "Number" and not _is_number(text):
            raise sqs_error("InvalidParameterValue", f"Can't cast the value of {label.lower()} '{name}' to a number.")


def _is_number(text: str) -> bool:
    """SQS's numbers: up to 38 digits of precision, between -10^126 and 10^126."""
    if not NUMBER.fullmatch(text):
        return False
    try:
        number = Decimal(text)
    except InvalidOperation:
        return False
    digits = number.normalize().as_tuple().digits
    return len(digits) <= 38 and (number == 0 or -128 <= number.adjusted() <= 126)


def _check_fifo_id(name: str, value: str) -> None:
    if not FIFO_ID.fullmatch(value):
        raise sqs_error(
            "InvalidParameterValue",
            f"Value {value} for parameter {name} is invalid. Reason: {name} can only include alphanumeric "
            "and punctuation characters. 1 to 128 in length.",
        )


def not_for_this_queue_type(name: str, value: object) -> SqsError:
    return sqs_error(
        "InvalidParameterValue",
        f"Value {value} for parameter {name} is invalid. Reason: The request include parameter that is not valid for this queue type.",
    )


def too_long(limit: int) -> SqsError:
    return sqs_error(
        "InvalidParameterValue", f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
    )
