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
from kestrel.test.support import ServerHarness, fired
from kestrel.test.test_hostile_admin import responses
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
            HistoryEntry(MS, MS + 5, "read", b"plain \xff", False),
            HistoryEntry(MS + 1, None, None, envelope.wrap({"id": "m1"}, b"sqs body"), True),
        ],
        "next-page",
    )
    status, headers, body = encode_page(page, "request-1")
    assert (status, headers) == (200, {"Content-Type": "application/json", "x-amzn-RequestId": "request-1"})
    assert json.loads(body) == {
        "items": [
            {"added": MS, "consumed": MS + 5, "outcome": "read", "rewound": False,
             "body": base64.b64encode(b"plain \xff").decode()},
            {"added": MS + 1, "consumed": None, "outcome": None, "rewound": True,
             "body": base64.b64encode(b"sqs body").decode()},
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


# The route: reads of a real collection


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    """Queues jobs and audit keep an hour of history; plain keeps none."""
    retained = {"retain": 3600.0}
    return ServerHarness(harness, queue_overrides={"jobs": retained, "audit": retained, "orders:fifo": retained})


@pytest.fixture
def listener(kestrel) -> Listener:
    """The route over the real collection, for an app that may read every queue."""
    return Listener(apps={"reader": App("reader", KEY, SECRET.encode(), read=("*",))}, collection=kestrel.collection)


def read(listener: Listener, kestrel: ServerHarness, target: str, **sign) -> tuple[int, dict]:
    """One read, answered once the collection's Deferred has fired (the writer settled)."""
    connection = listener.connect()
    written = connection.send(signed("GET", target, b"", {}, **sign))
    kestrel.settle()
    (response,) = responses(written + connection.written())
    assert response.headers[b"content-type"] == b"application/json"
    return response.code, json.loads(response.body)


def bodies(page: dict) -> list[bytes]:
    return [base64.b64decode(item["body"]) for item in page["items"]]


def test_a_read_gives_the_items_added_in_order_with_how_they_left(listener, kestrel):
    kestrel.add("jobs", b"one", b"two", b"three")
    added = int(kestrel.clock.seconds() * 1000)
    kestrel.clock.advance(2)
    assert kestrel.collection.fetch("jobs") is not None  # "one" is read
    kestrel.settle()
    code, page = read(listener, kestrel, "/history/jobs?since=0")
    assert code == 200
    assert bodies(page) == [b"one", b"two", b"three"]
    assert [(item["added"], item["consumed"], item["outcome"]) for item in page["items"]] == [
        (added, added + 2000, "read"), (added, None, None), (added, None, None),
    ]
    assert page["next"] is None


def test_a_read_says_which_items_a_rewind_added(listener, kestrel):
    kestrel.add("jobs", b"one")
    kestrel.clock.advance(1)
    rewound = fired(kestrel.collection.rewind("jobs", 0))
    kestrel.settle()
    assert rewound == [1]
    code, page = read(listener, kestrel, "/history/jobs?since=0")
    assert code == 200
    assert [(body, item["rewound"]) for body, item in zip(bodies(page), page["items"])] == [
        (b"one", False), (b"one", True)]


def test_pages_follow_the_cursor_to_the_end_and_the_window_bounds_them(listener, kestrel):
    for index in range(5):
        kestrel.add("jobs", b"%d" % index)
        kestrel.clock.advance(1)
    start = int(kestrel.clock.seconds() * 1000) - 5000
    seen, cursor = [], None
    for _ in range(5):
        code, page = read(listener, kestrel, "/history/jobs?since=0&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert code == 200 and len(page["items"]) <= 2
        seen += bodies(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [b"0", b"1", b"2", b"3", b"4"]
    code, page = read(listener, kestrel, f"/history/jobs?since={start + 1000}&until={start + 3000}")
    assert (code, bodies(page)) == (200, [b"1", b"2"])


def test_a_cursor_of_another_read_is_a_400(listener, kestrel):
    for index in range(3):
        kestrel.add("jobs", b"%d" % index)
    code, page = read(listener, kestrel, "/history/jobs?since=0&limit=1")
    cursor = page["next"]
    assert (code, cursor is not None) == (200, True)
    code, error = read(listener, kestrel, f"/history/jobs?since=1&limit=1&cursor={cursor}")
    assert (code, error["error"]) == (400, "InvalidCursor")
    code, error = read(listener, kestrel, "/history/jobs?since=0&cursor=not-a-cursor")
    assert (code, error["error"]) == (400, "InvalidCursor")


def test_a_queue_without_retain_is_a_409(listener, kestrel):
    kestrel.add("plain", b"one")
    code, error = read(listener, kestrel, "/history/plain?since=0")
    assert (code, error["error"]) == (409, "QueueNotRetained")


def test_a_fifo_queue_is_read_by_its_sqs_name_and_an_sqs_message_shows_its_body(listener, kestrel):
    kestrel.add("orders:fifo", envelope.wrap({"id": "m1"}, b"the body"))
    code, page = read(listener, kestrel, "/history/orders.fifo?since=0")
    assert (code, bodies(page)) == (200, [b"the body"])


def test_a_presigned_url_reads_too(listener, kestrel):
    kestrel.add("jobs", b"one")
    request = AWSRequest("GET", f"http://{HOST}/history/jobs?since=0")
    SigV4QueryAuth(Credentials(KEY, SECRET), "sqs", "us-east-1", expires=60).add_auth(request)
    connection = listener.connect()
    written = connection.send(raw(request.prepare()))
    kestrel.settle()
    (response,) = responses(written + connection.written())
    assert (response.code, bodies(json.loads(response.body))) == (200, [b"one"])


def test_an_app_reads_only_the_queues_it_may_read(kestrel):
    kestrel.add("audit", b"one")
    listener = Listener(apps={"tests": APP, "auditor": App("auditor", "AKIDAUDIT", b"audit-secret", read=("audit",))}, collection=kestrel.collection)
    assert read(listener, kestrel, "/history/audit?since=0", key="AKIDAUDIT", secret="audit-secret")[0] == 200
    assert read(listener, kestrel, "/history/audit?since=0")[1]["error"] == "AccessDenied"
