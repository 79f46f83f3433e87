"""Server status and connection rules of doc/compatibility.md §3.8 on a real server, driven through the admin service."""

import time

from kestrel.load.process import wait_until


def can_write(kestrel) -> bool:
    return kestrel.client().set("probe", b"x") == b"STORED"


def test_write_avoid_still_serves_everything(kestrel):
    assert kestrel.admin("POST", "/status?set=writeavoid").json() == {"status": "WriteAvoid"}
    client = kestrel.client()
    assert client.set("jobs", b"one") == b"STORED"
    assert client.get("jobs") == b"one"


def test_read_only_refuses_writes_and_serves_reads(kestrel):
    kestrel.client().set("jobs", b"one")
    kestrel.admin("POST", "/status?set=readonly")
    client = kestrel.client()
    assert client.get("jobs") == b"one"
    for request in ("flush jobs", "delete jobs", "flush_all"):
        refused = kestrel.client()
        assert refused.request(request).startswith(b"SERVER_ERROR ")
        assert refused.closed_by_server()


def test_a_stricter_status_is_enforced_after_the_grace_period(make_server):
    kestrel = make_server('status_change_grace_period = "300ms"')
    started = time.monotonic()
    assert kestrel.admin("POST", "/status?set=readonly").json() == {"status": "ReadOnly"}
    # Reported at once, enforced later: clients have time to move to another server.
    assert kestrel.admin("GET", "/status").json()["status"] == "ReadOnly"
    assert can_write(kestrel) or time.monotonic() - started >= 0.3
    assert wait_until(lambda: not can_write(kestrel))
    # Loosening takes effect at once.
    kestrel.admin("POST", "/status?set=up")
    assert can_write(kestrel)


def test_connections_beyond_the_limits_may_not_write_or_read(make_server):
    kestrel = make_server("connection_limit_refuse_writes = 1\nconnection_limit_refuse_reads = 2")
    first, second, third = kestrel.client(), kestrel.client(), kestrel.client()
    assert first.set("jobs", b"one") == b"STORED"
    assert second.get("jobs") == b"one"
    assert second.set("jobs", b"two").startswith(b"SERVER_ERROR ")
    assert third.request("get jobs").startswith(b"SERVER_ERROR ")
    # A session keeps the rules it was opened with: the first may still do everything.
    assert first.set("jobs", b"three") == b"STORED"
    assert first.get("jobs") == b"three"


def test_idle_connections_are_closed_after_client_timeout(make_server):
    kestrel = make_server('client_timeout = "300ms"')
    idle = kestrel.client()
    waiting = kestrel.client()
    # A blocking read is not idle: it outlives the timeout.
    waiting.send(b"get jobs/t=600\r\n")
    assert idle.closed_by_server(timeout=5)
    assert waiting.line() == b"END"
    assert kestrel.admin("GET", "/stats.json").json()["server"]["curr_connections"] == 1
