"""
The SQS listener's site and resource (kestrel.sqs.site, kestrel.sqs.resource) over raw HTTP
bytes, with botocore as the client where a client is needed, in front of a fake service.

FakeService stands in for kestrel.sqs.service.SqsService: it records each call and answers
with what the test tells it (a result, a Deferred, an exception). It does none of SQS: no
queues, no checks of parameters, and it asks for no grant unless a test does it with the
Authorization it was given.
"""

from __future__ import annotations

import datetime
import io
import hashlib
import uuid
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from kestrel.sqs import site as sqs_site_module
from kestrel.history import NoSuchQueue
from kestrel.sqs.apps import App, Applications
from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.history import HistoryReads
from kestrel.sqs.resource import CORS_ALLOWED_HEADERS, SqsResource
from kestrel.sqs.site import LINGER, MAX_BODY, sqs_site
from kestrel.sqs.wire import SqsCall
from kestrel.test.sqs_botocore import sqs_client
from kestrel.test.test_hostile_admin import HttpConnection, Response, responses

SIGNED_AT = datetime.datetime(2024, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)
KEY = "AKIDEXAMPLE"  # sqs_botocore's client signs with this key and secret
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
APP = App("tests", KEY, SECRET.encode(), read=("jobs",), write=("jobs", "audit"))
HOST = "127.0.0.1:9324"
QUEUE_URL = f"http://{HOST}/000000000000/jobs"
JSON_HEADERS = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class FakeService:
    def __init__(self) -> None:
        self.calls: list[tuple[SqsCall, str, Any]] = []
        self.answer: Any = {}
        self.cancelled = 0

    def handle(self, call: SqsCall, base_url: str, authorize: Any) -> Any:
        self.calls.append((call, base_url, authorize))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def long_poll(self) -> Deferred:
        """A Deferred for the next call to return, which counts its cancellations."""

        def cancelled(_: Deferred) -> None:
            self.cancelled += 1

        self.answer = Deferred(cancelled)
        return self.answer


@pytest.fixture(autouse=True)
def botocore_signs_at_a_fixed_time(monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))


class NoQueues:
    """A collection without queues, for the history route: every read fails at once, as the real one's does."""

    def history(self, name: str, since_ms: int, until_ms: int | None, limit: int, cursor: str | None = None) -> Deferred:
        return fail(NoSuchQueue(name))


class Listener:
    """
    A fake service behind a real resource and site, on a clock at the time botocore signs;
    the history route reads ``collection`` (a real one, or else NoQueues).
    """

    def __init__(self, apps: dict[str, App] | None = None, cors_origins: tuple[str, ...] = (), collection: Any = None):
        self.service = FakeService()
        self.clock = Clock()
        self.clock.advance(SIGNED_AT.timestamp())
        applications = Applications({"tests": APP} if apps is None else apps)
        reads = HistoryReads(NoQueues() if collection is None else collection)
        self.resource = SqsResource(self.service, reads, applications, self.clock, "000000000000", cors_origins)
        self.site = sqs_site(self.resource, self.clock)

    def connect(self) -> HttpConnection:
        return HttpConnection(self.site)

    def exchange(self, request: bytes) -> Response:
        (response,) = responses(self.connect().send(request))
        return response

    def client(self, wire: str = "json") -> Any:
        """sqs_botocore's client, its requests sent as bytes to the site, its replies parsed from the bytes back."""
        return sqs_client(wire, lambda request, **_: self._send(request))

    def _send(self, prepared: AWSPreparedRequest) -> AWSResponse:
        response = self.exchange(raw(prepared))
        headers = {name.decode(): value.decode() for name, value in response.headers.items()}
        return AWSResponse(prepared.url, response.code, headers, _Body(response.body))


class _Body:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_: Any):
        yield self._body


def raw(prepared: AWSPreparedRequest) -> bytes:
    """The bytes an HTTP client sends for ``prepared``, with the Host that botocore signed."""
    url = urlsplit(prepared.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    body = prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    headers = {"Host": url.netloc, **{name: _text(value) for name, value in prepared.headers.items()}}
    headers.setdefault("Content-Length", str(len(body)))
    lines = [f"{prepared.method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def signed(method: str, path: str, body: bytes, headers: dict[str, str], key: str = KEY, secret: str = SECRET) -> bytes:
    request = AWSRequest(method, f"http://{HOST}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), "sqs", "us-east-1").add_auth(request)
    return raw(request.prepare())


def error_code(response: Response) -> str:
    """The SQS error code of a reply in either wire."""
    if response.headers[b"content-type"] == b"application/x-amz-json-1.0":
        return response.headers[b"x-amzn-query-error"].decode().split(";")[0]
    return response.body.split(b"<Code>")[1].split(b"</Code>")[0].decode()


@pytest.fixture
def listener() -> Listener:
    return Listener()


# Calls and their replies


@pytest.mark.parametrize("wire", ["json", "query"])
def test_a_call_reaches_the_service_and_its_result_the_client(listener, wire):
    listener.service.answer = {"MessageId": "m-1", "MD5OfMessageBody": hashlib.md5(b"hello").hexdigest()}
    reply = listener.client(wire).send_message(QueueUrl=QUEUE_URL, MessageBody="hello")
    assert reply["MessageId"] == "m-1"
    ((call, base_url, _),) = listener.service.calls
    assert (call.action, call.wire, call.params) == ("SendMessage", wire, {"QueueUrl": QUEUE_URL, "MessageBody": "hello"})
    assert base_url == f"http://{HOST}"
    metadata = reply["ResponseMetadata"]
    # The query wire's body carries the id too, which botocore reads from there.
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    assert uuid.UUID(metadata["RequestId"]).version == 4


def test_each_reply_has_a_request_id_of_its_own(listener):
    client = listener.client()
    ids = {client.list_queues()["ResponseMetadata"]["RequestId"] for _ in range(3)}
    assert len(ids) == 3


def test_the_query_protocol_may_send_a_call_to_the_queue_url(listener):
    response = listener.exchange(signed("POST", "/000000000000/jobs", b"Action=SendMessage&MessageBody=hi", FORM_HEADERS))
    assert response.code == 200, response.body
    ((call, _, _),) = listener.service.calls
    assert (call.queue_url_path, call.queue_url(f"http://{HOST}")) == ("/000000000000/jobs", QUEUE_URL)


def test_a_get_with_the_call_in_its_query_string_is_served(listener):
    response = listener.exchange(signed("GET", "/000000000000/jobs?Action=ReceiveMessage", b"", {}))
    assert response.code == 200, response.body
    assert listener.service.calls[0][0].action == "ReceiveMessage"


@pytest.mark.parametrize("wire", ["json", "query"])
def test_an_error_of_the_service_goes_back_in_the_wire_of_the_request(listener, wire):
    listener.service.answer = sqs_error("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
    with pytest.raises(ClientError) as caught:
        listener.client(wire).get_queue_url(QueueName="nope")
    error = caught.value.response
    assert error["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_call_that_cannot_be_decoded_never_reaches_the_service(listener):
    response = listener.exchange(signed("POST", "/", b"{not json", {**JSON_HEADERS}))
    assert (response.code, error_code(response)) == (400, "SerializationException")
    assert not listener.service.calls


# Authentication and grants


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [(KEY, "not-the-secret", "SignatureDoesNotMatch"), ("AKIDNOBODY", SECRET, "InvalidClientTokenId")],
)
def test_a_request_not_signed_by_an_app_is_refused_before_it_is_decoded(listener, key, secret, code):
    response = listener.exchange(signed("POST", "/", b"Action=ListQueues", FORM_HEADERS, key=key, secret=secret))
    assert (response.code, error_code(response)) == (403, code)
    assert not listener.service.calls


def test_an_unsigned_request_is_refused(listener):
    response = listener.exchange(b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 17\r\n\r\nAction=ListQueues" % HOST.encode())
    assert (response.code, error_code(response)) == (403, "MissingAuthenticationToken")


def test_the_signature_date_is_checked_against_the_reactor_clock(listener):
    request = signed("POST", "/", b"Action=ListQueues", FORM_HEADERS)
    listener.clock.advance(15 * 60 + 1)
    response = listener.exchange(request)
    assert (response.code, error_code(response)) == (403, "SignatureDoesNotMatch")
    assert b"Signature expired" in response.body


def test_without_apps_any_key_may_do_anything():
    listener = Listener(apps={})
    response = listener.exchange(signed("POST", "/", b"Action=ListQueues", FORM_HEADERS, key="ANYONE", secret="whatever"))
    assert response.code == 200, response.body
    authorize = listener.service.calls[0][2]
    authorize("admin", "any-queue")
    assert authorize.visible("any-queue")


def test_the_service_asks_the_signing_apps_grants(listener):
    listener.client().list_queues()
    authorize = listener.service.calls[0][2]
    authorize("write", "audit")
    with pytest.raises(SqsError) as caught:
        authorize("admin", "jobs")
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)
    assert caught.value.message == f"Access to the resource {QUEUE_URL} is denied."
    assert authorize.visible("jobs") and authorize.visible("audit") and not authorize.visible("billing")


# Routes


@pytest.mark.parametrize("path", ["/000000000000", "/a/b/c", "/000000000000/jobs/", "//", "/a?/b", "*"])
def test_a_path_that_is_neither_the_root_nor_a_queue_url_is_an_invalid_address(listener, path):
    request = b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" % path.encode()
    response = listener.exchange(request)
    assert (response.code, error_code(response)) == (400, "InvalidAddress")


@pytest.mark.parametrize("method", [b"PUT", b"DELETE", b"PATCH", b"post"])
def test_another_method_is_refused_with_the_ones_allowed(listener, method):
    response = listener.exchange(b"%s / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" % method)
    assert (response.code, error_code(response)) == (405, "InvalidAction")
    assert response.headers[b"allow"] == b"GET, POST, OPTIONS"


def test_a_refusal_speaks_json_to_a_json_request(listener):
    response = listener.exchange(b"PUT / HTTP/1.1\r\nHost: h\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Length: 0\r\n\r\n")
    assert response.headers[b"content-type"] == b"application/x-amz-json-1.0"
    assert error_code(response) == "InvalidAction"
    assert uuid.UUID(response.headers[b"x-amzn-requestid"].decode())


# Long polls


def receive() -> bytes:
    return signed("POST", "/", b'{"QueueUrl": "%s", "WaitTimeSeconds": 20}' % QUEUE_URL.encode(),
                  {**JSON_HEADERS, "X-Amz-Target": "AmazonSQS.ReceiveMessage"})


def test_a_deferred_result_is_answered_when_it_fires(listener):
    pending = listener.service.long_poll()
    connection = listener.connect()
    assert connection.send(receive()) == b""
    pending.callback({"Messages": []})
    (response,) = responses(connection.written())
    assert (response.code, response.body) == (200, b'{"Messages":[]}')


def test_a_client_that_goes_away_cancels_its_long_poll(listener, captured_logs):
    listener.service.long_poll()
    connection = listener.connect()
    connection.send(receive())
    connection.protocol.connectionLost(Failure(ConnectionLost()))
    assert listener.service.cancelled == 1
    assert connection.written() == b""
    assert not [event for event in captured_logs.events if "log_failure" in event]


def test_a_deferred_error_is_answered_as_sqs_error(listener):
    pending = listener.service.long_poll()
    connection = listener.connect()
    connection.send(receive())
    pending.errback(sqs_error("AWS.SimpleQueueService.NonExistentQueue", "gone"))
    (response,) = responses(connection.written())
    assert (response.code, error_code(response)) == (400, "AWS.SimpleQueueService.NonExistentQueue")


@pytest.mark.parametrize("later", [False, True])
def test_an_unexpected_exception_is_logged_and_answered_as_internal_error(listener, captured_logs, later):
    connection = listener.connect()
    if later:
        pending = listener.service.long_poll()
        connection.send(receive())
        pending.errback(ZeroDivisionError("oops"))
        (response,) = responses(connection.written())
    else:
        listener.service.answer = ZeroDivisionError("oops")
        (response,) = responses(connection.send(receive()))
    assert (response.code, error_code(response)) == (500, "InternalError")
    request_id = response.headers[b"x-amzn-requestid"].decode()
    (failure,) = [event for event in captured_logs.events if "log_failure" in event]
    assert failure["log_failure"].check(ZeroDivisionError)
    assert (failure["request_id"], failure["action"], failure["access_key"]) == (request_id, "ReceiveMessage", KEY)
    assert request_id.encode() in response.body


# Logs


def test_a_refusal_is_logged_at_debug_with_its_fields_and_no_secret(listener, captured_logs):
    listener.exchange(signed("POST", "/", b"Action=ListQueues", FORM_HEADERS, secret="a-wrong-secret"))
    listener.client().list_queues()
    (refused,) = [event for event in captured_logs.events if "refused" in event.get("log_format", "")]
    assert refused["log_level"].name == "debug"
    assert (refused["code"], refused["status"], refused["method"], refused["path"]) == ("SignatureDoesNotMatch", 403, "POST", "/")
    assert uuid.UUID(refused["request_id"])
    shown = " ".join(repr(event) for event in captured_logs.events) + " ".join(captured_logs.messages())
    assert SECRET not in shown and "a-wrong-secret" not in shown


# CORS


def preflight(origin: str) -> bytes:
    return (
        b"OPTIONS / HTTP/1.1\r\nHost: h\r\nOrigin: %s\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: authorization, x-amz-date, x-amz-target, content-type\r\n\r\n" % origin.encode()
    )


def test_a_preflight_from_an_allowed_origin_says_what_a_page_may_send():
    listener = Listener(cors_origins=("https://app.example.com",))
    response = listener.exchange(preflight("https://App.example.com"))
    assert response.code == 200
    assert response.headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert response.headers[b"access-control-allow-methods"] == b"GET, POST"
    allowed = response.headers[b"access-control-allow-headers"].decode().split(", ")
    assert {"authorization", "x-amz-date", "x-amz-target", "x-amz-content-sha256", "content-type"} <= set(allowed)
    assert response.headers[b"access-control-allow-headers"].decode() == CORS_ALLOWED_HEADERS


@pytest.mark.parametrize("origins", [(), ("https://app.example.com",)])
def test_a_preflight_from_another_origin_is_refused(origins):
    response = Listener(cors_origins=origins).exchange(preflight("https://evil.example"))
    assert (response.code, error_code(response)) == (403, "AccessDenied")
    assert b"access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origins", [("https://app.example.com",), ("*",)])
def test_a_call_from_an_allowed_origin_may_be_read_by_its_page(origins):
    listener = Listener(cors_origins=origins)
    response = listener.exchange(signed("POST", "/", b"Action=ListQueues", {**FORM_HEADERS, "Origin": "https://app.example.com"}))
    assert response.code == 200
    assert response.headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert response.headers[b"access-control-expose-headers"] == b"x-amzn-RequestId, x-amzn-query-error"
    assert response.headers[b"vary"] == b"Origin"


def test_without_cors_origins_a_reply_has_no_cors_headers(listener):
    response = listener.exchange(signed("POST", "/", b"Action=ListQueues", {**FORM_HEADERS, "Origin": "https://app.example.com"}))
    assert not [name for name in response.headers if name.startswith(b"access-control") or name == b"vary"]


# The body's bound


def declaring(length: int, json: bool = False) -> bytes:
    target = b"X-Amz-Target: AmazonSQS.SendMessage\r\nContent-Type: application/x-amz-json-1.0\r\n" if json else b""
    return b"POST / HTTP/1.1\r\nHost: h\r\n%sContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (target, length)


@pytest.mark.parametrize("json", [False, True])
def test_a_body_declared_too_large_is_refused_before_it_is_sent(listener, json):
    connection = listener.connect()
    (response,) = responses(connection.send(declaring(MAX_BODY + 1, json)))
    assert (response.code, error_code(response)) == (400, "InvalidParameterValue")
    assert response.headers[b"connection"] == b"close"
    assert uuid.UUID(response.headers[b"x-amzn-requestid"].decode())
    assert not connection.closed
    # What the client still sends is read and dropped; once it is all in, the connection closes.
    assert connection.send(b"x" * MAX_BODY) == b""
    assert not connection.closed
    assert connection.send(b"x") == b""
    assert connection.closed and not listener.service.calls


def test_a_client_that_never_sends_the_body_refused_is_cut_off(listener):
    connection = listener.connect()
    connection.send(declaring(10 * MAX_BODY))
    listener.clock.advance(LINGER - 0.1)
    assert not connection.closed
    listener.clock.advance(0.2)
    assert connection.transport.disconnected


def test_a_chunked_body_is_refused_once_it_passes_the_bound(listener):
    connection = listener.connect()
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (MAX_BODY // 2, b"y" * (MAX_BODY // 2))
    assert connection.send(head + chunk + chunk) == b""
    (response,) = responses(connection.send(b"1\r\nz\r\n"))
    assert error_code(response) == "InvalidParameterValue"
    assert connection.send(chunk) == b"" and not connection.closed
    connection.send(b"0\r\n\r\n")
    assert connection.closed and not listener.service.calls


def test_a_body_of_the_bound_is_read(listener, monkeypatch):
    monkeypatch.setattr(sqs_site_module, "MAX_BODY", 100)
    body = b"Action=ListQueues&QueueNamePrefix=" + b"q" * (100 - 34)
    response = listener.exchange(signed("POST", "/", body, FORM_HEADERS))
    assert response.code == 200, response.body
    assert listener.service.calls[0][0].params == {"QueueNamePrefix": "q" * 66}


def test_a_body_is_kept_in_memory_whatever_its_length(listener):
    # Twisted's own Request spools a body over 100 kB to a temporary file, on the reactor thread.
    request = listener.site.requestFactory(listener.connect().protocol)
    request.gotLength(MAX_BODY)
    assert isinstance(request.content, io.BytesIO)
