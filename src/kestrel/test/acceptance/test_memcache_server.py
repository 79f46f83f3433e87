"""Spec 6.1: the memcache protocol against a real `twistd kestrel` process."""

import os
import signal
import subprocess
import threading
import time

import memcache
import pymemcache.client.base
import pytest
import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.protocols.memcache import MemCacheProtocol

from kestrel.load.process import TWISTD, RawClient, wait_until


def queue_stat(client: RawClient, queue: str, key: str) -> int:
    return int(client.stats()[f"queue_{queue}_{key}"])


def test_get_set_get(kestrel):
    client = kestrel.client()
    assert client.get("basic") is None
    assert client.set("basic", b"hello") == b"STORED"
    assert client.get("basic") == b"hello"
    assert client.get("basic") is None


def test_absolute_exptime_in_the_past_expires_and_zero_does_not(kestrel):
    client = kestrel.client()
    assert client.set("expiry", b"old", exptime=int(time.time()) - 1) == b"STORED"
    assert client.set("expiry", b"new", exptime=0) == b"STORED"
    assert client.get("expiry") == b"new"


def test_binary_values_round_trip_exactly(kestrel):
    client = kestrel.client()
    payloads = [bytes(range(256)), b"\r\n" * 50, b"END\r\nVALUE x 0 1\r\n", os.urandom(70000)]
    for payload in payloads:
        assert client.set("binary", payload) == b"STORED"
    for payload in payloads:
        assert client.get("binary") == payload


def test_commit_removes_the_item_for_good(kestrel):
    client, reader = kestrel.client(), kestrel.client()
    client.set("commit", b"job")
    stats = client.stats()
    assert (stats["queue_commit_items"], stats["queue_commit_total_items"], stats["queue_commit_bytes"]) == ("1", "1", "3")
    assert reader.get("commit/open") == b"job"
    stats = client.stats()
    assert (stats["queue_commit_items"], stats["queue_commit_open_transactions"], stats["queue_commit_bytes"]) == ("0", "1", "0")
    assert reader.get("commit/close") is None
    assert queue_stat(client, "commit", "open_transactions") == 0
    reader.close()
    assert wait_until(lambda: client.stats()["curr_connections"] == "1")
    assert queue_stat(client, "commit", "items") == 0


def test_abort_puts_the_item_back(kestrel):
    client = kestrel.client()
    client.set("abort", b"job")
    assert client.get("abort/open") == b"job"
    assert client.get("abort/abort") is None
    stats = client.stats()
    assert (stats["queue_abort_items"], stats["queue_abort_open_transactions"], stats["queue_abort_bytes"]) == ("1", "0", "3")


def test_disconnect_rolls_back_an_open_read(kestrel):
    client, reader, other = kestrel.client(), kestrel.client(), kestrel.client()
    client.set("auto-rollback", b"job")
    assert reader.get("auto-rollback/open") == b"job"
    assert other.get("auto-rollback") is None
    reader.close()
    assert wait_until(lambda: queue_stat(client, "auto-rollback", "items") == 1)
    assert queue_stat(client, "auto-rollback", "open_transactions") == 0
    assert other.get("auto-rollback/open") == b"job"


def test_item_goes_to_the_next_waiter_when_the_first_one_left(kestrel):
    first, second, producer = kestrel.client(), kestrel.client(), kestrel.client()
    first.send(b"get slow/open/t=5000\r\n")
    second.send(b"get slow/open/t=5000\r\n")
    assert wait_until(lambda: queue_stat(producer, "slow", "waiters") == 2)
    first.close()
    assert wait_until(lambda: queue_stat(producer, "slow", "waiters") == 1)
    producer.set("slow", b"item")
    assert second.read_value("slow/open/t=5000") == b"item"


def test_open_read_is_handed_over_when_its_holder_leaves_during_another_wait(kestrel):
    holder, producer, other = kestrel.client(), kestrel.client(), kestrel.client()
    producer.set("slow", b"item")
    assert holder.get("slow/open") == b"item"
    holder.send(b"get slower/open/t=5000\r\n")
    holder.close()
    other.send(b"get slow/open/t=5000\r\n")
    assert other.read_value("slow/open/t=5000") == b"item"


def test_long_poll_is_cancelled_by_disconnect(kestrel):
    client, observer = kestrel.client(), kestrel.client()
    client.send(b"get slow/open/t=3599000\r\n")
    assert wait_until(lambda: queue_stat(observer, "slow", "waiters") == 1)
    client.close()
    assert wait_until(lambda: queue_stat(observer, "slow", "waiters") == 0)


def test_close_open_cycles_and_rollback_of_the_last(kestrel):
    client = kestrel.client()
    for value in (b"1", b"2", b"3"):
        client.set("cycles", value)
    reader = kestrel.client()
    assert reader.get("cycles/open") == b"1"
    assert reader.get("cycles/close/open") == b"2"
    assert reader.get("cycles/close/open") == b"3"
    reader.close()
    assert wait_until(lambda: queue_stat(client, "cycles", "items") == 1)
    assert client.get("cycles") == b"3"
    stats = client.stats()
    assert (stats["queue_cycles_total_items"], stats["queue_cycles_items"]) == ("3", "0")


def test_age_stat_exists_after_a_get(kestrel):
    client = kestrel.client()
    client.set("test_age", b"x")
    client.get("test_age")
    assert "queue_test_age_age" in client.stats()


def test_peek_leaves_the_item(kestrel):
    client = kestrel.client()
    client.set("testy", b"look")
    assert client.request("get testy/peek/open").startswith(b"CLIENT_ERROR")
    assert client.closed_by_server()
    client = kestrel.client()
    for _ in range(3):
        assert client.get("testy/peek") == b"look"
    assert client.get("testy") == b"look"
    assert client.get("testy") is None


def test_journal_sizes_and_compaction(make_server, tmp_path):
    kestrel = make_server(queues='[queues.big]\nmax_journal_size = "16KB"\n')
    journal = tmp_path / "spool" / "big"
    client = kestrel.client()

    def journal_size_becomes(size):
        return wait_until(lambda: journal.exists() and journal.stat().st_size == size)

    client.set("big", b"x" * 8192)
    assert journal_size_becomes(8213)
    assert client.get("big") == b"x" * 8192
    assert journal_size_becomes(8214)
    assert client.get("big") is None
    assert journal_size_becomes(8214)
    client.set("big", b"y" * 8192)
    assert journal_size_becomes(16427)
    assert client.get("big") == b"y" * 8192
    assert journal_size_becomes(0)
    assert sorted(os.listdir(tmp_path / "spool")) == ["big"]


def test_stats_has_the_global_keys(kestrel):
    stats = kestrel.client().stats()
    for key in (
        "bytes time cmd_get version bytes_written cmd_set get_misses total_connections "
        "curr_connections curr_items uptime get_hits total_items bytes_read"
    ).split():
        assert key in stats


def test_unknown_command_is_refused_and_closed(kestrel):
    client = kestrel.client()
    client.send(b"add cheese 0 0 5\r\nswiss\r\n")
    assert client.line().startswith(b"CLIENT_ERROR")
    assert client.closed_by_server()


def test_item_survives_reconnect(kestrel):
    client = kestrel.client()
    client.set("reconnect", b"kept")
    client.close()
    assert kestrel.client().get("reconnect") == b"kept"


def test_relative_expiry_counts(kestrel):
    client = kestrel.client()
    client.set("q1", b"a", exptime=1)
    client.set("q2", b"a", exptime=1)
    client.set("q2", b"b", exptime=1)
    client.set("q3", b"a", exptime=1)
    stats = client.stats()
    assert (stats["queue_q1_items"], stats["queue_q2_items"], stats["queue_q3_items"]) == ("1", "2", "1")


def test_alias_and_reload(make_server, tmp_path):
    kestrel = make_server(queues='[queues.weather_updates]\nmax_items = 1500000\n\n[aliases]\nwx_updates = ["weather_updates"]\n')
    client = kestrel.client()
    assert client.set("wx_updates", b"sunny") == b"STORED"
    assert client.get("weather_updates") == b"sunny"
    assert client.get("wx_updates") is None
    config = tmp_path / "kestrel.conf"
    config.write_text(
        config.read_text()
        .replace('wx_updates = ["weather_updates"]', 'wx_updates = ["weather_updates", "starship"]')
        .replace("[queues.weather_updates]\nmax_items = 1500000", "[queues.weather_updates]\nmax_items = 1")
    )
    assert client.request("reload") == b"Reloaded config."
    assert client.set("wx_updates", b"rainy") == b"STORED"
    assert client.get("weather_updates") == b"rainy"
    assert client.get("starship") == b"rainy"
    client.set("weather_updates", b"one")
    assert client.set("weather_updates", b"two") == b"NOT_STORED"


def test_sighup_reloads(make_server, tmp_path):
    kestrel = make_server(queues="[queues.limited]\nmax_items = 1\n")
    client = kestrel.client()
    client.set("limited", b"1")
    assert client.set("limited", b"2") == b"NOT_STORED"
    config = tmp_path / "kestrel.conf"
    config.write_text(config.read_text().replace("max_items = 1\n", "max_items = 5\n"))
    kestrel.signal(signal.SIGHUP)
    assert wait_until(lambda: client.set("limited", b"3") == b"STORED")


def test_pipelined_requests_are_answered_in_order(kestrel):
    client = kestrel.client()
    requests = b"".join(b"set pipe 0 0 2\r\n%02d\r\n" % i for i in range(50))
    requests += b"get pipe/t=100\r\n" * 51 + b"version\r\n"
    client.send(requests)
    assert [client.line() for _ in range(50)] == [b"STORED"] * 50
    assert [client.read_value("pipe/t=100") for _ in range(50)] == [b"%02d" % i for i in range(50)]
    assert client.read_value("pipe/t=100") is None
    assert client.line().startswith(b"VERSION ")


def test_restart_keeps_items_and_rolls_back_open_reads(kestrel):
    client = kestrel.client()
    for value in (b"a", b"b", b"c"):
        client.set("kept", value)
    assert client.get("kept/open") == b"a"
    assert client.get("kept/close") is None
    assert client.get("kept/open") == b"b"
    kestrel.restart()
    client = kestrel.client()
    assert [client.get("kept") for _ in range(3)] == [b"b", b"c", None]


def test_kill_9_loses_no_acknowledged_item(make_server):
    kestrel = make_server(queues='[queues.durable]\nsync_journal = "0"\n')
    acknowledged: list[list[bytes]] = [[] for _ in range(4)]
    stop = threading.Event()

    def produce(worker: int) -> None:
        client = kestrel.client()
        try:
            for n in range(100000):
                value = b"%d-%06d" % (worker, n)
                if stop.is_set() or client.set("durable", value) != b"STORED":
                    return
                acknowledged[worker].append(value)
        except OSError:
            return

    producers = [threading.Thread(target=produce, args=(worker,)) for worker in range(4)]
    for producer in producers:
        producer.start()
    assert wait_until(lambda: sum(map(len, acknowledged)) >= 2000, timeout=30)
    kestrel.kill()
    stop.set()
    for producer in producers:
        producer.join(10)
    kestrel.start()
    client = kestrel.client()
    recovered = []
    while (value := client.get("durable")) is not None:
        recovered.append(value)
    for worker, values in enumerate(acknowledged):
        from_worker = [value for value in recovered if value.startswith(b"%d-" % worker)]
        # Everything acknowledged is there, in order; at most the one unacknowledged set after it.
        assert from_worker[: len(values)] == values
        assert len(from_worker) - len(values) <= 1


def test_python_memcached_client(kestrel):
    client = memcache.Client([f"127.0.0.1:{kestrel.memcache_port}"])
    assert client.set("pm", "value")
    assert client.get("pm/open") == b"value"
    assert client.get("pm/close") is None
    assert client.get("pm") is None


def test_pymemcache_client(kestrel):
    client = pymemcache.client.base.Client(("127.0.0.1", kestrel.memcache_port))
    assert client.set("pymc", b"one", noreply=False)
    client.set("pymc", b"two", noreply=True)
    assert client.get("pymc") == b"one"
    assert client.get("pymc/t=100/open") == b"two"
    assert client.get("pymc/close") is None
    assert client.get("pymc/t=10") is None


@pytest_twisted.inlineCallbacks
def test_twisted_memcache_client(kestrel):
    connection = yield protocol.ClientCreator(reactor, MemCacheProtocol).connectTCP("127.0.0.1", kestrel.memcache_port)
    try:
        assert (yield connection.set(b"tx", b"one"))
        assert (yield connection.set(b"tx", b"two"))
        assert (yield connection.get(b"tx")) == (0, b"one")
        assert (yield connection.get(b"tx/t=100/open")) == (0, b"two")
        assert (yield connection.get(b"tx/close")) == (0, None)
    finally:
        connection.transport.loseConnection()


def test_help_lists_the_options():
    output = subprocess.run([TWISTD, "kestrel", "--help"], capture_output=True, text=True).stdout
    assert "--config" in output


@pytest.mark.parametrize(
    "config_text, message",
    [
        (None, "no such file"),
        ("[server]\nqueue_path = 5\n", "[server] queue_path"),
        ('[server]\nqueue_path = "q"\n[queues.jobs]\nmax_items = "ten"\n', "[queues.jobs] max_items"),
    ],
)
def test_bad_config_stops_the_start_with_one_line(tmp_path, config_text, message):
    config = tmp_path / "kestrel.conf"
    if config_text is not None:
        config.write_text(config_text)
    result = subprocess.run([TWISTD, "-n", "--pidfile=", "kestrel", "-c", str(config)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_shutdown_command_drains_the_journal_and_exits(kestrel):
    client = kestrel.client()
    for n in range(100):
        client.set("drained", b"%d" % n)
    waiting = kestrel.client()
    waiting.send(b"get never_filled/t=60000\r\n")
    client.send(b"shutdown\r\n")
    assert client.closed_by_server()
    assert waiting.read_value("never_filled/t=60000") is None
    assert kestrel.process.wait(30) == 0
    kestrel.start()
    client = kestrel.client()
    assert [client.get("drained") for _ in range(100)] == [b"%d" % n for n in range(100)]


def test_oversized_requests_are_refused_without_harming_others(make_server):
    kestrel = make_server(server='max_value_size = "1KB"\nmax_line_length = 100')
    bystander = kestrel.client()
    bystander.set("calm", b"still here")
    for request in (b"set big 0 0 2048\r\n", b"get " + b"x" * 200 + b"\r\n"):
        offender = kestrel.client()
        offender.send(request)
        assert offender.line().startswith(b"CLIENT_ERROR")
        assert offender.closed_by_server()
    assert bystander.get("calm") == b"still here"
