"""
kestrel.sqs.wire: every action as botocore sends it over the JSON and the query protocol
decodes to one call; every result and error we encode parses, with botocore, back to what was
meant, and boto3 reports the same error code over both wires. Hostile bytes, JSON and forms
get SqsError and nothing else.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.sqs.errors import CATALOG, SqsError, sqs_error
from kestrel.sqs.rules import RANGES
from kestrel.sqs.shapes import ACTIONS, INTEGER, Action, ListOf, Structure
from kestrel.sqs.wire import SqsCall, decode_request, encode_error, encode_result
from kestrel.test.sqs_botocore import QUEUE_URL, REQUEST_ID, WireServer, sqs_client

WIRES = ("json", "query")
JSON_HEADERS = {"content-type": "application/x-amz-json-1.0"}
FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
# Text that XML and form encoding must both carry: markup, quotes, a CR LF, non-ASCII, an astral character.
AWKWARD = "a <b> & \"c\" 'd'\r\ne ünïcödé 😀 %41+"
ATTRIBUTES = {
    "text": {"DataType": "String", "StringValue": AWKWARD},
    "count": {"DataType": "Number.int", "StringValue": "42"},
    "raw": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
}
TRACE = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}}
FAILED = {
    "Id": "b",
    "SenderFault": True,
    "Code": "ReceiptHandleIsInvalid",
    "Message": "The input receipt handle is invalid.",
}

# Each action: the parameters a client sends (every member the query-era model has) and a result.
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "CreateQueue": (
        {
            "QueueName": "jobs",
            "Attributes": {"VisibilityTimeout": "30", "DelaySeconds": "5"},
            "tags": {"team": AWKWARD},
        },
        {"QueueUrl": QUEUE_URL},
    ),
    "GetQueueUrl": ({"QueueName": "jobs", "QueueOwnerAWSAccountId": "000000000000"}, {"QueueUrl": QUEUE_URL}),
    "ListQueues": (
        {"QueueNamePrefix": "jo", "NextToken": "token-1", "MaxResults": 1000},
        {"QueueUrls": [QUEUE_URL, QUEUE_URL + "2"], "NextToken": "token-2"},
    ),
    "DeleteQueue": ({"QueueUrl": QUEUE_URL}, {}),
    "PurgeQueue": ({"QueueUrl": QUEUE_URL}, {}),
    "GetQueueAttributes": (
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["All", "QueueArn"]},
        {"Attributes": {"VisibilityTimeout": "30", "Policy": AWKWARD}},
    ),
    "SetQueueAttributes": (
        {"QueueUrl": QUEUE_URL, "Attributes": {"RedrivePolicy": AWKWARD, "DelaySeconds": "0"}},
        {},
    ),
    "TagQueue": ({"QueueUrl": QUEUE_URL, "Tags": {"team": "billing", AWKWARD: AWKWARD}}, {}),
    "UntagQueue": ({"QueueUrl": QUEUE_URL, "TagKeys": ["team", AWKWARD]}, {}),
    "ListQueueTags": ({"QueueUrl": QUEUE_URL}, {"Tags": {"team": "billing", AWKWARD: AWKWARD}}),
    "ListDeadLetterSourceQueues": (
        {"QueueUrl": QUEUE_URL, "NextToken": "token-1", "MaxResults": 1},
        {"queueUrls": [QUEUE_URL + "-source"], "NextToken": "token-2"},
    ),
    "SendMessage": (
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": AWKWARD,
            "DelaySeconds": 900,
            "MessageAttributes": ATTRIBUTES,
            "MessageSystemAttributes": TRACE,
            "MessageDeduplicationId": "dedup-1",
            "MessageGroupId": "group-1",
        },
        {
            "MD5OfMessageBody": "a" * 32,
            "MD5OfMessageAttributes": "b" * 32,
            "MD5OfMessageSystemAttributes": "c" * 32,
            "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
            "SequenceNumber": "18849496460467696128",
        },
    ),
    "SendMessageBatch": (
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [
                {
                    "Id": "a",
                    "MessageBody": AWKWARD,
                    "DelaySeconds": 0,
                    "MessageAttributes": ATTRIBUTES,
                    "MessageSystemAttributes": TRACE,
                    "MessageDeduplicationId": "dedup-1",
                    "MessageGroupId": "group-1",
                },
                {"Id": "b", "MessageBody": "second"},
            ],
        },
        {
            "Successful": [
                {
                    "Id": "a",
                    "MessageId": "m-1",
                    "MD5OfMessageBody": "a" * 32,
                    "MD5OfMessageAttributes": "b" * 32,
                    "MD5OfMessageSystemAttributes": "c" * 32,
                    "SequenceNumber": "1",
                }
            ],
            "Failed": [FAILED],
        },
    ),
    "ReceiveMessage": (
        {
            "QueueUrl": QUEUE_URL,
            "AttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
            "MessageAttributeNames": ["All"],
            "MaxNumberOfMessages": 10,
            "VisibilityTimeout": 43_200,
            "WaitTimeSeconds": 20,
            "ReceiveRequestAttemptId": "attempt-1",
        },
        {
            "Messages": [
                {
                    "MessageId": "m-1",
                    "ReceiptHandle": "handle+/=1",
                    "MD5OfBody": "a" * 32,
                    "Body": AWKWARD,
                    "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
                    "MD5OfMessageAttributes": "b" * 32,
                    "MessageAttributes": ATTRIBUTES,
                },
                {"MessageId": "m-2", "ReceiptHandle": "handle-2", "MD5OfBody": "c" * 32, "Body": ""},
            ]
        },
    ),
    "DeleteMessage": ({"QueueUrl": QUEUE_URL, "ReceiptHandle": "handle+/=1"}, {}),
    "DeleteMessageBatch": (
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [{"Id": "a", "ReceiptHandle": "h-1"}, {"Id": "b", "ReceiptHandle": "h-2"}],
        },
        {"Successful": [{"Id": "a"}], "Failed": [FAILED]},
    ),
    "ChangeMessageVisibility": ({"QueueUrl": QUEUE_URL, "ReceiptHandle": "h-1", "VisibilityTimeout": 0}, {}),
    "ChangeMessageVisibilityBatch": (
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [
                {"Id": "a", "ReceiptHandle": "h-1", "VisibilityTimeout": 60},
                {"Id": "b", "ReceiptHandle": "h-2"},
            ],
        },
        {"Successful": [{"Id": "a"}], "Failed": [FAILED]},
    ),
}


@pytest.fixture(scope="module")
def servers() -> dict[str, WireServer]:
    return {wire: WireServer() for wire in WIRES}


@pytest.fixture(scope="module")
def clients(servers) -> dict[str, Any]:
    return {wire: sqs_client(wire, servers[wire]) for wire in WIRES}


@pytest.fixture(scope="module")
def unchecked_clients(servers) -> dict[str, Any]:
    """Clients that send what botocore's own validation would refuse, for the server to refuse."""
    return {wire: sqs_client(wire, servers[wire], validate=False) for wire in WIRES}


def snake(action: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in action).lstrip("_")


def call(client: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    reply = getattr(client, snake(action))(**params)
    reply.pop("ResponseMetadata")
    return reply


def refusal(client: Any, action: str, params: dict[str, Any]) -> ClientError:
    with pytest.raises(ClientError) as refused:
        getattr(client, snake(action))(**params)
    return refused.value


def test_the_examples_cover_every_action():
    assert set(EXAMPLES) == set(ACTIONS)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_every_action_decodes_to_the_json_shaped_call_and_its_result_parses_back(
    clients, servers, wire, action
):
    params, result = EXAMPLES[action]
    servers[wire].result = result
    assert call(clients[wire], action, params) == result
    decoded = servers[wire].calls[-1]
    assert (decoded.action, decoded.params, decoded.wire, decoded.queue_url_path) == (
        action,
        params,
        wire,
        None,
    )


@pytest.mark.parametrize("wire", WIRES)
def test_empty_lists_arrive_as_empty_lists(clients, servers, wire):
    servers[wire].result = {}
    call(clients[wire], "GetQueueAttributes", {"QueueUrl": QUEUE_URL, "AttributeNames": []})
    assert servers[wire].calls[-1].params == {"QueueUrl": QUEUE_URL, "AttributeNames": []}


def test_a_json_empty_map_is_no_map_as_the_query_protocol_cannot_send_one():
    body = json.dumps({"QueueName": "jobs", "Attributes": {}, "tags": {}}).encode()
    call = decode_request("POST", "/", b"", {**JSON_HEADERS, "x-amz-target": "AmazonSQS.CreateQueue"}, body)
    assert call.params == {"QueueName": "jobs"}


def test_the_json_wire_reads_message_system_attribute_names(clients, servers):
    servers["json"].result = {}
    params = {"QueueUrl": QUEUE_URL, "MessageSystemAttributeNames": ["All", "SentTimestamp"]}
    call(clients["json"], "ReceiveMessage", params)
    assert servers["json"].calls[-1].params == params


def query(
    form: dict[str, str] | list[tuple[str, str]], path: str = "/", method: str = "POST", headers=None
) -> SqsCall:
    encoded = urlencode(form).encode()
    if method == "GET":
        return decode_request("GET", path, encoded, headers or {}, b"")
    return decode_request(method, path, b"", FORM_HEADERS if headers is None else headers, encoded)


def json_call(action: str, body: bytes, path: str = "/", headers=None) -> SqsCall:
    return decode_request(
        "POST", path, b"", {**JSON_HEADERS, "x-amz-target": f"AmazonSQS.{action}", **(headers or {})}, body
    )


def test_query_reads_message_system_attribute_names_as_sqs_names_them():
    decoded = query(
        {"Action": "ReceiveMessage", "QueueUrl": QUEUE_URL, "MessageSystemAttributeName.1": "All"}
    )
    assert decoded.params["MessageSystemAttributeNames"] == ["All"]


def test_query_lists_and_maps_follow_their_indices_not_their_order():
    decoded = query(
        [
            ("Action", "SetQueueAttributes"),
            ("Attribute.10.Name", "DelaySeconds"),
            ("QueueUrl", QUEUE_URL),
            ("Attribute.2.Value", "30"),
            ("Attribute.10.Value", "5"),
            ("Attribute.2.Name", "VisibilityTimeout"),
        ]
    )
    assert list(decoded.params["Attributes"].items()) == [("VisibilityTimeout", "30"), ("DelaySeconds", "5")]
    decoded = query(
        [("Action", "UntagQueue"), ("QueueUrl", "q"), ("TagKey.3", "c"), ("TagKey.1", "a"), ("TagKey.2", "b")]
    )
    assert decoded.params["TagKeys"] == ["a", "b", "c"]


def test_a_query_get_reads_its_query_string_and_not_its_body():
    decoded = query({"Action": "SendMessage", "QueueUrl": QUEUE_URL, "MessageBody": AWKWARD}, method="GET")
    assert decoded.params == {"QueueUrl": QUEUE_URL, "MessageBody": AWKWARD}
    decoded = decode_request(
        "GET", "/", b"Action=PurgeQueue&QueueUrl=q", FORM_HEADERS, b"MessageBody=x&Action=SendMessage"
    )
    assert (decoded.action, decoded.params) == ("PurgeQueue", {"QueueUrl": "q"})


def test_a_query_post_with_no_content_type_is_a_form_and_one_with_another_is_not():
    form = {"Action": "PurgeQueue", "QueueUrl": QUEUE_URL}
    assert query(form, headers={}).params == {"QueueUrl": QUEUE_URL}
    with pytest.raises(SqsError) as refused:
        query(form, headers={"content-type": "text/plain"})
    assert refused.value.code == "MissingAction"


def test_query_ignores_parameters_outside_the_shape():
    decoded = query(
        {
            "Action": "PurgeQueue",
            "Version": "2012-11-05",
            "QueueUrl": QUEUE_URL,
            "X-Amz-Date": "20240101T000000Z",
            "Bogus.1": "x",
        }
    )
    assert decoded.params == {"QueueUrl": QUEUE_URL}


def test_a_call_sent_to_the_queue_url_names_that_queue():
    decoded = query({"Action": "SendMessage", "MessageBody": "hi"}, path="/000000000000/jobs")
    assert decoded.params == {"MessageBody": "hi"}
    assert decoded.queue_url_path == "/000000000000/jobs"
    assert decoded.queue_url("http://127.0.0.1:9324") == QUEUE_URL
    over_json = json_call("DeleteQueue", b"{}", path="/000000000000/jobs")
    assert over_json.queue_url("https://sqs.example") == "https://sqs.example/000000000000/jobs"


def test_a_queue_url_parameter_overrides_the_url_the_call_was_sent_to():
    decoded = query({"Action": "PurgeQueue", "QueueUrl": QUEUE_URL + "2"}, path="/000000000000/jobs")
    assert decoded.queue_url("http://127.0.0.1:9324") == QUEUE_URL + "2"


def test_a_call_sent_to_the_service_names_no_queue_by_its_path():
    decoded = query({"Action": "ListQueues"})
    assert decoded.queue_url_path is None and decoded.queue_url("http://x") is None
    assert json_call("ListQueues", b"{}", path="/000000000000/jobs").queue_url_path is None


@pytest.mark.parametrize("action", ["CreateQueue", "ListQueues"])
def test_sqs_refuses_queue_less_actions_sent_to_a_queue_url(action):
    with pytest.raises(SqsError) as refused:
        query({"Action": action, "QueueName": "other"}, path="/000000000000/jobs")
    assert (refused.value.code, refused.value.message) == (
        "InvalidAction",
        f"The action {action} is not valid for this endpoint.",
    )


def required_members() -> list[tuple[str, str]]:
    return [
        (action, member)
        for action, shape in sorted(ACTIONS.items())
        for member in sorted(shape.input.required)
    ]


@pytest.mark.parametrize("action, member", required_members())
def test_a_missing_required_member_is_missing_parameter_over_both_wires(unchecked_clients, action, member):
    params = {name: value for name, value in EXAMPLES[action][0].items() if name != member}
    for wire in WIRES:
        error = refusal(unchecked_clients[wire], action, params)
        assert error.response["Error"]["Code"] == "MissingParameter"
        assert error.response["Error"]["Message"] == f"The request must contain the parameter {member}."
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def batch_of(action: str, count: int) -> list[dict[str, Any]]:
    entry = EXAMPLES[action][0]["Entries"][1]
    return [{**entry, "Id": f"e{index}"} for index in range(count)]


BATCHES = ["SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"]


def with_entries(action: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"QueueUrl": QUEUE_URL, "Entries": entries}


# Requests SQS refuses whole, with the code and message it answers (and the exception class
# boto3 raises for a modelled error), over both wires.
REFUSED: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    *[
        (action, "empty batch", with_entries(action, []), "AWS.SimpleQueueService.EmptyBatchRequest", None)
        for action in BATCHES
    ],
    *[
        (
            action,
            "11 entries",
            with_entries(action, batch_of(action, 11)),
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            "Maximum number of entries per request are 10. You have sent 11.",
        )
        for action in BATCHES
    ],
    *[
        (
            action,
            "repeated id",
            with_entries(action, batch_of(action, 2)[:1] * 2),
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "Id e0 repeated.",
        )
        for action in BATCHES
    ],
    *[
        (
            action,
            f"id {entry_id!r}",
            with_entries(action, [{**batch_of(action, 1)[0], "Id": entry_id}]),
            "AWS.SimpleQueueService.InvalidBatchEntryId",
            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
            "It can be at most 80 letters long.",
        )
        for action in BATCHES
        for entry_id in ["", "a.b", "x" * 81, "é"]
    ],
    (
        "SendMessageBatch",
        "entry without a body",
        with_entries("SendMessageBatch", [{"Id": "a"}]),
        "MissingParameter",
        "The request must contain the parameter SendMessageBatchRequestEntry.1.MessageBody.",
    ),
    (
        "SendMessage",
        "11 attributes",
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": "x",
            "MessageAttributes": {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)},
        },
        "InvalidParameterValue",
        "Number of message attributes [11] exceeds the allowed maximum [10].",
    ),
    (
        "SendMessage",
        "attribute without a value",
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": "x",
            "MessageAttributes": {"ErrorDetails": {"DataType": "String"}},
        },
        "InvalidParameterValue",
        "Message (user) attribute 'ErrorDetails' must contain a non-empty value of type 'String'.",
    ),
    (
        "SendMessage",
        "binary attribute without bytes",
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": "x",
            "MessageAttributes": {"b": {"DataType": "Binary", "StringValue": "x"}},
        },
        "InvalidParameterValue",
        "Message (user) attribute 'b' must contain a non-empty value of type 'Binary'.",
    ),
    (
        "SendMessage",
        "attribute of no known type",
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": "x",
            "MessageAttributes": {"d": {"DataType": "Date", "StringValue": "x"}},
        },
        "InvalidParameterValue",
        "The type of message (user) attribute 'd' is invalid. You must use only the following supported type "
        "prefixes: Binary, Number, String.",
    ),
    (
        "SendMessage",
        "attribute without a type",
        {"QueueUrl": QUEUE_URL, "MessageBody": "x", "MessageAttributes": {"d": {"StringValue": "x"}}},
        "MissingParameter",
        "The request must contain the parameter MessageAttribute.1.Value.DataType.",
    ),
    (
        "SendMessageBatch",
        "system attribute without a value, in an entry",
        with_entries(
            "SendMessageBatch",
            [
                {
                    "Id": "a",
                    "MessageBody": "x",
                    "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String"}},
                }
            ],
        ),
        "InvalidParameterValue",
        "Message system attribute 'AWSTraceHeader' must contain a non-empty value of type 'String'.",
    ),
]


def request_structures(action: Action) -> list[Structure]:
    """An action's input and, for a batch, its entries."""
    entries = action.input.members.get("Entries")
    return [action.input] + ([entries.shape.member] if entries and isinstance(entries.shape, ListOf) else [])


# The ranges the Amazon SQS API Reference gives each integer parameter, and the reason SQS's
# reply gives (as recorded from the live service for MaxNumberOfMessages and WaitTimeSeconds).
SQS_RANGES = {
    "MaxNumberOfMessages": (1, 10, "Must be between 1 and 10, if provided."),
    "WaitTimeSeconds": (0, 20, "Must be >= 0 and <= 20, if provided."),
    "VisibilityTimeout": (0, 43_200, "Must be >= 0 and <= 43200, if provided."),
    "DelaySeconds": (0, 900, "Must be >= 0 and <= 900, if provided."),
    "MaxResults": (1, 1000, "Must be between 1 and 1000, if provided."),
}


def ranged_members() -> list[tuple[str, str, dict[str, Any], str, str]]:
    """Every integer member of every action (a batch's entries too), just outside its range on each side."""
    cases = []
    for action, shape in sorted(ACTIONS.items()):
        params = EXAMPLES[action][0]
        for member, (low, high, reason) in SQS_RANGES.items():
            for value in (low - 1, high + 1):
                if member in shape.input.members:
                    bad = {**params, member: value}
                elif member in request_structures(shape)[-1].members:
                    bad = {**params, "Entries": [{**params["Entries"][0], member: value}]}
                else:
                    continue
                message = f"Value {value} for parameter {member} is invalid. Reason: {reason}"
                cases.append((action, f"{member} {value}", bad, "InvalidParameterValue", message))
    return cases


@pytest.mark.parametrize("action, case, params, code, message", REFUSED + ranged_members())
def test_sqs_limits_get_sqs_errors_over_both_wires(unchecked_clients, action, case, params, code, message):
    for wire in WIRES:
        error = refusal(unchecked_clients[wire], action, params)
        assert error.response["Error"]["Code"] == code, wire
        if message is not None:
            assert error.response["Error"]["Message"] == message
        assert error.response["Error"]["Type"] == "Sender"


def test_every_integer_member_of_every_action_has_a_range():
    integers = {
        name
        for action in ACTIONS.values()
        for shape in request_structures(action)
        for name, member in shape.members.items()
        if member.shape is INTEGER
    }
    assert integers == set(SQS_RANGES) == set(RANGES)


@pytest.mark.parametrize("code", sorted(CATALOG))
def test_boto3_reports_every_catalogued_error_with_the_same_code_over_both_wires(clients, servers, code):
    kind = CATALOG[code]
    for wire in WIRES:
        servers[wire].error = sqs_error(code, f'{code} & <it> "said" ünï')
        try:
            error = refusal(clients[wire], "PurgeQueue", {"QueueUrl": QUEUE_URL})
        finally:
            servers[wire].error = None
        assert error.response["Error"]["Code"] == code
        assert error.response["Error"]["Message"] == f'{code} & <it> "said" ünï'
        assert error.response["Error"]["Type"] == ("Sender" if kind.sender else "Receiver")
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == kind.status
        assert error.response["ResponseMetadata"]["RequestId"] == REQUEST_ID
        namespace, name = kind.json_type.split("#")
        if wire == "json" and namespace == "com.amazonaws.sqs":
            # An error SQS's model declares: boto3 raises its class, found by the JSON type.
            assert type(error).__name__ == name
        if wire == "query" and (shape := clients[wire].meta.service_model.shape_for_error_code(code)):
            assert type(error).__name__ == shape.name


def test_the_catalog_agrees_with_the_errors_of_sqs_query_era_model(clients):
    """Each error shape of the query-era model: its code, status and JSON type (the shape's name)."""
    model = clients["query"].meta.service_model
    for shape in model.error_shapes:
        kind = CATALOG[shape.error_code]
        assert kind.json_type == f"com.amazonaws.sqs#{shape.name}"
        assert kind.status == shape.metadata.get("error", {}).get("httpStatusCode", 400)
        assert kind.sender == shape.metadata.get("error", {}).get("senderFault", True)


def test_an_error_outside_the_catalog_still_travels_both_wires(clients, servers):
    for wire in WIRES:
        servers[wire].error = SqsError("AWS.SimpleQueueService.Something", "odd", 409, sender=False)
        try:
            error = refusal(clients[wire], "PurgeQueue", {"QueueUrl": QUEUE_URL})
        finally:
            servers[wire].error = None
        assert (error.response["Error"]["Code"], error.response["Error"]["Type"]) == (
            "AWS.SimpleQueueService.Something",
            "Receiver",
        )
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def refused(decode, *args) -> SqsError:
    with pytest.raises(SqsError) as refusal:
        decode(*args)
    return refusal.value


@pytest.mark.parametrize(
    "action, body",
    [
        ("SendMessage", b"{"),
        ("SendMessage", b"[]"),
        ("SendMessage", b"\xff{}"),
        ("SendMessage", b"[" * 100_000),
        ("PurgeQueue", b'{"QueueUrl": 7}'),
        ("ReceiveMessage", b'{"QueueUrl": "q", "WaitTimeSeconds": "5"}'),
        ("ReceiveMessage", b'{"QueueUrl": "q", "WaitTimeSeconds": true}'),
        ("ReceiveMessage", b'{"QueueUrl": "q", "WaitTimeSeconds": 1.5}'),
        ("UntagQueue", b'{"QueueUrl": "q", "TagKeys": "a"}'),
        ("UntagQueue", b'{"QueueUrl": "q", "TagKeys": [null]}'),
        ("PurgeQueue", b'{"QueueUrl": "\\ud800"}'),
        ("TagQueue", b'{"QueueUrl": "q", "Tags": {"\\udfff": "v"}}'),
        (
            "SendMessage",
            b'{"QueueUrl": "q", "MessageBody": "b", "MessageAttributes": {"a": {"BinaryValue": "*"}}}',
        ),
    ],
)
def test_json_bodies_sqs_cannot_read(action, body):
    assert refused(json_call, action, body).code == "SerializationException"


@pytest.mark.parametrize(
    "headers, code",
    [
        (
            {"x-amz-target": "AmazonSQS.PurgeQueue", "content-type": "application/json"},
            "SerializationException",
        ),
        ({**JSON_HEADERS, "x-amz-target": "AmazonSQS.Explode"}, "InvalidAction"),
        ({**JSON_HEADERS, "x-amz-target": "DynamoDB_20120810.PurgeQueue"}, "InvalidAction"),
        (
            {**JSON_HEADERS, "x-amz-target": "AmazonSQS.AddPermission"},
            "AWS.SimpleQueueService.UnsupportedOperation",
        ),
        (JSON_HEADERS, "MissingAction"),
    ],
)
def test_json_requests_for_no_action_sqs_serves(headers, code):
    assert refused(decode_request, "POST", "/", b"", headers, b"{}").code == code


def test_json_nulls_are_absent_members():
    assert json_call("ReceiveMessage", b'{"QueueUrl": "q", "WaitTimeSeconds": null}').params == {
        "QueueUrl": "q"
    }


def test_an_empty_json_body_is_an_empty_object():
    assert json_call("ListQueues", b"").params == {}


@pytest.mark.parametrize(
    "form, code, message",
    [
        (b"QueueUrl=q", "MissingAction", "The request must contain the parameter Action."),
        (b"Action=Explode", "InvalidAction", "The action Explode is not valid for this endpoint."),
        (b"Action=RemovePermission", "AWS.SimpleQueueService.UnsupportedOperation", None),
        (b"Action=PurgeQueue&QueueUrl=a&QueueUrl=b", "MalformedQueryString", None),
        (b"Action=PurgeQueue&QueueUrl=%FF", "MalformedQueryString", None),
        (b"Action=PurgeQueue&QueueUrl=\xff", "MalformedQueryString", None),
        (
            b"Action=ReceiveMessage&QueueUrl=q&MaxNumberOfMessages=five",
            "InvalidParameterValue",
            "Value five for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.",
        ),
        (
            b"Action=ReceiveMessage&QueueUrl=q&WaitTimeSeconds=99999999999999999999",
            "InvalidParameterValue",
            "Value 99999999999999999999 for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.",
        ),
        (b"Action=ReceiveMessage&QueueUrl=q&WaitTimeSeconds=%D9%A5", "InvalidParameterValue", None),
        (
            b"Action=SendMessage&QueueUrl=q&MessageBody=b&MessageAttribute.1.Name=a"
            b"&MessageAttribute.1.Value.DataType=Binary&MessageAttribute.1.Value.BinaryValue=*",
            "InvalidParameterValue",
            None,
        ),
        (
            b"Action=SetQueueAttributes&QueueUrl=q&Attribute.1.Name=DelaySeconds",
            "MissingParameter",
            "The request must contain the parameter Attribute.1.Value.",
        ),
        (
            b"Action=TagQueue&QueueUrl=q&Tag.1.Value=v",
            "MissingParameter",
            "The request must contain the parameter Tag.1.Key.",
        ),
    ],
)
def test_query_requests_sqs_cannot_read(form, code, message):
    error = refused(decode_request, "POST", "/", b"", FORM_HEADERS, form)
    assert error.code == code
    if message is not None:
        assert error.message == message


def test_a_query_parameter_in_both_the_query_string_and_the_body_is_malformed():
    error = refused(
        decode_request, "POST", "/", b"Action=PurgeQueue", FORM_HEADERS, b"Action=PurgeQueue&QueueUrl=q"
    )
    assert error.code == "MalformedQueryString"


def test_query_and_body_parameters_make_one_request():
    assert decode_request("POST", "/", b"Action=PurgeQueue", FORM_HEADERS, b"QueueUrl=q").params == {
        "QueueUrl": "q"
    }


def test_replies_carry_the_request_id_and_their_content_type():
    call = query({"Action": "PurgeQueue", "QueueUrl": QUEUE_URL})
    assert encode_result(call, {}, "r-1")[:2] == (
        200,
        {"Content-Type": "text/xml", "x-amzn-RequestId": "r-1"},
    )
    status, headers, body = encode_error("json", sqs_error("InvalidParameterValue", "no"), "r-2")
    assert (status, headers) == (
        400,
        {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": "r-2",
            "x-amzn-query-error": "InvalidParameterValue;Sender",
        },
    )
    assert json.loads(body) == {
        "__type": "com.amazon.coral.service#InvalidParameterValueException",
        "message": "no",
    }


def test_the_query_error_is_sqs_error_response():
    _, _, body = encode_error("query", sqs_error("AWS.SimpleQueueService.NonExistentQueue", "gone"), "r-3")
    assert body == (
        b'<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><Error>'
        b"<Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>gone</Message><Detail/>"
        b"</Error><RequestId>r-3</RequestId></ErrorResponse>"
    )


def test_xml_results_name_elements_as_sqs_does():
    call = query({"Action": "ReceiveMessage", "QueueUrl": QUEUE_URL})
    message = {
        "MessageId": "m",
        "Body": 'x"\r',
        "Attributes": {"SentTimestamp": "1"},
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "v"}},
    }
    _, _, body = encode_result(call, {"Messages": [message]}, "r")
    assert body == (
        b'<?xml version="1.0"?><ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
        b"<ReceiveMessageResult><Message><MessageId>m</MessageId><Body>x&quot;&#xD;</Body>"
        b"<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>"
        b"<MessageAttribute><Name>a</Name><Value><StringValue>v</StringValue><DataType>String</DataType></Value>"
        b"</MessageAttribute></Message></ReceiveMessageResult>"
        b"<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ReceiveMessageResponse>"
    )


# --- Hostile input: whatever arrives, the decoder answers with a call or an SqsError.

ACTION_NAMES = sorted(ACTIONS) + ["AddPermission", "Nope", ""]
# Names the decoders look for, so that random input reaches past the first check.
QUERY_NAMES = sorted(
    {
        member.query_name
        for action in ACTIONS.values()
        for shape in request_structures(action)
        for member in shape.members.values()
    }
    | {"Name", "Value", "Key", "DataType", "StringValue", "BinaryValue", "1", "2", "0", "11", "x", ""}
)
JSON_NAMES = sorted(
    {name for action in ACTIONS.values() for shape in request_structures(action) for name in shape.members}
    | {"DataType", "StringValue", "BinaryValue"}
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 50_000)
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["String", "Binary", "Number", "AAE=", "a", ""])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=11)
    | st.dictionaries(st.sampled_from(JSON_NAMES) | st.text(), inner, max_size=6),
    max_leaves=40,
)
FORM_KEYS = st.lists(st.sampled_from(QUERY_NAMES), min_size=1, max_size=5).map(".".join)
FORM_VALUES = (
    st.sampled_from(ACTION_NAMES + ["", "1", "11", "-1", "AAE=", "*", "String", "Binary", "Number"])
    | st.text()
)
HOSTILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answers_or_refuses(
    method: str, path: str, query_string: bytes, headers: dict[str, str], body: bytes
) -> None:
    try:
        call = decode_request(method, path, query_string, headers, body)
    except SqsError as error:
        for wire in WIRES:
            encode_error(wire, error, REQUEST_ID)
    else:
        encode_result(call, {}, REQUEST_ID)


@HOSTILE
@given(
    st.sampled_from(["GET", "POST", "PUT"]),
    st.sampled_from(["/", "/000000000000/jobs", "/a/b/c", ""]),
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["content-type", "x-amz-target"]),
        st.sampled_from(
            [
                "application/x-amz-json-1.0",
                "application/x-www-form-urlencoded",
                "text/plain",
                *[f"AmazonSQS.{name}" for name in ACTION_NAMES],
            ]
        )
        | st.text(max_size=20),
    ),
    st.binary(max_size=500),
)
def test_random_bytes_get_a_call_or_an_sqs_error(method, path, query_string, headers, body):
    answers_or_refuses(method, path, query_string, headers, body)


@HOSTILE
@given(
    st.sampled_from(ACTION_NAMES),
    JSON_VALUES | st.dictionaries(st.sampled_from(JSON_NAMES), JSON_VALUES),
    st.booleans(),
)
def test_random_json_gets_a_call_or_an_sqs_error(action, document, on_queue_url):
    headers = {**JSON_HEADERS, "x-amz-target": f"AmazonSQS.{action}"}
    path = "/000000000000/jobs" if on_queue_url else "/"
    answers_or_refuses("POST", path, b"", headers, json.dumps(document).encode())


@HOSTILE
@given(
    st.sampled_from(ACTION_NAMES),
    st.dictionaries(FORM_KEYS.filter(lambda key: key != "Action"), FORM_VALUES, max_size=25),
    st.booleans(),
)
def test_random_forms_get_a_call_or_an_sqs_error(action, pairs, on_queue_url):
    form = urlencode([("Action", action), *pairs.items()]).encode()
    answers_or_refuses("POST", "/000000000000/jobs" if on_queue_url else "/", b"", FORM_HEADERS, form)


@HOSTILE
@given(st.text(), st.text(alphabet=string.printable, max_size=40))
def test_any_error_text_makes_well_formed_replies(message, code):
    error = SqsError(code, message)
    assert json.loads(encode_error("json", error, REQUEST_ID)[2])["message"].encode("utf-16", "surrogatepass")
    root = ElementTree.fromstring(encode_error("query", error, REQUEST_ID)[2])
    assert root.tag.endswith("ErrorResponse")


# What XML 1.0 can carry: no surrogates, no controls but tab, line feed and carriage return.
XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\t\n\r")
)


@HOSTILE
@given(st.lists(st.tuples(XML_TEXT, XML_TEXT), max_size=4))
def test_any_xml_text_comes_back_as_it_was(clients, servers, texts):
    messages = [{"MessageId": "m", "ReceiptHandle": handle, "Body": body} for body, handle in texts]
    servers["query"].result = {"Messages": messages}
    reply = call(clients["query"], "ReceiveMessage", {"QueueUrl": QUEUE_URL})
    assert reply.get("Messages", []) == messages
