"""
What a FIFO queue (`.fifo`) adds to a queue: the deduplication window of its sends, the
sequence numbers of its messages, and which of its message groups are held up.

Deduplication: a send whose MessageDeduplicationId (given, or the SHA-256 of its body with
ContentBasedDeduplication) the queue saw in the last five minutes is answered with the first
send's MessageId and SequenceNumber, and nothing is added. The window is kept in memory.
After a restart it is rebuilt from the envelopes of the items still in the queue's memory
(queued or held), so a duplicate of a message not yet deleted is still caught; one of a
message deleted before the restart, or of one in read-behind on disk, is not.

Sequence numbers: 20 digits, increasing on the server across restarts: each is the clock's
milliseconds times a million, or one more than the last if that is larger.

Message groups: a group is held up while one of its messages is out (in flight, or held
back by its delay). A receive that meets a later message of a held-up group parks it (see
kestrel.sqs.receipts); once none of the group is out, its parked messages go back to the
head of the queue, in the order they were sent.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

from kestrel.clock import Clock

DEDUPLICATION_WINDOW = 300.0


class FirstSend(NamedTuple):
    """What the first send of a deduplication id answered."""

    message_id: str
    sequence: str


def content_deduplication_id(body: str) -> str:
    """ContentBasedDeduplication's id: the SHA-256 of the body (the attributes do not count, as in SQS)."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class DeduplicationWindow:
    """The deduplication ids one FIFO queue took in the last five minutes."""

    def __init__(self, clock: Clock):
        self._clock = clock
        # id -> (when it leaves the window, the first send), oldest first.
        self._seen: OrderedDict[str, tuple[float, FirstSend]] = OrderedDict()

    def __len__(self) -> int:
        self._forget_old()
        return len(self._seen)

    def first_send(self, dedup_id: str) -> FirstSend | None:
        self._forget_old()
        entry = self._seen.get(dedup_id)
        return None if entry is None else entry[1]

    def remember(self, dedup_id: str, first: FirstSend, sent_at: float | None = None) -> None:
        """
        Take `dedup_id` into the window from `sent_at` (clock seconds; now if None) on. Ids are
        remembered in the order they were sent (a rebuild sorts them first), so the oldest
        leaves first.
        """
        if dedup_id not in self._seen:
            sent_at = self._clock.seconds() if sent_at is None else sent_at
            self._seen[dedup_id] = (sent_at + DEDUPLICATION_WINDOW, first)

    def _forget_old(self) -> None:
        now = self._clock.seconds()
        while self._seen:
            dedup_id, (leaves_at, _) = next(iter(self._seen.items()))
            if leaves_at > now:
                return
            del self._seen[dedup_id]


class SequenceNumbers:
    """SequenceNumber for FIFO messages: increasing across the server and its restarts."""

    def __init__(self, clock: Clock):
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        self._last = max(self._last + 1, int(self._clock.seconds() * 1000) * 1_000_000)
        return f"{self._last:020d}"


Read = TypeVar("Read")


class MessageGroups(Generic[Read]):
    """One FIFO queue's groups: how many messages of each are out, and the reads parked behind them."""

    def __init__(self) -> None:
        self._out: dict[str, int] = {}
        self._parked: dict[str, list[Read]] = {}

    def held_up(self, group: str) -> bool:
        return group in self._out

    def went_out(self, group: str) -> None:
        self._out[group] = self._out.get(group, 0) + 1

    def came_in(self, group: str) -> bool:
        """A message of `group` is no longer out; True when none is, so its parked reads may go."""
        left = self._out.get(group, 0) - 1
        if left > 0:
            self._out[group] = left
            return False
        self._out.pop(group, None)
        return True

    def park(self, group: str, read: Read) -> None:
        self._parked.setdefault(group, []).append(read)

    def unpark(self, group: str) -> list[Read]:
        return self._parked.pop(group, [])

    def drop(self, group: str, read: Read) -> None:
        """Forget a parked read (its message was purged or its queue deleted)."""
        parked = self._parked.get(group)
        if parked is not None and read in parked:
            parked.remove(read)
            if not parked:
                del self._parked[group]
