"""The admin HTTP service of a real server: each endpoint, metrics, and the control actions."""

from prometheus_client.parser import text_string_to_metric_families

from kestrel.load.process import wait_until, write_config


def metrics(kestrel) -> dict[tuple[str, tuple], float]:
    response = kestrel.admin("GET", "/metrics")
    assert response.status == 200
    assert response.content_type.startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    }


def test_read_endpoints(kestrel):
    kestrel.client().set("jobs", b"hello")
    ping = kestrel.admin("GET", "/ping")
    assert (ping.status, ping.body) == (200, b"pong\n")
    assert kestrel.admin("GET", "/ping.json").json() == {"response": "pong"}

    stats = kestrel.admin("GET", "/stats.json").json()
    assert stats["server"]["curr_items"] == 1
    assert stats["queues"]["jobs"]["items"] == 1
    only_jobs = kestrel.admin("GET", "/stats.json?queue=jobs").json()
    assert list(only_jobs) == ["queues"] and list(only_jobs["queues"]) == ["jobs"]
    assert only_jobs["queues"]["jobs"]["bytes"] == 5
    text = kestrel.admin("GET", "/stats.txt").body.decode().splitlines()
    assert text[0].startswith("uptime ")
    assert "queue_jobs_bytes 5" in text

    info = kestrel.admin("GET", "/server_info").json()
    assert info["listeners"]["memcache"] == f"127.0.0.1:{kestrel.memcache_port}"
    assert info["listeners"]["admin"] == f"127.0.0.1:{kestrel.admin_port}"
    assert info["config_path"] == str(kestrel.config)
    assert info["status"] == "Up"
    assert kestrel.admin("GET", "/status").json() == {"status": "Up", "readable": True, "writable": True}


def test_refusals_are_json(kestrel):
    missing = kestrel.admin("GET", "/no/such/thing")
    assert missing.status == 404
    assert missing.json() == {"error": "no such endpoint: /no/such/thing"}
    assert kestrel.admin("GET", "/stats.json?queue=nope").status == 404
    for path in ("/reload", "/shutdown", "/quiesce", "/status?set=readonly"):
        refused = kestrel.admin("GET", path)
        assert (refused.status, refused.allow) == (405, "POST")
        assert "error" in refused.json()
    assert kestrel.admin("POST", "/status?set=sideways").status == 400
    assert kestrel.admin("POST", "/shutdown", {"Origin": "http://example.com"}).status == 403
    assert kestrel.admin("GET", "/ping").status == 200


def test_metrics_parse_and_move_after_traffic(kestrel):
    before = metrics(kestrel)
    assert before[("kestrel_commands_total", (("command", "set"),))] == 0
    client = kestrel.client()
    for value in (b"one", b"two", b"three"):
        assert client.set("jobs", value) == b"STORED"
    assert client.get("jobs") == b"one"
    assert client.get("jobs/open") == b"two"
    assert client.get("empty") is None
    # The fsync delay is observed when the writer thread hands a batch back.
    assert wait_until(lambda: metrics(kestrel)[("kestrel_fsync_delay_seconds_count", ())] > 0)
    after = metrics(kestrel)
    jobs = (("queue", "jobs"),)
    assert after[("kestrel_commands_total", (("command", "set"),))] == 3
    assert after[("kestrel_queue_items", jobs)] == 1
    assert after[("kestrel_queue_open_transactions", jobs)] == 1
    assert after[("kestrel_queue_put_items_total", jobs)] == 3
    assert after[("kestrel_queue_get_hits_total", jobs)] == 2
    assert after[("kestrel_queue_journal_bytes", jobs)] > 0
    assert after[("kestrel_set_latency_seconds_count", ())] == 3
    assert after[("kestrel_get_hit_latency_seconds_count", ())] == 2
    assert after[("kestrel_get_miss_latency_seconds_count", ())] == 1
    assert after[("kestrel_delivery_latency_seconds_count", ())] == 2
    assert after[("kestrel_open_connections", ())] == 1


def test_reload_changes_a_live_queue(make_server, tmp_path):
    kestrel = make_server()
    client = kestrel.client()
    assert client.set("jobs", b"one") == b"STORED"
    write_config(tmp_path, queues="[queues.jobs]\nmax_items = 2\n")
    reloaded = kestrel.admin("POST", "/reload")
    assert reloaded.status == 200
    assert reloaded.json()["response"] == "reloaded"
    assert client.set("jobs", b"two") == b"STORED"
    assert client.set("jobs", b"three") == b"NOT_STORED"
    assert metrics(kestrel)[("kestrel_queue_max_items", (("queue", "jobs"),))] == 2


def test_quiesce_refuses_gets_until_the_status_is_up_again(kestrel):
    client = kestrel.client()
    assert client.set("jobs", b"one") == b"STORED"
    assert kestrel.admin("POST", "/quiesce").json() == {"status": "Quiescent"}
    assert client.request("get jobs").startswith(b"SERVER_ERROR ")
    writer = kestrel.client()
    assert writer.set("jobs", b"two").startswith(b"SERVER_ERROR ")
    assert kestrel.client().request("status") == b"QUIESCENT"
    assert kestrel.admin("POST", "/status?set=up").json() == {"status": "Up"}
    assert kestrel.client().get("jobs") == b"one"


def test_a_status_set_over_http_survives_a_restart(kestrel):
    assert kestrel.admin("POST", "/status?set=readonly").json() == {"status": "ReadOnly"}
    kestrel.restart()
    assert kestrel.admin("GET", "/status").json()["status"] == "ReadOnly"
    client = kestrel.client()
    assert client.get("jobs") is None
    assert client.set("jobs", b"x").startswith(b"SERVER_ERROR ")


def test_shutdown_stops_the_server_cleanly(kestrel):
    assert kestrel.client().set("jobs", b"kept") == b"STORED"
    response = kestrel.admin("POST", "/shutdown")
    assert response.status == 202
    assert kestrel.process.wait(10) == 0
    kestrel.start()
    assert kestrel.client().get("jobs") == b"kept"
