"""
The shapes of the SQS actions we serve: what each takes and returns, member by member, with
the names both wire formats give them (the Amazon SQS API Reference, and the query-era and
JSON-era service models of botocore, `botocore/data/sqs/2012-11-05/service-2.json`).

Member names are the JSON protocol's, and every layer above the wire formats uses them. The
query protocol flattens lists and maps under a name of their own (`AttributeName.1`,
`Attribute.1.Name`, `SendMessageBatchRequestEntry.1.Id`): a member's `query_name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union


@dataclass(frozen=True)
class Scalar:
    """A string, an integer, a boolean, or a blob (bytes, base64 on both wires)."""

    type: Literal["string", "integer", "boolean", "blob"]


@dataclass(frozen=True)
class ListOf:
    member: Shape


@dataclass(frozen=True)
class MapOf:
    """A map with string keys; the query protocol sends each pair as `<key_name>` and `Value`."""

    value: Shape
    key_name: str = "Name"


@dataclass(frozen=True)
class Member:
    shape: Shape
    query_name: str


@dataclass(frozen=True)
class Structure:
    members: dict[str, Member]
    required: frozenset[str] = field(default_factory=frozenset)


Shape = Union[Scalar, ListOf, MapOf, Structure]


def structure(*required: str, **members: Shape | tuple[str, Shape]) -> Structure:
    """A structure of ``members``, each a shape or (its query name, shape) when the two differ."""
    built = {
        name: Member(shape[1], query_name=shape[0]) if isinstance(shape, tuple) else Member(shape, name)
        for name, shape in members.items()
    }
    return Structure(built, frozenset(required))


STRING = Scalar("string")
INTEGER = Scalar("integer")
BOOLEAN = Scalar("boolean")
BLOB = Scalar("blob")
STRINGS = ListOf(STRING)
STRING_MAP = MapOf(STRING)
TAGS = MapOf(STRING, key_name="Key")

# A message attribute (MessageAttributeValue). Its list values are "reserved for future use"
# by SQS, which rejects them; they are not read.
ATTRIBUTE_VALUE = structure("DataType", StringValue=STRING, BinaryValue=BLOB, DataType=STRING)
MESSAGE_ATTRIBUTES = MapOf(ATTRIBUTE_VALUE)

_SEND_MEMBERS: dict[str, Shape | tuple[str, Shape]] = dict(
    MessageBody=STRING,
    DelaySeconds=INTEGER,
    MessageAttributes=("MessageAttribute", MESSAGE_ATTRIBUTES),
    MessageSystemAttributes=("MessageSystemAttribute", MESSAGE_ATTRIBUTES),
    MessageDeduplicationId=STRING,
    MessageGroupId=STRING,
)
_SENT_MEMBERS: dict[str, Shape | tuple[str, Shape]] = dict(
    MessageId=STRING,
    MD5OfMessageBody=STRING,
    MD5OfMessageAttributes=STRING,
    MD5OfMessageSystemAttributes=STRING,
    SequenceNumber=STRING,
)
_BATCH_ERROR = structure(Id=STRING, SenderFault=BOOLEAN, Code=STRING, Message=STRING)
_ID_ONLY = structure(Id=STRING)


def _batch_result(entry_query_name: str, entry: Structure) -> Structure:
    return structure(
        Successful=(entry_query_name, ListOf(entry)),
        Failed=("BatchResultErrorEntry", ListOf(_BATCH_ERROR)),
    )


MESSAGE = structure(
    MessageId=STRING,
    ReceiptHandle=STRING,
    MD5OfBody=STRING,
    Body=STRING,
    Attributes=("Attribute", STRING_MAP),
    MD5OfMessageAttributes=STRING,
    MessageAttributes=("MessageAttribute", MESSAGE_ATTRIBUTES),
)


@dataclass(frozen=True)
class Action:
    input: Structure
    output: Structure | None = None

    @property
    def names_a_queue(self) -> bool:
        """Whether the action works on one queue (takes a `QueueUrl`)."""
        return "QueueUrl" in self.input.members


_QUEUE_URL = dict(QueueUrl=STRING)
_QUEUE_URL_RESULT = structure(QueueUrl=STRING)

ACTIONS: dict[str, Action] = {
    "CreateQueue": Action(
        structure(
            "QueueName",
            QueueName=STRING,
            Attributes=("Attribute", STRING_MAP),
            tags=("Tag", TAGS),
        ),
        _QUEUE_URL_RESULT,
    ),
    "GetQueueUrl": Action(
        structure("QueueName", QueueName=STRING, QueueOwnerAWSAccountId=STRING),
        _QUEUE_URL_RESULT,
    ),
    "ListQueues": Action(
        structure(QueueNamePrefix=STRING, NextToken=STRING, MaxResults=INTEGER),
        structure(QueueUrls=("QueueUrl", STRINGS), NextToken=STRING),
    ),
    "DeleteQueue": Action(structure("QueueUrl", **_QUEUE_URL)),
    "PurgeQueue": Action(structure("QueueUrl", **_QUEUE_URL)),
    "GetQueueAttributes": Action(
        structure("QueueUrl", **_QUEUE_URL, AttributeNames=("AttributeName", STRINGS)),
        structure(Attributes=("Attribute", STRING_MAP)),
    ),
    "SetQueueAttributes": Action(
        structure("QueueUrl", "Attributes", **_QUEUE_URL, Attributes=("Attribute", STRING_MAP)),
    ),
    "TagQueue": Action(structure("QueueUrl", "Tags", **_QUEUE_URL, Tags=("Tag", TAGS))),
    "UntagQueue": Action(structure("QueueUrl", "TagKeys", **_QUEUE_URL, TagKeys=("TagKey", STRINGS))),
    "ListQueueTags": Action(structure("QueueUrl", **_QUEUE_URL), structure(Tags=("Tag", TAGS))),
    "ListDeadLetterSourceQueues": Action(
        structure("QueueUrl", **_QUEUE_URL, NextToken=STRING, MaxResults=INTEGER),
        structure(queueUrls=("QueueUrl", STRINGS), NextToken=STRING),
    ),
    "SendMessage": Action(
        structure("QueueUrl", "MessageBody", **_QUEUE_URL, **_SEND_MEMBERS),
        structure(**_SENT_MEMBERS),
    ),
    "SendMessageBatch": Action(
        structure(
            "QueueUrl",
            "Entries",
            **_QUEUE_URL,
            Entries=(
                "SendMessageBatchRequestEntry",
                ListOf(structure("Id", "MessageBody", Id=STRING, **_SEND_MEMBERS)),
            ),
        ),
        _batch_result("SendMessageBatchResultEntry", structure(Id=STRING, **_SENT_MEMBERS)),
    ),
    "ReceiveMessage": Action(
        structure(
            "QueueUrl",
            **_QUEUE_URL,
            AttributeNames=("AttributeName", STRINGS),
            MessageSystemAttributeNames=("MessageSystemAttributeName", STRINGS),
            MessageAttributeNames=("MessageAttributeName", STRINGS),
            MaxNumberOfMessages=INTEGER,
            VisibilityTimeout=INTEGER,
            WaitTimeSeconds=INTEGER,
            ReceiveRequestAttemptId=STRING,
        ),
        structure(Messages=("Message", ListOf(MESSAGE))),
    ),
    "DeleteMessage": Action(structure("QueueUrl", "ReceiptHandle", **_QUEUE_URL, ReceiptHandle=STRING)),
    "DeleteMessageBatch": Action(
        structure(
            "QueueUrl",
            "Entries",
            **_QUEUE_URL,
            Entries=(
                "DeleteMessageBatchRequestEntry",
                ListOf(structure("Id", "ReceiptHandle", Id=STRING, ReceiptHandle=STRING)),
            ),
        ),
        _batch_result("DeleteMessageBatchResultEntry", _ID_ONLY),
    ),
    "ChangeMessageVisibility": Action(
        structure(
            "QueueUrl",
            "ReceiptHandle",
            "VisibilityTimeout",
            **_QUEUE_URL,
            ReceiptHandle=STRING,
            VisibilityTimeout=INTEGER,
        ),
    ),
    "ChangeMessageVisibilityBatch": Action(
        structure(
            "QueueUrl",
            "Entries",
            **_QUEUE_URL,
            Entries=(
                "ChangeMessageVisibilityBatchRequestEntry",
                ListOf(
                    structure(
                        "Id",
                        "ReceiptHandle",
                        Id=STRING,
                        ReceiptHandle=STRING,
                        VisibilityTimeout=INTEGER,
                    )
                ),
            ),
        ),
        _batch_result("ChangeMessageVisibilityBatchResultEntry", _ID_ONLY),
    ),
}

# SQS actions we do not serve: asked for, they get SQS's UnsupportedOperation, not InvalidAction.
UNSUPPORTED_ACTIONS = frozenset(
    {
        "AddPermission",
        "RemovePermission",
        "StartMessageMoveTask",
        "CancelMessageMoveTask",
        "ListMessageMoveTasks",
    }
)
