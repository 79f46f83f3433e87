"""
SQS's rules on a call's parameters, whichever wire brought them: required members, the ranges
of its integers, its batches and its message attributes (Amazon SQS API Reference: each
action's parameters and errors; Amazon SQS Developer Guide: "Amazon SQS message quotas").
The messages are the live service's where it is known what it says.
"""

from __future__ import annotations

import re
from typing import Any

from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.shapes import ATTRIBUTE_VALUE, INTEGER, ListOf, MapOf, Structure

# Every integer parameter SQS takes, by member name, wherever it appears (a batch entry's
# DelaySeconds or VisibilityTimeout too): (lowest, highest, the reason SQS gives).
RANGES: dict[str, tuple[int, int, str]] = {
    "MaxNumberOfMessages": (1, 10, "Must be between 1 and 10, if provided."),
    "WaitTimeSeconds": (0, 20, "Must be >= 0 and <= 20, if provided."),
    "VisibilityTimeout": (0, 43_200, "Must be >= 0 and <= 43200, if provided."),
    "DelaySeconds": (0, 900, "Must be >= 0 and <= 900, if provided."),
    "MaxResults": (1, 1000, "Must be between 1 and 1000, if provided."),
}
MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_ATTRIBUTES = 10
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
# What a message attribute's DataType starts with (`Number.float` is a Number), and the value
# member each kind carries.
ATTRIBUTE_VALUE_MEMBERS = {"String": "StringValue", "Number": "StringValue", "Binary": "BinaryValue"}
ATTRIBUTE_LABELS = {
    "MessageAttributes": "Message (user) attribute",
    "MessageSystemAttributes": "Message system attribute",
}


def invalid_integer(name: str, text: str) -> SqsError:
    """SQS's answer to an integer parameter out of its range, or no integer at all."""
    return sqs_error(
        "InvalidParameterValue", f"Value {text} for parameter {name} is invalid. Reason: {RANGES[name][2]}"
    )


def check_call(shape: Structure, params: dict[str, Any], queue_url_path: str | None) -> None:
    """
    Raise SQS's error for the first rule ``params`` break. A queue URL path (the request was
    posted to the queue's URL) stands for a missing `QueueUrl`.
    """
    given = set(params)
    if queue_url_path is not None:
        given.add("QueueUrl")
    _check_structure(shape, params, given, "")


def _check_structure(shape: Structure, value: dict[str, Any], given: set[str], prefix: str) -> None:
    for name in shape.members:
        if name in shape.required and name not in given:
            raise sqs_error("MissingParameter", f"The request must contain the parameter {prefix}{name}.")
    for name, item in value.items():
        member = shape.members[name]
        if member.shape is INTEGER and name in RANGES:
            low, high, _ = RANGES[name]
            if not low <= item <= high:
                raise invalid_integer(name, str(item))
        elif isinstance(member.shape, ListOf) and isinstance(member.shape.member, Structure):
            _check_batch(member.query_name, member.shape.member, item, prefix)
        elif isinstance(member.shape, MapOf) and member.shape.value is ATTRIBUTE_VALUE:
            _check_attributes(ATTRIBUTE_LABELS[name], member.query_name, item, prefix)


def _check_batch(query_name: str, entry: Structure, entries: list[dict[str, Any]], prefix: str) -> None:
    if not entries:
        raise sqs_error(
            "AWS.SimpleQueueService.EmptyBatchRequest",
            f"There should be at least one {query_name} in the request.",
        )
    if len(entries) > MAX_BATCH_ENTRIES:
        raise sqs_error(
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}. You have sent {len(entries)}.",
        )
    ids: set[str] = set()
    for index, value in enumerate(entries, 1):
        _check_structure(entry, value, set(value), f"{prefix}{query_name}.{index}.")
        entry_id = value["Id"]
        if not BATCH_ENTRY_ID.fullmatch(entry_id):
            raise sqs_error(
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                "It can be at most 80 letters long.",
            )
        if entry_id in ids:
            raise sqs_error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        ids.add(entry_id)


def _check_attributes(
    label: str, query_name: str, attributes: dict[str, dict[str, Any]], prefix: str
) -> None:
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise sqs_error(
            "InvalidParameterValue",
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
        )
    for index, (name, value) in enumerate(attributes.items(), 1):
        _check_structure(ATTRIBUTE_VALUE, value, set(value), f"{prefix}{query_name}.{index}.Value.")
        kind = value["DataType"].split(".", 1)[0]
        if kind not in ATTRIBUTE_VALUE_MEMBERS:
            raise sqs_error(
                "InvalidParameterValue",
                f"The type of {label.lower()} '{name}' is invalid. You must use only the following "
                "supported type prefixes: Binary, Number, String.",
            )
        if not value.get(ATTRIBUTE_VALUE_MEMBERS[kind]):
            raise sqs_error(
                "InvalidParameterValue",
                f"{label} '{name}' must contain a non-empty value of type '{kind}'.",
            )
