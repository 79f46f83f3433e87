"""
History and rewind on a real server (doc/history.md): a queue with `retain`, items set and
some read over memcache, read back from `/history` with curl's and botocore's signatures and
with `kestrel history`, page by page; `kestrel rewind` puts each back once.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.load.process import free_port
from kestrel.test.acceptance.sqs import APPS, KEY, READER_KEY, READER_SECRET, SECRET, SQS_LISTEN, boto3_client, endpoint
from kestrel.test.acceptance.test_tools import kestrel_command

RETAINED = """
[queues.jobs]
retain = "1h"

[queues.audit]
retain = "1h"
"""
ITEMS = [f"item {index}".encode() for index in range(5)]


@pytest.fixture
def server(make_server):
    return make_server(server=SQS_LISTEN, queues=APPS + RETAINED)


def signed_get(url: str, key: str = KEY, secret: str = SECRET, presigned: bool = False) -> tuple[int, dict]:
    """A GET signed by botocore, in the Authorization header or (presigned) in the query string."""
    request = AWSRequest("GET", url)
    signer = SigV4QueryAuth(Credentials(key, secret), "sqs", "us-east-1", expires=60) if presigned else SigV4Auth(
        Credentials(key, secret), "sqs", "us-east-1"
    )
    signer.add_auth(request)
    prepared = request.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(prepared.url, headers=dict(prepared.headers)), timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def items_of(server, since_ms: int, limit: int, **sign) -> list[dict]:
    """Every item from since_ms on, following the cursors one page of `limit` at a time."""
    items, cursor = [], None
    for _ in range(100):
        url = f"{endpoint(server)}/history/jobs?since={since_ms}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, page = signed_get(url, **sign)
        assert status == 200, page
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items
    raise AssertionError("the pages did not end")


def test_history_returns_exactly_the_items_added_with_when_they_left(server):
    start = int(time.time() * 1000)
    client = server.client()
    for item in ITEMS:
        assert client.set("jobs", item) == b"STORED"
    assert [client.get("jobs"), client.get("jobs")] == ITEMS[:2]
    read_at = int(time.time() * 1000)

    items = items_of(server, 0, limit=2)
    assert [base64.b64decode(item["body"]) for item in items] == ITEMS
    assert all(start <= item["added"] <= read_at for item in items)
    assert [item["outcome"] for item in items] == ["read", "read", None, None, None]
    assert all(item["added"] <= item["consumed"] <= read_at for item in items[:2])
    assert [item["consumed"] for item in items[2:]] == [None, None, None]
    assert items_of(server, 0, limit=1000, presigned=True) == items

    # The window: since is inclusive, until exclusive; RFC 3339 works as well as epoch ms.
    since, until = items[2]["added"], items[4]["added"]
    status, page = signed_get(f"{endpoint(server)}/history/jobs?since={since}&until={until}")
    assert (status, page["next"]) == (200, None)
    assert page["items"] == [item for item in items if since <= item["added"] < until]
    status, page = signed_get(f"{endpoint(server)}/history/jobs?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z")
    assert (status, page) == (200, {"items": [], "next": None})


def test_an_sqs_message_shows_its_body(server):
    sqs = boto3_client(endpoint(server))
    url = sqs.create_queue(QueueName="audit")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="sent over SQS")
    status, page = signed_get(f"{endpoint(server)}/history/audit?since=0")
    assert status == 200
    assert [base64.b64decode(item["body"]) for item in page["items"]] == [b"sent over SQS"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_history_with_its_own_signature(server):
    server.client().set("jobs", b"for curl")
    reply = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:sqs", "--user", f"{KEY}:{SECRET}",
         f"{endpoint(server)}/history/jobs?since=0&limit=10"],
        capture_output=True, check=True, timeout=30,
    )
    assert [base64.b64decode(item["body"]) for item in json.loads(reply.stdout)["items"]] == [b"for curl"]


def test_wrong_keys_and_missing_grants_are_refused(server):
    server.client().set("jobs", b"secret stuff")
    server.client().set("audit", b"audited")
    url = f"{endpoint(server)}/history/jobs?since=0"
    assert signed_get(url, secret="not-the-secret")[0] == 403
    assert signed_get(url, key="AKIDNOBODY")[0] == 403
    assert signed_get(url, key=READER_KEY, secret=READER_SECRET)[0] == 200  # reader may read jobs*
    status, error = signed_get(f"{endpoint(server)}/history/audit?since=0", key=READER_KEY, secret=READER_SECRET)
    assert (status, error["error"]) == (403, "AccessDenied")
    request = urllib.request.Request(url)  # not signed at all
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_kestrel_history_and_rewind_as_an_operator_runs_them(make_server):
    # Ports of their own in the config, where the commands find them (the harness's tcp:0 is known only once bound).
    listeners = "\n".join(f'{name} = "tcp:{free_port()}:interface=127.0.0.1"' for name in ("sqs_listen", "admin_listen"))
    server = make_server(server=listeners, queues=APPS + RETAINED)
    client = server.client()
    for item in ITEMS:
        client.set("jobs", item)
    assert client.get("jobs") == ITEMS[0]
    client.set("plain", b"not retained")
    signing = ("--access-key", KEY, "--secret", SECRET)

    def tool(*args: str):
        return kestrel_command(*args, config=server.config)

    history = tool("history", "jobs", "--since", "1h", "--limit", "2", "--all", "--json", *signing)
    assert history.returncode == 0, history.stderr
    lines = [json.loads(line) for line in history.stdout.splitlines()]
    assert [base64.b64decode(line["body"]) for line in lines] == ITEMS
    rows = tool("history", "jobs", "--since", "0", "--limit", "2", *signing)
    first, second = (row.split() for row in rows.stdout.splitlines())
    assert (first[1], first[3:], second[1:]) == ("read", ["-", "item", "0"], ["queued", "-", "-", "item", "1"])
    assert rows.stderr.startswith("kestrel: more items: --cursor ")

    rewind = tool("rewind", "jobs", "--since", "0")
    assert rewind.returncode == 0, rewind.stderr
    assert json.loads(rewind.stdout) == {"queue": "jobs", "rewound": 5}
    # What was left, then each rewound item once, in the order they were first added.
    assert [client.get("jobs") for _ in range(10)] == ITEMS[1:] + ITEMS + [None]
    # Again: the items once more, not the first rewind's copies, which the history marks.
    again = tool("rewind", "jobs", "--since", "0")
    assert json.loads(again.stdout) == {"queue": "jobs", "rewound": 5}
    assert [client.get("jobs") for _ in range(6)] == ITEMS + [None]
    history = tool("history", "jobs", "--since", "0", "--all", "--json", *signing)
    lines = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(base64.b64decode(line["body"]), line["rewound"]) for line in lines] == (
        [(item, False) for item in ITEMS] + [(item, True) for item in ITEMS] * 2)
    rows = tool("history", "jobs", "--since", "0", "--all", *signing).stdout.splitlines()
    assert [row.split()[3] for row in rows] == ["-"] * 5 + ["rewound"] * 10

    not_retained = tool("rewind", "plain", "--since", "0")
    assert (not_retained.returncode, not_retained.stderr) == (1, "kestrel: 409: queue plain keeps no history to rewind: its retain setting is off\n")
    refused = tool("history", "plain", "--since", "0", *signing)
    assert refused.returncode == 1
    assert refused.stderr.startswith("kestrel: 409 QueueNotRetained: ")
    wrong = tool("history", "jobs", "--since", "0", "--access-key", KEY, "--secret", "wrong")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("kestrel: 403 SignatureDoesNotMatch: ")


HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0", "-1", "1001", "99999999999999999999", "2026-02-30T00:00:00Z", "2026-12-02T22:30:00+99:00", "\x00", "é", "%"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["jobs"] * 6 + ["plain", "plain", "nope", "orders.fifo", "a:b", ".x", "", "%2F"]) | st.text(max_size=20),
    since=st.booleans(),
    parameters=st.lists(st.tuples(st.sampled_from(["since", "until", "limit", "cursor", "X-Amz-Date", "other"]), HOSTILE), max_size=4),
)
def test_hostile_reads_are_answered_in_json_and_never_fail(server, name, since, parameters):
    if not server.client().stats().get("queue_plain_items"):
        server.client().set("jobs", b"kept")
        server.client().set("plain", b"not kept")
    parameters = [("since", "0")] * since + parameters
    status, reply = signed_get(f"{endpoint(server)}/history/{quote(name, safe='')}?{urlencode(parameters)}")
    assert status == 200 or 400 <= status < 500, reply
    assert set(reply) == ({"items", "next"} if status == 200 else {"error", "message"})
    assert "Traceback" not in server.log()
