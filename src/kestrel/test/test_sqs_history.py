"""
The SQS listener's history route (kestrel.sqs.history): its parameters (pure), its replies,
and the route behind the real resource and site, signed by botocore, over raw HTTP bytes:
refusals first, then reads of a real collection whose queue has `retain` set.
"""

from __future__ import annotations

import base64
import json

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kestrel import envelope
from kestrel.history import HistoryEntry, HistoryPage
from kestrel.sqs.apps import App
from kestrel.sqs.errors import SqsError
from kestrel.sqs.history import DEFAULT_LIMIT, MAX_LIMIT, HistoryQuery, encode_error, encode_page, parse_query
from kestrel.test.test_sqs_resource import APP, HOST, KEY, SECRET, Listener, botocore_signs_at_a_fixed_time, raw, signed
from kestrel.timestamps import parse_timestamp

__all__ = ["botocore_signs_at_a_fixed_time"]  # pins botocore's clock here too

MS = parse_timestamp("2026-12-02T22:30:00Z")


# Parameters


def query(target: str) -> HistoryQuery:
    path, _, query_string = target.partition("?")
    return parse_query(path.encode(), query_string.encode())


def refusal(target: str) -> SqsError:
    with pytest.raises(SqsError) as raised:
        query(target)
    return raised.value


def test_since_alone_reads_up_to_now_a_default_page():
    assert query("/history/jobs?since=5") == HistoryQuery("jobs", 5, None, DEFAULT_LIMIT, None)


def test_every_parameter_in_either_time_form():
    read = query("/history/jobs?since=2026-12-02T22%3A30%3A00Z&until=2026-12-02T23:30:00.5%2B01:00&limit=1000&cursor=abc-_")
    assert read == HistoryQuery("jobs", MS, MS + 500, MAX_LIMIT, "abc-_")


def test_the_signature_of_a_presigned_url_is_not_a_parameter():
    assert query("/history/jobs?since=0&X-Amz-Signature=ab&X-Amz-Date=x").since_ms == 0


def test_queues_are_named_as_sqs_names_them():
    assert query("/history/orders.fifo?since=0").queue == "orders.fifo"
    assert query("/history/orders%3Afifo?since=0").queue == "orders.fifo"  # the engine's spelling, the same queue
    assert query("/history/caf%C3%A9%2Bfan?since=0").queue == "café+fan"


@pytest.mark.parametrize("path", ["/history/", "/history/a/b", "/history/a%2Fb", "/history/.hidden", "/history/a%20b", "/history/" + "x" * 300])
def test_a_name_no_queue_can_have_is_no_such_queue(path):
    error = refusal(path + "?since=0")
    assert (error.status, error.code) == (404, "QueueDoesNotExist")


@pytest.mark.parametrize(
    "target, code, words",
    [
        ("/history/jobs", "MissingParameter", "'since' is required"),
        ("/history/jobs?until=5", "MissingParameter", "'since' is required"),
        ("/history/jobs?since=yesterday", "InvalidParameterValue", "since: expected epoch milliseconds or an RFC 3339"),
        ("/history/jobs?since=2026-12-02T22:30:00", "InvalidParameterValue", "RFC 3339"),
        ("/history/jobs?since=0&until=2026-02-30T00:00:00Z", "InvalidParameterValue", "until: "),
        ("/history/jobs?since=10&until=9", "InvalidParameterValue", "until (9) is before since (10)"),
        ("/history/jobs?since=0&limit=0", "InvalidParameterValue", "limit must be a whole number from 1 to 1000"),
        ("/history/jobs?since=0&limit=1001", "InvalidParameterValue", "got '1001'"),
        ("/history/jobs?since=0&limit=ten", "InvalidParameterValue", "limit must be"),
        ("/history/jobs?since=0&limit=-1", "InvalidParameterValue", "limit must be"),
        ("/history/jobs?since=0&since=1", "InvalidParameterValue", "'since' is given twice"),
        ("/history/jobs?since=0&untill=5", "InvalidParameterValue", "Unknown parameter 'untill'"),
        ("/history/jobs?since=0&cursor=", "InvalidParameterValue", "'cursor' is empty"),
        ("/history/jobs?since=%FF", "InvalidParameterValue", "not UTF-8"),
    ],
)
def test_bad_parameters_are_400s_that_say_what_is_wrong(target, code, words):
    error = refusal(target)
    assert (error.status, error.code) == (400, code)
    assert words in error.message


# Replies


def test_a_page_is_json_with_bodies_in_base64_as_clients_got_them():
    page = HistoryPage(
        [
            HistoryEntry(MS, MS + 5, "read", b"plain \xff"),
            HistoryEntry(MS + 1, None, None, envelope.wrap({"id": "m1"}, b"sqs body")),
        ],
        "next-page",
    )
    status, headers, body = encode_page(page, "request-1")
    assert (status, headers) == (200, {"Content-Type": "application/json", "x-amzn-RequestId": "request-1"})
    assert json.loads(body) == {
        "items": [
            {"added": MS, "consumed": MS + 5, "outcome": "read", "body": base64.b64encode(b"plain \xff").decode()},
            {"added": MS + 1, "consumed": None, "outcome": None, "body": base64.b64encode(b"sqs body").decode()},
        ],
        "next": "next-page",
    }


def test_the_last_page_has_no_next_and_an_error_is_its_code_and_message():
    assert json.loads(encode_page(HistoryPage([], None), "r")[2]) == {"items": [], "next": None}
    status, _, body = encode_error(SqsError("QueueNotRetained", "not kept", 409), "r")
    assert (status, json.loads(body)) == (409, {"error": "QueueNotRetained", "message": "not kept"})


# The route: refusals


def get(listener: Listener, target: str, key: str = KEY, secret: str = SECRET, method: str = "GET"):
    response = listener.exchange(signed(method, target, b"", {}, key, secret))
    assert response.headers[b"content-type"] == b"application/json"
    return response.code, json.loads(response.body)


def test_an_unsigned_read_is_refused():
    response = Listener().exchange(b"GET /history/jobs?since=0 HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    assert response.code == 403
    assert json.loads(response.body)["error"] == "MissingAuthenticationToken"


def test_a_wrong_secret_or_an_unknown_key_is_refused():
    assert get(Listener(), "/history/jobs?since=0", secret="not-the-secret")[0] == 403
    code, error = get(Listener(), "/history/jobs?since=0", key="AKIDUNKNOWN")
    assert (code, error["error"]) == (403, "InvalidClientTokenId")


def test_a_read_needs_the_read_grant_on_the_queue():
    # APP may write audit, not read it.
    code, error = get(Listener(), "/history/audit?since=0")
    assert (code, error["error"]) == (403, "AccessDenied")
    assert error["message"] == f"Access to the resource http://{HOST}/history/audit is denied."


def test_authentication_comes_before_the_parameters():
    assert get(Listener(), "/history/jobs?since=junk", secret="not-the-secret")[1]["error"] == "SignatureDoesNotMatch"


def test_a_queue_that_does_not_exist_is_a_404():
    code, error = get(Listener(), "/history/jobs?since=0")
    assert (code, error) == (404, {"error": "QueueDoesNotExist", "message": "The queue 'jobs' does not exist."})


def test_bad_parameters_are_a_400_in_json():
    code, error = get(Listener(), "/history/jobs?since=0&limit=0")
    assert (code, error["error"]) == (400, "InvalidParameterValue")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_a_405_naming_get(method):
    response = Listener().exchange(signed(method, "/history/jobs?since=0", b"", {}))
    assert (response.code, response.headers[b"allow"]) == (405, b"GET")
    assert json.loads(response.body)["error"] == "MethodNotAllowed"


def test_without_applications_any_well_formed_signature_reads():
    code, error = get(Listener(apps={}), "/history/jobs?since=0", key="anyone", secret="anything")
    assert (code, error["error"]) == (404, "QueueDoesNotExist")  # past authentication and grants
