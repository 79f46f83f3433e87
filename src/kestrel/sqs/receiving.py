"""
ReceiveMessage: one receive's walk down a queue.

A receive takes items as reliable reads, up to MaxNumberOfMessages, and looks at each one's
envelope: a message not yet due (its `visible_at` ahead) is held back as delayed, a FIFO
message whose group has one out is parked (kestrel.sqs.receipts), and the others are handed
out in flight. Only the first message may be waited for: WaitTimeSeconds (or the queue's
ReceiveMessageWaitTimeSeconds) is the deadline of the first read, and the ones after it take
only what is there. A receive looks at no more than SCAN_FACTOR times MaxNumberOfMessages
items, so a queue full of delayed or parked messages cannot make one slow; it then answers
with what it has.

A long poll's Deferred may be cancelled (its client went away): every message it had taken
goes back to the queue at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from kestrel.clock import Clock
from kestrel.queue import Item
from kestrel.session import Session, Unavailable
from kestrel.sqs.digests import md5_of_body, md5_of_message_attributes
from kestrel.sqs.messages import Message, message_of
from kestrel.sqs.receipts import HeldRead, HeldReads

SCAN_FACTOR = 10


@dataclass(frozen=True)
class ReceiveRequest:
    """One ReceiveMessage on engine queue `name`, its defaults resolved."""

    name: str
    fifo: bool
    max_messages: int
    visibility: int
    deadline: float | None  # clock seconds; None: answer at once
    attribute_names: frozenset[str]
    message_attribute_names: tuple[str, ...]


class Receive:
    """Collects one receive's messages; `run` gives its result now or a Deferred of it."""

    def __init__(self, request: ReceiveRequest, session: Session, held: HeldReads, clock: Clock):
        self.request = request
        self.session = session
        self.held = held
        self.clock = clock
        self.scan_limit = SCAN_FACTOR * request.max_messages
        self.scanned = 0
        self.taken: list[tuple[HeldRead, Message]] = []
        # FIFO groups this receive hands out: their later messages in the queue may come too.
        self.own_groups: set[str] = set()
        self.waiting: Deferred | None = None
        self.done: Deferred | None = None
        self.cancelled = False

    def run(self) -> dict[str, Any] | Deferred:
        if self._collect():
            return self._result()
        self.done = Deferred(self._cancel)
        return self.done

    def _collect(self) -> bool:
        """Take what is there now; True when the receive is complete, False while a read waits."""
        while len(self.taken) < self.request.max_messages and self.scanned < self.scan_limit:
            deadline = None if self.taken else self.request.deadline
            try:
                result = self.session.fetch(self.request.name, transaction=True, deadline=deadline)
            except Unavailable:
                if not self.taken:
                    raise
                # The server's status changed while the receive went on: it ends with what it has.
                break
            if isinstance(result, Deferred):
                self.waiting = result
                result.addCallbacks(self._arrived, self._failed)
                return False
            if result is None:
                break
            self._meet(result)
        return True

    def _meet(self, item: Item) -> None:
        self.scanned += 1
        request = self.request
        queue = self.session.collection.queue(request.name, create=False)
        assert queue is not None
        message = message_of(request.name, item)
        group = message.group_id if request.fifo else None
        if message.visible_at > self.clock.seconds() * 1000:
            self._not_delivered(item)
            self.held.hold_delayed(request.name, queue, item, group, message.visible_at / 1000)
            if group is not None:
                # Its group's later messages must wait for it, even those this receive meets.
                self.own_groups.discard(group)
            return
        if group is not None and group not in self.own_groups and self.held.held_up(request.name, queue, group):
            self._not_delivered(item)
            self.held.hold_parked(request.name, queue, item, group)
            return
        read = self.held.hold_in_flight(request.name, queue, item, group, request.visibility)
        self.taken.append((read, message))
        if group is not None:
            self.own_groups.add(group)

    @staticmethod
    def _not_delivered(item: Item) -> None:
        # The read that took it counted a delivery, which a message held back is not
        # (ApproximateReceiveCount, and maxReceiveCount's dead-lettering).
        item.deliveries -= 1
        if not item.deliveries:
            item.first_delivery_time = 0

    def _arrived(self, item: Item | None) -> None:
        self.waiting = None
        assert self.done is not None
        try:
            if item is not None:
                self._meet(item)
                if not self._collect():
                    return
            result = self._result()
        except Exception:
            self._give_back()
            self.done.errback()
            return
        self.done.callback(result)

    def _failed(self, failure: Failure) -> None:
        self.waiting = None
        self._give_back()
        if self.cancelled:
            failure.trap(CancelledError)
            return
        assert self.done is not None
        self.done.errback(failure)

    def _cancel(self, _: Deferred) -> None:
        # The caller gave up (its client went away): Deferred.cancel errbacks `done` after this.
        self.cancelled = True
        if self.waiting is not None:
            self.waiting.cancel()
        self._give_back()

    def _give_back(self) -> None:
        taken, self.taken = self.taken, []
        self.held.give_back(read for read, _ in taken)

    def _result(self) -> dict[str, Any]:
        if not self.taken:
            return {}
        return {"Messages": [self._message(read, message) for read, message in self.taken]}

    def _message(self, read: HeldRead, message: Message) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": self.held.receipt_handle(read),
            "MD5OfBody": md5_of_body(message.body),
            "Body": message.body,
        }
        attributes = system_attributes(read.item, message, self.request.attribute_names)
        if attributes:
            entry["Attributes"] = attributes
        chosen = chosen_attributes(message, self.request.message_attribute_names)
        if chosen:
            entry["MessageAttributes"] = chosen
            entry["MD5OfMessageAttributes"] = md5_of_message_attributes(chosen)
        return entry


def system_attributes(item: Item, message: Message, names: frozenset[str]) -> dict[str, str]:
    """The message system attributes asked for (`All` for every one) that the message has."""
    wanted: Callable[[str], bool] = (lambda name: True) if "All" in names else names.__contains__
    values = {
        "SentTimestamp": str(item.add_time),
        "ApproximateReceiveCount": str(item.deliveries),
        "ApproximateFirstReceiveTimestamp": str(item.first_delivery_time),
        "MessageGroupId": message.group_id,
        "MessageDeduplicationId": message.dedup_id,
        "SequenceNumber": message.sequence,
        "AWSTraceHeader": message.system_attributes.get("AWSTraceHeader", {}).get("StringValue"),
    }
    return {name: value for name, value in values.items() if value is not None and wanted(name)}


def chosen_attributes(message: Message, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """
    The message attributes a receive asks for: `All` or `.*` for every one, `prefix.*` for
    those whose name starts with `prefix.`, or a name itself.
    """
    if not names or not message.attributes:
        return {}
    if "All" in names or ".*" in names:
        return dict(message.attributes)
    prefixes = tuple(name[:-1] for name in names if name.endswith(".*"))
    exact = set(names)
    return {
        name: value
        for name, value in message.attributes.items()
        if name in exact or (prefixes and name.startswith(prefixes))
    }
