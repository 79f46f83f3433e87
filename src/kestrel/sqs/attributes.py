"""
Queue attributes (CreateQueue, GetQueueAttributes, SetQueueAttributes): their values, their
checks with SQS's errors, and where each is kept.

Attributes that mean what an engine setting means are that setting, given at run time with
`QueueCollection.configure` (so memcache, Thrift and text clients of the queue see them too,
and `kestrel stats` and the config show them):

    MessageRetentionPeriod   max_age (seconds). CreateQueue gives a new queue SQS's default,
                             345600 (4 days), unless told otherwise. A queue without max_age
                             (made by another protocol, or set so in the config file) keeps its
                             messages for ever and reports 1209600, the longest SQS allows.
    RedrivePolicy            max_deliveries (maxReceiveCount) and dead_letter_queue (the queue
                             of deadLetterTargetArn, which must exist and be of the same type);
                             "" takes both away. A queue the config file gives both reports them.
    MaximumMessageSize       max_item_size, with room for the envelope's header (see
                             `engine_item_size`); the attribute itself is kept with the others
                             below. A queue without it reports max_item_size, at most 262144.

The others are SQS's alone and are kept in the queue's metadata (`QueueCollection.set_metadata`),
under "sqs": VisibilityTimeout (30), DelaySeconds (0), ReceiveMessageWaitTimeSeconds (0),
ContentBasedDeduplication (false), SqsManagedSseEnabled (false: nothing is encrypted), Policy
and RedriveAllowPolicy (kept and shown, not enforced: grants are the config's applications),
the queue's tags and its CreatedTimestamp and LastModifiedTimestamp. Both kinds survive
restarts and go when the queue is deleted. FIFO queues report DeduplicationScope `queue` and
FifoThroughputLimit `perQueue`, the only values they take.

Read-only: ApproximateNumberOfMessages (items waiting, parked FIFO messages included),
ApproximateNumberOfMessagesNotVisible (every open read of the queue but the delayed and the
parked, memcache and Thrift ones included), ApproximateNumberOfMessagesDelayed (the delayed
messages a receive has met and holds back; one no receive has met yet counts as waiting),
CreatedTimestamp (for a queue no CreateQueue made, when this server run first had it),
LastModifiedTimestamp, QueueArn.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kestrel.config import QueueConfig
from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.names import is_fifo

# The metadata key under which the SQS API keeps what it keeps of a queue.
METADATA_KEY = "sqs"
DEFAULT_RETENTION = 345_600
LONGEST_RETENTION = 1_209_600
LARGEST_MESSAGE = 262_144
INTEGERS: dict[str, tuple[int, int]] = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, LARGEST_MESSAGE),
    "MessageRetentionPeriod": (60, LONGEST_RETENTION),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43_200),
}
# The SQS-only attributes and their values when never set.
DEFAULTS: dict[str, str] = {
    "VisibilityTimeout": "30",
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "SqsManagedSseEnabled": "false",
}
FIFO_DEFAULTS: dict[str, str] = {
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}
BOOLEANS = frozenset({"ContentBasedDeduplication", "SqsManagedSseEnabled", "FifoQueue"})
POLICIES = frozenset({"Policy", "RedriveAllowPolicy"})
# Attributes that only FIFO queues have.
FIFO_ONLY = frozenset({"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"})
# Values that FIFO attributes SQS has take here only as SQS's queue-wide default.
ONLY_VALUE = {"DeduplicationScope": "queue", "FifoThroughputLimit": "perQueue"}
READ_ONLY = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
    }
)
SETTABLE = frozenset(INTEGERS) | BOOLEANS | POLICIES | FIFO_ONLY | {"RedrivePolicy"}
REDRIVE_COUNTS = (1, 1000)
_INTEGER = re.compile(r"[0-9]{1,10}")


@dataclass
class AttributeChange:
    """
    Attributes as given, checked: `values` as GetQueueAttributes will report them, `settings`
    for `QueueCollection.configure`, `kept` for the queue's SQS metadata (None takes one away).
    """

    values: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    kept: dict[str, str | None] = field(default_factory=dict)


def engine_item_size(max_message_size: int) -> int:
    """
    The max_item_size of a queue whose MaximumMessageSize is `max_message_size`: the largest
    item that a message of that size can make. SQS counts the body and the names, types and
    values of its attributes; the envelope adds its header, in which attributes are JSON
    (which may double a value of quotes) and binary ones base64, and fixed fields below 1 KiB.
    Writers of other protocols may therefore add items up to that size to the queue.
    """
    return 2 * max_message_size + 1024


def parse_attributes(
    given: Mapping[str, str], fifo: bool, dead_letter_target: Callable[[str], str]
) -> AttributeChange:
    """
    Check attributes for queue of type `fifo`; SQS's error for the first bad one.
    `dead_letter_target` gives the engine name of the queue a deadLetterTargetArn names, or
    raises ValueError saying why that cannot be the queue's dead-letter queue.
    """
    change = AttributeChange()
    for name, value in given.items():
        if name == "FifoQueue":
            # The type comes with the name; a standard queue may say it is not FIFO.
            if (_boolean(name, value) == "true") != fifo:
                raise invalid_value(name, "Modifying queue type is not supported.")
            if fifo:
                change.values[name] = "true"
            continue
        if name not in SETTABLE or (name in FIFO_ONLY and not fifo):
            raise unknown_attribute(name)
        if name in INTEGERS:
            number = _integer(name, value)
            change.values[name] = str(number)
            if name == "MessageRetentionPeriod":
                change.settings["max_age"] = number
            else:
                change.kept[name] = str(number)
                if name == "MaximumMessageSize":
                    change.settings["max_item_size"] = engine_item_size(number)
        elif name in BOOLEANS:
            change.values[name] = change.kept[name] = _boolean(name, value)
        elif name in ONLY_VALUE:
            if value != ONLY_VALUE[name]:
                raise invalid_value(name, f"Only {ONLY_VALUE[name]} is supported by this server.")
            change.values[name] = value
        elif name in POLICIES:
            change.kept[name] = _policy(name, value)
            if value:
                change.values[name] = value
        else:
            _redrive_policy(value, dead_letter_target, change)
    return change


def _integer(name: str, value: str) -> int:
    low, high = INTEGERS[name]
    if not _INTEGER.fullmatch(value.strip()) or not low <= int(value) <= high:
        raise invalid_value(name)
    return int(value)


def _boolean(name: str, value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise invalid_value(name)
    return value.lower()


def _policy(name: str, value: str) -> str | None:
    """A Policy or RedriveAllowPolicy: a JSON object, or "" for none."""
    if not value:
        return None
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise invalid_value(name)
    if name == "RedriveAllowPolicy" and document.get("redrivePermission") not in ("allowAll", "denyAll", "byQueue"):
        raise invalid_value(name, "redrivePermission must be allowAll, denyAll or byQueue.")
    return value


def _redrive_policy(value: str, dead_letter_target: Callable[[str], str], change: AttributeChange) -> None:
    if not value:
        change.settings.update(max_deliveries=None, dead_letter_queue=None)
        change.values["RedrivePolicy"] = ""
        return
    try:
        policy = json.loads(value)
    except ValueError:
        policy = None
    if not isinstance(policy, dict):
        raise invalid_redrive_policy(value, "Redrive policy is not a valid JSON map.")
    for key in ("deadLetterTargetArn", "maxReceiveCount"):
        if key not in policy:
            raise invalid_redrive_policy(value, f"Redrive policy does not contain mandatory attribute: {key}.")
    count = policy["maxReceiveCount"]
    low, high = REDRIVE_COUNTS
    if isinstance(count, str) and _INTEGER.fullmatch(count):
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or not low <= count <= high:
        raise invalid_redrive_policy(
            value, f"Invalid value for maxReceiveCount: {count}, valid values are from {low} to {high} both inclusive."
        )
    arn = policy["deadLetterTargetArn"]
    if not isinstance(arn, str):
        raise invalid_redrive_policy(value, "Invalid value for deadLetterTargetArn.")
    try:
        target = dead_letter_target(arn)
    except ValueError as error:
        raise invalid_redrive_policy(value, str(error)) from None
    change.settings.update(max_deliveries=count, dead_letter_queue=target)
    change.values["RedrivePolicy"] = redrive_policy(arn, count)


def redrive_policy(arn: str, count: int) -> str:
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count}, separators=(",", ":"))


@dataclass(frozen=True)
class QueueFacts:
    """What a queue's attributes are read from."""

    name: str
    config: QueueConfig
    kept: Mapping[str, str]
    arn: str
    dead_letter_arn: str | None
    created: int
    modified: int
    waiting: int
    not_visible: int
    delayed: int


def current_attributes(facts: QueueFacts) -> dict[str, str]:
    """Every attribute the queue has, as GetQueueAttributes reports it."""
    fifo = is_fifo(facts.name)
    values = dict(DEFAULTS)
    if fifo:
        values.update(FIFO_DEFAULTS, FifoQueue="true")
    values.update({name: value for name, value in facts.kept.items() if name in values or name in POLICIES})
    config = facts.config
    values["MessageRetentionPeriod"] = str(LONGEST_RETENTION if config.max_age is None else max(1, round(config.max_age)))
    values["MaximumMessageSize"] = facts.kept.get("MaximumMessageSize", str(min(config.max_item_size, LARGEST_MESSAGE)))
    if facts.dead_letter_arn is not None and config.max_deliveries is not None:
        values["RedrivePolicy"] = redrive_policy(facts.dead_letter_arn, config.max_deliveries)
    values.update(
        ApproximateNumberOfMessages=str(facts.waiting),
        ApproximateNumberOfMessagesNotVisible=str(facts.not_visible),
        ApproximateNumberOfMessagesDelayed=str(facts.delayed),
        CreatedTimestamp=str(facts.created),
        LastModifiedTimestamp=str(facts.modified),
        QueueArn=facts.arn,
    )
    return values


def chosen(current: Mapping[str, str], names: list[str], fifo: bool) -> dict[str, str]:
    """The attributes GetQueueAttributes asked for (`All` for every one) that the queue has."""
    if "All" in names:
        return dict(current)
    for name in names:
        if name not in SETTABLE | READ_ONLY or (name in FIFO_ONLY and not fifo):
            raise unknown_attribute(name)
    return {name: current[name] for name in names if name in current}


def differences(change: AttributeChange, current: Mapping[str, str]) -> list[str]:
    """The attributes given to CreateQueue for an existing queue that differ from its own."""
    return sorted(name for name, value in change.values.items() if current.get(name, "") != value)


def unknown_attribute(name: str) -> SqsError:
    return sqs_error("InvalidAttributeName", f"Unknown Attribute {name}.")


def invalid_value(name: str, reason: str | None = None) -> SqsError:
    message = f"Invalid value for the parameter {name}."
    return sqs_error("InvalidAttributeValue", f"{message} Reason: {reason}" if reason else message)


def invalid_redrive_policy(value: str, reason: str) -> SqsError:
    return sqs_error("InvalidParameterValue", f"Value {value} for parameter RedrivePolicy is invalid. Reason: {reason}")


def metadata_of(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What the SQS API keeps in a queue's metadata: {"attributes": {...}, "tags": {...}, "created": s, "modified": s}."""
    kept = metadata.get(METADATA_KEY)
    return dict(kept) if isinstance(kept, dict) else {}
