"""Spec 6.2 (Kestrel's MemcacheHandlerSpec) against a real `twistd kestrel` process."""

import time

import pytest

from kestrel.load.process import RawClient, wait_until


@pytest.fixture
def kestrel(make_server):
    return make_server(server="max_open_transactions = 10")


def open_transactions(client: RawClient, queue: str) -> int:
    return int(client.stats()[f"queue_{queue}_open_transactions"])


def test_close_open_confirms_the_open_read_and_opens_the_next(kestrel):
    client = kestrel.client()
    client.set("test", b"first")
    client.set("test", b"state shirt")
    assert client.get("test/open") == b"first"
    client.send(b"get test/close/open\r\n")
    assert client.line() == b"VALUE test/close/open 0 11"
    assert client.exactly(13) == b"state shirt\r\n"
    assert client.line() == b"END"
    assert open_transactions(client, "test") == 1
    assert int(client.stats()["queue_test_items"]) == 0


def test_close_open_with_a_timeout_waits_for_a_later_item(kestrel):
    client, producer = kestrel.client(), kestrel.client()
    client.set("test", b"held")
    assert client.get("test/open") == b"held"
    client.send(b"get test/t=5000/close/open\r\n")
    assert wait_until(lambda: int(producer.stats()["queue_test_waiters"]) == 1)
    assert open_transactions(producer, "test") == 0
    producer.set("test", b"late")
    assert client.read_value("test/t=5000/close/open") == b"late"


def test_close_open_with_a_timeout_times_out_to_end(kestrel):
    client = kestrel.client()
    client.set("test", b"held")
    assert client.get("test/open") == b"held"
    started = time.monotonic()
    assert client.get("test/t=300/close/open") is None
    assert time.monotonic() - started >= 0.25
    assert open_transactions(client, "test") == 0


def test_close_open_on_an_empty_queue_leaves_nothing_open(kestrel):
    client = kestrel.client()
    assert client.get("test/close/open") is None
    assert open_transactions(client, "test") == 0


def test_abort_returns_the_item(kestrel):
    client = kestrel.client()
    client.set("test", b"item")
    assert client.get("test/open") == b"item"
    assert client.get("test/abort") is None
    assert open_transactions(client, "test") == 0
    assert client.get("test") == b"item"


@pytest.mark.parametrize(
    "key", ["test/open/peek", "test/close/peek", "test/open/abort", "test/close/abort", "test/peek/abort", "/close/open"]
)
def test_forbidden_option_combinations(kestrel, key):
    client = kestrel.client()
    assert client.request(f"get {key}").startswith(b"CLIENT_ERROR ")
    assert client.closed_by_server()


@pytest.mark.parametrize("key", ["test/t=500", "test", "test/peek"])
def test_plain_reads_open_nothing(kestrel, key):
    client = kestrel.client()
    client.set("test", b"item")
    assert client.get(key) == b"item"
    assert open_transactions(client, "test") == 0


def test_monitor_streams_ready_items(kestrel):
    client = kestrel.client()
    for value in (b"a", b"b", b"c"):
        client.set("test", value)
    client.send(b"monitor test 100 3\r\n")
    assert [client.read_value("test") for _ in range(3)] == [b"a", b"b", b"c"]
    assert client.line() == b"END"
    assert open_transactions(client, "test") == 3
    assert client.request("confirm test 3") == b"END"


def test_monitor_ends_at_its_timeout(kestrel):
    client = kestrel.client()
    for value in (b"a", b"b", b"c"):
        client.set("test", value)
    started = time.monotonic()
    client.send(b"monitor test 1 5\r\n")
    assert [client.read_value("test") for _ in range(3)] == [b"a", b"b", b"c"]
    assert client.line() == b"END"
    assert time.monotonic() - started >= 0.9


def test_monitor_stops_at_the_open_read_limit(kestrel):
    client = kestrel.client()
    for n in range(12):
        client.set("test", b"%d" % n)
    for n in range(9):
        assert client.get("test/open") == b"%d" % n
    client.send(b"monitor test 100 2\r\n")
    assert client.read_value("test") == b"9"
    assert client.line() == b"END"


def test_confirm_counts(kestrel):
    client = kestrel.client()
    for value in (b"a", b"b", b"c"):
        client.set("test", value)
    for value in (b"a", b"b", b"c"):
        assert client.get("test/open") == value
    assert client.request("confirm test 2") == b"END"
    assert open_transactions(client, "test") == 1
    assert client.request("confirm test 2") == b"ERROR"
    assert client.request("confirm test 1") == b"END"
    assert open_transactions(client, "test") == 0


def test_simple_commands(kestrel):
    client = kestrel.client()
    client.send(b"set test 0 0 5\r\nhello\r\n")
    assert client.line() == b"STORED"
    assert client.request("delete test") == b"DELETED"
    assert client.request("flush test") == b"END"
    assert client.request("version").startswith(b"VERSION ")


def test_status_commands(kestrel):
    client = kestrel.client()
    assert client.request("status") == b"UP"
    assert client.request("status readonly") == b"END"
    assert client.request("status") == b"READONLY"
    assert client.get("test") is None
    assert client.set("test", b"x").startswith(b"SERVER_ERROR ")
    assert client.closed_by_server()
    client = kestrel.client()
    assert client.request("status spongebob").startswith(b"CLIENT_ERROR ")
    client = kestrel.client()
    assert client.request("status quiescent") == b"END"
    assert client.request("get test").startswith(b"SERVER_ERROR ")
    client = kestrel.client()
    assert client.request("status up") == b"END"
    assert client.set("test", b"x") == b"STORED"


def test_status_survives_a_restart(kestrel):
    kestrel.client().request("status readonly")
    kestrel.restart()
    assert kestrel.client().request("status") == b"READONLY"


def test_status_without_a_status_file_is_an_error(make_server):
    client = make_server(status_file=False).client()
    assert client.request("status") == b"ERROR"
    assert client.closed_by_server()


def test_nonsense_is_a_client_error(kestrel):
    client = kestrel.client()
    assert client.request("die in a fire").startswith(b"CLIENT_ERROR ")
    assert client.closed_by_server()


def test_a_read_only_shutdown_compacts_the_journals_of_empty_queues(kestrel, tmp_path):
    client = kestrel.client()
    for queue in ("drained", "full"):
        for n in range(20):
            client.set(queue, b"x" * 100)
    for n in range(20):
        client.get("drained")
    assert client.request("status readonly") == b"END"
    kestrel.stop()
    spool = tmp_path / "spool"
    assert (spool / "drained").stat().st_size == 0
    assert (spool / "full").stat().st_size == 20 * 121


def test_a_set_right_after_a_delete_keeps_only_the_new_item(kestrel):
    # Issue 10, defect 1: the set used to recreate the queue from the files the erase had
    # not removed yet (the deleted items came back), and the erase then took the new item.
    client = kestrel.client()
    for _ in range(3):
        assert client.set("race", b"old") == b"STORED"
    time.sleep(0.2)  # the writer thread has written them
    client.send(b"delete race\r\nset race 0 0 3\r\nnew\r\n")
    assert (client.line(), client.line()) == (b"DELETED", b"STORED")
    assert client.get("race") == b"new"
    assert client.set("race", b"newer") == b"STORED"
    client.close()

    kestrel.restart()
    client = kestrel.client()
    assert client.get("race") == b"newer"
    assert client.get("race") is None
