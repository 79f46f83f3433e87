"""The admin HTTP resource over a real collection and server, on a Clock (no sockets)."""

import json

import pytest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from kestrel.admin import loopback_unless_named
from kestrel.admin.http import DASHBOARD, AdminResource
from kestrel.config import load_config
from kestrel.status import Status
from kestrel.test.support import ServerHarness


class Response:
    def __init__(self, request: DummyRequest, body: bytes):
        self.code = request.responseCode or 200
        self.headers = request.responseHeaders
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self):
        assert self.header("content-type") == "application/json"
        return json.loads(self.body)


def call(resource: AdminResource, method: str, path: str, headers: dict | None = None, **args) -> Response:
    request = DummyRequest(path.strip("/").split("/"))
    request.method = method.encode()
    request.path = path.encode()
    request.uri = path.encode()
    request.args = {name.encode(): [value.encode()] for name, value in args.items()}
    for name, value in (headers or {}).items():
        request.requestHeaders.addRawHeader(name, value)
    return Response(request, resource.render(request))


@pytest.fixture
def kestrel(harness, tmp_path) -> ServerHarness:
    return ServerHarness(harness, status_file=str(tmp_path / "status"))


@pytest.fixture
def admin(kestrel) -> AdminResource:
    return AdminResource(kestrel.server)


def test_ping(admin):
    response = call(admin, "GET", "/ping")
    assert (response.code, response.body) == (200, b"pong\n")
    assert call(admin, "GET", "/ping.json").json() == {"response": "pong"}


def test_stats_json_has_global_and_queue_stats(admin, kestrel):
    kestrel.add("jobs", b"one", b"two")
    stats = call(admin, "GET", "/stats.json").json()
    assert stats["server"]["total_items"] == 2
    assert stats["server"]["uptime"] == 0
    assert stats["queues"]["jobs"]["items"] == 2
    assert list(stats["queues"]["jobs"])[:3] == ["items", "bytes", "total_items"]
    assert call(admin, "GET", "/stats").json() == stats


def test_stats_text_uses_the_memcache_names(admin, kestrel):
    kestrel.add("jobs", b"one")
    lines = call(admin, "GET", "/stats.txt").body.decode().splitlines()
    assert lines[0] == "uptime 0"
    assert "curr_items 1" in lines
    assert "queue_jobs_items 1" in lines
    assert "queue_jobs_bytes 3" in lines


def test_stats_for_named_queues_only(admin, kestrel):
    kestrel.add("jobs", b"one")
    kestrel.add("other", b"two")
    assert call(admin, "GET", "/stats.json", queue="jobs").json() == {
        "queues": {"jobs": dict(kestrel.collection.queue("jobs").stats())}
    }
    lines = call(admin, "GET", "/stats.txt", queue="jobs").body.decode().splitlines()
    assert lines[0] == "queue_jobs_items 1"
    assert all(line.startswith("queue_jobs_") for line in lines)


def test_stats_for_an_unknown_queue_is_a_404_and_creates_nothing(admin, kestrel):
    response = call(admin, "GET", "/stats.json", queue="nope")
    assert response.code == 404
    assert response.json() == {"error": "no such queue: nope"}
    assert "nope" not in kestrel.collection


def test_server_info(kestrel):
    admin = AdminResource(kestrel.server)
    kestrel.clock.advance(42)
    assert call(admin, "GET", "/server_info").json()["listeners"] == {}
    kestrel.server.listeners = lambda: [("memcache", "127.0.0.1:22133")]
    info = call(admin, "GET", "/server_info").json()
    assert info["version"] == kestrel.server.version
    assert info["uptime"] == 42
    assert info["queue_path"] == kestrel.harness.directory
    assert info["status"] == "Up"
    assert info["listeners"] == {"memcache": "127.0.0.1:22133"}


def test_metrics_are_the_prometheus_text_format(admin, kestrel):
    kestrel.add("jobs", b"one")
    response = call(admin, "GET", "/metrics")
    assert response.header("content-type").startswith("text/plain; version=")
    assert b'kestrel_queue_items{queue="jobs"} 1.0' in response.body


def test_latency_json_has_every_histogram(admin, kestrel):
    latencies = kestrel.server.latencies
    latencies.set.observe(0.0002)
    latencies.set.observe(0.0002)
    latencies.delivery.observe(7200.0)
    latencies.fsync_delay.observe(120.0)  # beyond the last bound
    report = call(admin, "GET", "/latency.json").json()
    assert list(report) == ["set", "get_hit", "get_miss", "delivery", "fsync_delay"]
    histogram = report["set"]
    assert histogram["bounds"] == list(latencies.set.bounds)
    assert len(histogram["counts"]) == len(histogram["bounds"]) + 1
    assert histogram["counts"][histogram["bounds"].index(0.00025)] == 2
    assert (histogram["count"], histogram["sum"]) == (2, pytest.approx(0.0004))
    assert histogram["description"].startswith("Time to answer a set")
    assert report["delivery"]["counts"][report["delivery"]["bounds"].index(21600.0)] == 1
    assert report["fsync_delay"]["counts"][-1] == 1
    assert report["get_hit"]["count"] == 0


def test_the_dashboard_page_is_served_at_the_root(admin):
    response = call(admin, "GET", "/")
    assert response.code == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("content-security-policy").startswith("default-src 'self'")
    assert response.header("x-content-type-options") == "nosniff"
    page = response.body.decode()
    assert '<script type="module" src="/dashboard/dashboard.js"></script>' in page
    # Its script is a file of its own: the policy allows no inline script.
    assert "<script>" not in page and "onload=" not in page


@pytest.mark.parametrize("asset, content_type", [
    ("dashboard.js", "text/javascript; charset=utf-8"),
    ("dashboard.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
])
def test_the_dashboard_assets(admin, asset, content_type):
    response = call(admin, "GET", f"/dashboard/{asset}")
    assert (response.code, response.header("content-type")) == (200, content_type)
    assert response.body == (DASHBOARD / asset).read_bytes()


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/index.html", "/dashboard/../http.py", "/index.html"])
def test_only_the_known_dashboard_files_are_served(admin, path):
    response = call(admin, "GET", path)
    assert response.code == 404
    assert response.json() == {"error": f"no such endpoint: {path}"}


def test_the_dashboard_is_read_only(admin):
    response = call(admin, "POST", "/")
    assert response.code == 405
    assert response.header("allow") == "GET, HEAD"


def test_unknown_path_is_a_json_404(admin):
    response = call(admin, "GET", "/nothing/here")
    assert response.code == 404
    assert response.json() == {"error": "no such endpoint: /nothing/here"}


@pytest.mark.parametrize("path", ["/reload", "/shutdown", "/quiesce", "/rewind"])
def test_get_on_a_control_path_is_a_405(admin, kestrel, path):
    response = call(admin, "GET", path)
    assert response.code == 405
    assert response.header("allow") == "POST"
    assert "error" in response.json()
    assert kestrel.shutdowns == 0 and kestrel.server.status.current is Status.UP


def test_get_cannot_change_the_status(admin, kestrel):
    response = call(admin, "GET", "/status", set="readonly")
    assert response.code == 405
    assert response.header("allow") == "POST"
    assert kestrel.server.status.current is Status.UP


def test_post_on_a_read_path_is_a_405(admin):
    response = call(admin, "POST", "/stats.json")
    assert response.code == 405
    assert response.header("allow") == "GET, HEAD"


def test_status_set_and_read(admin, kestrel):
    assert call(admin, "GET", "/status").json() == {"status": "Up", "readable": True, "writable": True}
    response = call(admin, "POST", "/status", set="readonly")
    assert response.json() == {"status": "ReadOnly"}
    assert not kestrel.server.status.writable
    assert call(admin, "GET", "/status").json() == {"status": "ReadOnly", "readable": True, "writable": False}


@pytest.mark.parametrize(
    "args, message",
    [({}, "name one status"), ({"set": "spongebob"}, "unknown status: spongebob"), ({"set": "down"}, "cannot be set")],
)
def test_bad_status_changes_are_400s(admin, kestrel, args, message):
    response = call(admin, "POST", "/status", **args)
    assert response.code == 400
    assert message in response.json()["error"]
    assert kestrel.server.status.current is Status.UP


def test_status_without_a_status_file_is_a_409(harness):
    admin = AdminResource(ServerHarness(harness).server)
    response = call(admin, "POST", "/quiesce")
    assert response.code == 409
    assert "status_file" in response.json()["error"]


def test_quiesce_refuses_reads_and_writes(admin, kestrel):
    response = call(admin, "POST", "/quiesce")
    assert response.json() == {"status": "Quiescent"}
    assert not kestrel.server.status.readable and not kestrel.server.status.writable


def test_shutdown_starts_a_clean_shutdown(admin, kestrel):
    response = call(admin, "POST", "/shutdown")
    assert response.code == 202
    kestrel.clock.advance(1)
    assert kestrel.shutdowns == 1


def test_control_from_a_web_page_is_refused(admin, kestrel):
    response = call(admin, "POST", "/shutdown", headers={"Origin": "http://example.com"})
    assert response.code == 403
    kestrel.clock.advance(1)
    assert kestrel.shutdowns == 0


def test_reload_changes_live_queue_settings(harness, tmp_path):
    config_path = tmp_path / "kestrel.conf"
    config_path.write_text(f'[server]\nqueue_path = "{harness.directory}"\n')
    kestrel = ServerHarness(harness, config=load_config(str(config_path)))
    admin = AdminResource(kestrel.server)
    kestrel.add("jobs", b"one")
    config_path.write_text(f'[server]\nqueue_path = "{harness.directory}"\n[queues.jobs]\nmax_items = 1\n')
    response = call(admin, "POST", "/reload")
    assert response.json() == {"response": "reloaded", "config_path": str(config_path)}
    assert kestrel.collection.queue("jobs").config.max_items == 1
    assert not kestrel.collection.add("jobs", b"two")


def test_a_broken_config_leaves_everything_as_it_was(harness, tmp_path):
    config_path = tmp_path / "kestrel.conf"
    config_path.write_text(f'[server]\nqueue_path = "{harness.directory}"\n')
    kestrel = ServerHarness(harness, config=load_config(str(config_path)))
    config_path.write_text("[server\n")
    response = call(AdminResource(kestrel.server), "POST", "/reload")
    assert response.code == 409
    assert str(config_path) in response.json()["error"]


def test_reload_without_a_config_file_is_a_409(admin):
    response = call(admin, "POST", "/reload")
    assert response.code == 409
    assert "no config file" in response.json()["error"]


@pytest.mark.parametrize(
    "description, bound",
    [
        ("tcp:2223", "tcp:2223:interface=127.0.0.1"),
        ("TCP:2223:backlog=5", "TCP:2223:backlog=5:interface=127.0.0.1"),
        ("tcp6:2223", r"tcp6:2223:interface=\:\:1"),
        ("tcp:2223:interface=0.0.0.0", "tcp:2223:interface=0.0.0.0"),
        ("unix:/run/kestrel-admin.sock", "unix:/run/kestrel-admin.sock"),
        ("", ""),
    ],
)
def test_operator_services_bind_to_loopback_unless_told_otherwise(description, bound):
    assert loopback_unless_named(description) == bound


def test_a_failing_endpoint_is_a_json_500(admin, kestrel, captured_logs):
    def broken():
        raise RuntimeError("boom")

    # global_stats asks the listeners for their addresses.
    kestrel.server.listeners = broken
    response = call(admin, "GET", "/stats.json")
    assert response.code == 500
    assert "error" in response.json()
    assert any("admin request /stats.json failed" in message for message in captured_logs.messages())


# Rewind


@pytest.mark.parametrize(
    "args, words",
    [
        ({"since": "0"}, "give queue once"),
        ({"queue": "jobs"}, "give since once"),
        ({"queue": "jobs", "since": "yesterday"}, "since: expected epoch milliseconds or an RFC 3339 time"),
        ({"queue": "jobs", "since": "0", "until": "2026-12-02T22:30:00"}, "until: expected"),
        ({"queue": "jobs", "since": "10", "until": "9"}, "until is before since"),
    ],
)
def test_a_rewind_with_bad_parameters_is_a_400(admin, kestrel, args, words):
    kestrel.add("jobs", b"one")
    response = call(admin, "POST", "/rewind", **args)
    assert response.code == 400
    assert words in response.json()["error"]


def test_a_rewind_of_no_queue_is_a_404(harness, tmp_path):
    kestrel = ServerHarness(harness, aliases={"everything": ("jobs",)})
    admin = AdminResource(kestrel.server)
    kestrel.add("jobs", b"one")
    for name in ("nothing", "everything"):
        response = rewind(kestrel, admin, queue=name, since="0")
        assert (response.code, response.json()) == (404, {"error": f"no such queue: {name}"})


def test_a_rewind_from_a_web_page_is_refused(admin, kestrel):
    kestrel.add("jobs", b"one")
    response = call(admin, "POST", "/rewind", headers={"Origin": "http://example.com"}, queue="jobs", since="0")
    assert response.code == 403


def rewind(kestrel: ServerHarness, admin: AdminResource, **args) -> Response:
    """A POST /rewind, answered once the engine's Deferred has fired (the writer settled)."""
    request = DummyRequest([b"rewind"])
    request.method, request.path, request.uri = b"POST", b"/rewind", b"/rewind"
    request.args = {name.encode(): [value.encode()] for name, value in args.items()}
    assert admin.render(request) == NOT_DONE_YET
    kestrel.settle()
    assert request.finished
    return Response(request, b"".join(request.written))


@pytest.fixture
def retained(harness) -> ServerHarness:
    return ServerHarness(harness, queue_overrides={"jobs": {"retain": 3600.0}})


def test_a_rewind_puts_each_item_of_the_window_back_once_in_order(retained):
    admin = AdminResource(retained.server)
    retained.add("jobs", b"one", b"two")
    retained.clock.advance(1)
    retained.add("jobs", b"three")
    assert retained.contents("jobs") == [b"one", b"two", b"three"]
    since = int(retained.clock.seconds() * 1000) - 1000
    response = rewind(retained, admin, queue="jobs", since=str(since), until=str(since + 1000))
    assert (response.code, response.json()) == (200, {"queue": "jobs", "rewound": 2})
    assert retained.contents("jobs") == [b"one", b"two"]
    # The copies are items added now, marked as a rewind's: a window up to now passes them by.
    assert rewind(retained, admin, queue="jobs", since="1970-01-01T00:00:00Z").json() == {"queue": "jobs", "rewound": 3}
    assert retained.contents("jobs") == [b"one", b"two", b"three"]


def test_a_rewind_of_a_queue_without_retain_is_a_409(admin, kestrel):
    kestrel.add("plain", b"one")
    response = rewind(kestrel, admin, queue="plain", since="0")
    assert (response.code, response.json()) == (409, {"error": "queue plain keeps no history to rewind: its retain setting is off"})
