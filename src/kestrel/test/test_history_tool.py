"""
`kestrel history` and `kestrel rewind`: their arguments, the requests they make (history's
signed as the server checks), what they print and their exit codes. The real server is in
acceptance/test_history.py.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import urllib.error
from urllib.parse import urlsplit

import pytest

from kestrel import command
from kestrel.sqs.sigv4 import SignedRequest, verify
from kestrel.test.test_admin_tool import RecordingClient, unused_port
from kestrel.timestamps import parse_timestamp
from kestrel.tools import admin
from kestrel.tools import history as history_tool
from kestrel.tools.history import ANONYMOUS_KEY, Credentials, HistoryClient, HistoryRefused, item_line, printable

__all__ = ["unused_port"]  # a fixture

NOW = parse_timestamp("2026-12-02T22:30:00Z") / 1000


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    monkeypatch.setattr(command.time, "time", lambda: NOW)
    monkeypatch.setattr(history_tool.time, "time", lambda: NOW)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KESTREL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)


def options(*argv: str):
    return command.parser().parse_args(list(argv))


# Times


@pytest.mark.parametrize(
    "text, epoch_ms",
    [
        ("1796248800000", 1796248800000),
        ("2026-12-02T22:00:00Z", 1796248800000),
        ("2026-12-02T23:00:00+01:00", 1796248800000),
        ("30m", 1796248800000),
        ("1h", 1796250600000 - 3600_000),
        ("90s", 1796250600000 - 90_000),
        ("2d", 1796250600000 - 2 * 86400_000),
    ],
)
def test_a_time_is_epoch_ms_rfc_3339_or_a_duration_ago(text, epoch_ms):
    assert options("rewind", "jobs", "--since", text).since == epoch_ms


@pytest.mark.parametrize("text", ["yesterday", "never", "10 parsecs", "2026-12-02T22:00:00", "", "1234567890123456"])
def test_a_bad_time_is_a_usage_error_saying_what_is_taken(capsys, text):
    with pytest.raises(SystemExit) as exited:
        options("history", "jobs", "--since", text)
    assert exited.value.code == 2
    assert "or a duration ago such as 10m or 3d" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["history", "rewind"])
def test_since_is_required(capsys, name):
    with pytest.raises(SystemExit):
        options(name, "jobs")
    assert "--since" in capsys.readouterr().err


# Rewind: the admin port


@pytest.mark.parametrize(
    "argv, query",
    [
        (["--since", "5"], {"queue": "jobs", "since": 5}),
        (["--since", "5", "--until", "2026-12-02T22:00:00Z"], {"queue": "jobs", "since": 5, "until": 1796248800000}),
    ],
)
def test_rewind_posts_to_the_admin_port(argv, query):
    client = RecordingClient()
    assert admin.run(client, options("rewind", "jobs", *argv)) == "ok"
    assert client.requests == [("POST", "/rewind", query)]


# History: where, and as whom


def config_file(tmp_path, server: str):
    path = tmp_path / "kestrel.conf"
    path.write_text(f'[server]\nqueue_path = "spool"\n{server}\n')
    return str(path)


def test_the_sqs_listener_comes_from_the_config_or_the_command_line(tmp_path):
    config = config_file(tmp_path, 'sqs_listen = "tcp:9324:interface=127.0.0.1"')
    assert command.sqs_address(options("-c", config, "history", "q", "--since", "0")) == ("127.0.0.1", 9324)
    assert command.sqs_address(options("-c", config, "history", "q", "--since", "0", "--sqs", "10.0.0.7:9")) == ("10.0.0.7", 9)


def test_a_config_without_the_sqs_listener_says_so(tmp_path, capsys):
    config = config_file(tmp_path, "")
    assert command.main(["-c", config, "history", "jobs", "--since", "0"]) == 2
    assert capsys.readouterr().err == (
        "kestrel: the config's sqs_listen is off: the history is read on the SQS listener (or give --sqs HOST:PORT)\n"
    )


def test_credentials_come_from_the_options_or_the_aws_variables(monkeypatch):
    assert command.credentials(options("history", "q", "--since", "0")) == Credentials(ANONYMOUS_KEY, b"")
    given = options("history", "q", "--since", "0", "--access-key", "AKID", "--secret", "s3cret")
    assert command.credentials(given) == Credentials("AKID", b"s3cret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    assert command.credentials(options("history", "q", "--since", "0")) == Credentials("AKIDENV", b"envsecret")


def test_a_key_without_its_secret_is_a_usage_error(capsys):
    argv = ["history", "q", "--since", "0", "--sqs", "127.0.0.1:9", "--access-key", "AKID"]
    assert command.main(argv) == 2
    assert "give both --access-key and --secret" in capsys.readouterr().err


# History: the request


class Reply(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def test_a_page_is_a_get_signed_as_the_server_checks(monkeypatch):
    sent = []

    def urlopen(request, timeout):
        sent.append(request)
        return Reply(b'{"items": [], "next": null}')

    monkeypatch.setattr(history_tool.urllib.request, "urlopen", urlopen)
    client = HistoryClient("127.0.0.1", 9324, Credentials("AKID", b"s3cret"))
    assert client.page("orders:fifo", 5, 9, 10, "c_1") == {"items": [], "next": None}
    (request,) = sent
    url = urlsplit(request.full_url)
    assert (request.get_method(), url.netloc, url.path) == ("GET", "127.0.0.1:9324", "/history/orders.fifo")
    assert url.query == "since=5&until=9&limit=10&cursor=c_1"
    headers = {"host": url.netloc, **{name.lower(): value for name, value in request.header_items()}}
    arrived = SignedRequest("GET", url.path.encode(), url.query.encode(), headers, b"")
    assert verify(arrived, {"AKID": b"s3cret"}.get, NOW) == "AKID"


def test_a_refusal_is_the_servers_code_and_message(monkeypatch):
    def urlopen(request, timeout):
        body = io.BytesIO(b'{"error": "QueueNotRetained", "message": "not kept"}')
        raise urllib.error.HTTPError(request.full_url, 409, "Conflict", {}, body)

    monkeypatch.setattr(history_tool.urllib.request, "urlopen", urlopen)
    with pytest.raises(HistoryRefused, match="^409 QueueNotRetained: not kept$"):
        HistoryClient("127.0.0.1", 9324, Credentials()).page("jobs", 0, None, None, None)


# History: the pages and what is printed


ITEMS = [
    {"added": 1796250600000, "consumed": 1796250601500, "outcome": "read", "rewound": False,
     "body": base64.b64encode(b"one").decode()},
    {"added": 1796250600001, "consumed": None, "outcome": None, "rewound": True,
     "body": base64.b64encode(b"two\nlines\xff").decode()},
]


class FakeHistoryClient:
    """Pages of ITEMS, one item a page, the cursor the index of the next; answers at once, as urllib does."""

    def __init__(self, *args):
        self.asked: list[str | None] = []

    def page(self, queue, since, until, limit, cursor):
        self.asked.append(cursor)
        index = int(cursor or 0)
        return {"items": ITEMS[index:index + 1], "next": str(index + 1) if index + 1 < len(ITEMS) else None}

    pages = HistoryClient.pages


@pytest.fixture
def fake_client(monkeypatch):
    clients: list[FakeHistoryClient] = []

    def made(*args):
        clients.append(FakeHistoryClient(*args))
        return clients[-1]

    monkeypatch.setattr(command, "HistoryClient", made)
    return clients


def test_one_page_is_printed_as_rows_and_the_next_cursor_goes_to_stderr(fake_client, capsys):
    out = io.StringIO()
    assert command.main(["history", "jobs", "--since", "0", "--sqs", "127.0.0.1:9"], out) == 0
    assert out.getvalue() == "2026-12-02T22:30:00.000Z  read           2026-12-02T22:30:01.500Z  -        one\n"
    assert capsys.readouterr().err == "kestrel: more items: --cursor 1 (or --all)\n"


def test_all_follows_the_cursors_and_json_prints_the_items_as_sent(fake_client, capsys):
    out = io.StringIO()
    assert command.main(["history", "jobs", "--since", "0", "--sqs", "127.0.0.1:9", "--all", "--json"], out) == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == ITEMS
    assert fake_client[0].asked == [None, "1"]
    assert capsys.readouterr().err == ""


def test_a_row_shows_a_queued_rewound_item_and_escapes_its_body():
    assert item_line(ITEMS[1]) == "2026-12-02T22:30:00.001Z  queued         -                         rewound  two\\nlines\\xff"
    assert printable("tab\tcafé".encode()) == "tab\\tcafé"


def test_a_refused_read_exits_1_and_an_unreachable_listener_2(monkeypatch, capsys, unused_port):
    def refused(self, *args):
        raise HistoryRefused(403, "AccessDenied", "Access to the resource http://h/history/jobs is denied.")

    argv = ["history", "jobs", "--since", "0", "--sqs", f"127.0.0.1:{unused_port}"]
    assert command.main(argv) == 2
    assert f"kestrel: cannot reach the SQS listener 127.0.0.1:{unused_port}" in capsys.readouterr().err
    monkeypatch.setattr(HistoryClient, "page", refused)
    assert command.main(argv) == 1
    assert capsys.readouterr().err == "kestrel: 403 AccessDenied: Access to the resource http://h/history/jobs is denied.\n"


@pytest.mark.parametrize("reply", [http.client.BadStatusLine("VALUE x"), b"not json", b'{"no": "items"}'])
def test_a_port_that_is_no_sqs_listener_is_a_usage_error(monkeypatch, capsys, reply):
    def urlopen(request, timeout):
        if isinstance(reply, Exception):
            raise reply
        return Reply(reply)

    monkeypatch.setattr(history_tool.urllib.request, "urlopen", urlopen)
    assert command.main(["history", "jobs", "--since", "0", "--sqs", "127.0.0.1:22133"]) == 2
    assert "kestrel: 127.0.0.1:22133 does not answer as txkestrel's SQS listener: " in capsys.readouterr().err


def test_all_is_bounded(monkeypatch):
    monkeypatch.setattr(history_tool, "MAX_PAGES", 3)
    endless = FakeHistoryClient()
    endless.page = lambda *args: {"items": [], "next": "again"}
    with pytest.raises(HistoryRefused, match="did not end after 3 pages"):
        list(endless.pages("jobs", 0, None, None, None))
