"""
Hostile input on a real server's SQS listener: signed requests whose bodies are bad JSON, bad
forms, huge batches, unicode edge cases or too large, and raw garbage over a socket. Each is
answered with SQS's error in the request's wire (or, for bytes that are not HTTP, a bare
400), never a 5xx; no failure is logged; the server answers as before afterwards.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.load.process import KestrelProcess, write_config
from kestrel.sqs.site import MAX_BODY
from kestrel.test.acceptance.sqs import APPS, KEY, SECRET, SQS_LISTEN, boto3_client, endpoint

ACTIONS = [
    "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "CreateQueue",
    "SetQueueAttributes", "GetQueueAttributes", "ChangeMessageVisibilityBatch", "ListQueues", "TagQueue", "Nope", "",
]
MEMBERS = [
    "QueueUrl", "QueueName", "MessageBody", "Entries", "Id", "ReceiptHandle", "Attributes", "MessageAttributes",
    "DataType", "StringValue", "BinaryValue", "DelaySeconds", "MaxNumberOfMessages", "WaitTimeSeconds",
    "VisibilityTimeout", "AttributeNames", "Tags", "MessageGroupId", "MessageDeduplicationId",
]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ufffe", "\uffff", "\U0010ffff", "\u2028", "\x7f", "\r\n", "é" * 300]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(MEMBERS) | HOSTILE_TEXT, children, max_size=4),
    max_leaves=20,
)
AUTHENTICATION_CODES = {"SignatureDoesNotMatch", "IncompleteSignature", "InvalidClientTokenId", "MissingAuthenticationToken"}
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
# A request the server waits on (an unfinished header or body) gets no answer within this.
QUIET = 0.3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for every example: each must leave it as able to answer as it found it."""
    directory = tmp_path_factory.mktemp("sqs-hostile")
    process = KestrelProcess(directory, write_config(directory, SQS_LISTEN, APPS)).start()
    yield process
    process.kill()
    assert "Traceback" not in process.log(), process.log()


@pytest.fixture(scope="module")
def queue_url(server) -> str:
    return boto3_client(endpoint(server)).create_queue(QueueName="jobs")["QueueUrl"]


@pytest.fixture(autouse=True)
def server_answers_afterwards(server, queue_url):
    yield
    assert boto3_client(endpoint(server)).get_queue_url(QueueName="jobs")["QueueUrl"] == queue_url


def signed_post(server: KestrelProcess, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """``body`` posted to / with ``headers``, signed by the app that may do anything."""
    request = AWSRequest("POST", f"{endpoint(server)}/", data=body, headers=headers)
    SigV4Auth(Credentials(KEY, SECRET), "sqs", "us-east-1").add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", server.sqs_port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_sqs_answer(status: int, headers: dict[str, str], body: bytes, wire: str) -> None:
    """
    A success, or SQS's error in ``wire`` with a request id: never the server's fault, and never
    its signature's (the request got past authentication to the part under test).
    """
    assert status < 500, (status, body)
    assert headers["x-amzn-requestid"]
    if status < 300:
        return
    if wire == "json":
        assert headers["content-type"] == "application/x-amz-json-1.0"
        code = headers["x-amzn-query-error"].split(";")[0]
        assert json.loads(body)["__type"]
    else:
        assert headers["content-type"] == "text/xml"
        match = re.search(rb"<ErrorResponse .*<Code>([^<]+)</Code>", body)
        assert match, body
        code = match[1].decode()
    assert code not in AUTHENTICATION_CODES, body


def json_call(action: str) -> dict[str, str]:
    return {"X-Amz-Target": f"AmazonSQS.{action}", "Content-Type": "application/x-amz-json-1.0"}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(ACTIONS),
    body=st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.fixed_dictionaries({"QueueUrl": st.just("QUEUE"), "MessageBody": HOSTILE_TEXT}).map(lambda value: json.dumps(value).encode()),
        st.integers(1, 50_000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 5000).map(lambda digits: b'{"DelaySeconds": ' + b"9" * digits + b"}"),
    ),
)
def test_bad_json_gets_sqs_errors(server, queue_url, action, body):
    body = body.replace(b"QUEUE", queue_url.encode())
    assert_sqs_answer(*signed_post(server, body, json_call(action)), "json")


FORM_NAMES = st.one_of(
    st.sampled_from(["Action", "QueueUrl", "MessageBody", "QueueName", "Version", "DelaySeconds"]),
    st.builds(
        lambda prefix, index, member: f"{prefix}.{index}.{member}",
        st.sampled_from(["SendMessageBatchRequestEntry", "Attribute", "MessageAttribute", "AttributeName", "Tag"]),
        st.sampled_from(["1", "0", "-1", "999999999", "99999999999999999999", "a", ""]),
        st.sampled_from(["Id", "MessageBody", "Name", "Value", "Value.DataType", "Value.StringValue", "Value.BinaryValue", "Key"]),
    ),
    HOSTILE_TEXT,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(ACTIONS),
    pairs=st.lists(st.tuples(FORM_NAMES, HOSTILE_TEXT), max_size=8),
    raw_tail=st.sampled_from([b"", b"&%ff=%fe", b"&&&==", b"&Action", b"%", b"&MessageBody=%zz"]),
)
def test_bad_forms_get_sqs_errors(server, queue_url, action, pairs, raw_tail):
    form = [("Action", action), ("QueueUrl", queue_url), *pairs]
    body = "&".join(f"{quote(name.encode('utf-8', 'surrogatepass'))}={quote(value.encode('utf-8', 'surrogatepass'))}" for name, value in form)
    assert_sqs_answer(*signed_post(server, body.encode() + raw_tail, FORM), "query")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.integers(11, 3000), wire=st.sampled_from(["json", "query"]))
def test_huge_batches_get_sqs_errors(server, queue_url, entries, wire):
    if wire == "json":
        batch = [{"Id": str(index), "MessageBody": "x"} for index in range(entries)]
        body = json.dumps({"QueueUrl": queue_url, "Entries": batch}).encode()
        answer = signed_post(server, body, json_call("SendMessageBatch"))
    else:
        form = [f"SendMessageBatchRequestEntry.{index}.Id={index}&SendMessageBatchRequestEntry.{index}.MessageBody=x" for index in range(1, entries + 1)]
        body = f"Action=SendMessageBatch&QueueUrl={quote(queue_url)}&" + "&".join(form)
        answer = signed_post(server, body.encode(), FORM)
    assert_sqs_answer(*answer, wire)
    assert answer[0] == 400 and b"TooManyEntriesInBatchRequest" in answer[2]


@pytest.mark.parametrize("wire", ["json", "query"])
def test_a_body_past_the_bound_gets_an_sqs_error(server, wire):
    headers = json_call("SendMessage") if wire == "json" else FORM
    answer = signed_post(server, b"x" * (MAX_BODY + 1), headers)
    assert_sqs_answer(*answer, wire)
    assert b"larger than this API takes" in answer[2]


def raw_exchange(server: KestrelProcess, data: bytes) -> bytes:
    """``data`` over a fresh connection; what came back before the server closed or went quiet."""
    with socket.create_connection(("127.0.0.1", server.sqs_port), timeout=QUIET) as connection:
        connection.sendall(data)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda method, target, tail: method + b" " + target + b" HTTP/1.1\r\n" + tail,
              st.sampled_from([b"POST", b"GET", b"PUT", b"OPTIONS", b"BREW", b"\xff"]),
              st.sampled_from([b"/", b"/000000000000/jobs", b"/a/b/c", b"*", b"/\xff", b"/%00"]),
              st.binary(max_size=100)),
))
def test_raw_garbage_gets_a_400_or_an_sqs_error(server, garbage):
    output = raw_exchange(server, garbage + b"\r\n\r\n")
    while output:
        match = STATUS_LINE.match(output)
        assert match, output
        head, _, rest = output.partition(b"\r\n\r\n")
        status = int(match[1])
        assert status < 500, output
        length = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        if status != 400 or length is not None:
            assert re.search(rb"(?i)\r\nx-amzn-requestid: ", head), head
        output = rest[int(length[1]) if length else 0:]
