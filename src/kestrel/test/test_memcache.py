"""The memcache front end (doc/compatibility.md §1.1 to §1.9, §5) over a real collection and server, on a Clock."""

import os

import pytest
from twisted.internet.testing import StringTransport

from kestrel import PROTOCOL_VERSION, __version__
from kestrel.config import QueueConfig, load_config
from kestrel.protocols import memcache
from kestrel.protocols.memcache import MemcacheProtocol
from kestrel.test.support import (
    START,
    ServerHarness,
    pending_calls,
)

END = b"END\r\n"
ERROR = b"ERROR\r\n"


def value(key: bytes, data: bytes) -> bytes:
    return b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(data), data)


def set_request(name: bytes, data: bytes, flags: bytes = b"0", exptime: bytes = b"0") -> bytes:
    return b"set %s %s %s %d\r\n%s\r\n" % (name, flags, exptime, len(data), data)


class Connection:
    """A MemcacheProtocol on a StringTransport: send bytes in, read what the server wrote."""

    def __init__(self, server):
        self.transport = StringTransport()
        self.protocol = MemcacheProtocol(server)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        """Hand `data` to the protocol; returns everything written since the last read."""
        self.protocol.dataReceived(data)
        return self.written()

    def written(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    def disconnect(self) -> None:
        self.transport.loseConnection()
        self.protocol.connectionLost(None)


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    return ServerHarness(harness, max_open_transactions=10)


def connect(kestrel: ServerHarness) -> Connection:
    return Connection(kestrel.server)


@pytest.fixture
def client(kestrel) -> Connection:
    return connect(kestrel)


def assert_client_error(reply: bytes) -> None:
    assert reply.startswith(b"CLIENT_ERROR ") and reply.endswith(b"\r\n") and reply.count(b"\r\n") == 1


# The commands of 1.2


def test_get_set_get(client):
    assert client.send(b"get jobs\r\n") == END
    assert client.send(b"set jobs 0 0 5\r\nhello\r\n") == b"STORED\r\n"
    assert client.send(b"get jobs\r\n") == value(b"jobs", b"hello")
    assert client.send(b"get jobs\r\n") == END
    assert not client.closed


@pytest.mark.parametrize("command", [b"get", b"gets", b"GET", b"Gets"])
def test_gets_and_any_case_work_like_get(client, command):
    client.send(set_request(b"jobs", b"one"))
    assert client.send(command + b" jobs\r\n") == value(b"jobs", b"one")
    assert client.send(command + b" jobs\r\n") == END


def test_queue_names_keep_their_case(client):
    assert client.send(b"SET Jobs 0 0 1\r\nx\r\n") == b"STORED\r\n"
    assert client.send(b"get jobs\r\n") == END
    assert client.send(b"get Jobs\r\n") == value(b"Jobs", b"x")


def test_only_the_first_key_of_a_get_is_used(client):
    client.send(set_request(b"a", b"1") + set_request(b"b", b"2"))
    assert client.send(b"get a b\r\n") == value(b"a", b"1")
    assert client.send(b"get b\r\n") == value(b"b", b"2")


def test_value_echoes_the_key_exactly_as_sent(client):
    client.send(set_request(b"jobs", b"one") + set_request(b"jobs", b"two"))
    assert client.send(b"get jobs/t=10/open\r\n") == value(b"jobs/t=10/open", b"one")
    assert client.send(b"get jobs/close/open\r\n") == value(b"jobs/close/open", b"two")
    assert client.send(b"get jobs/peek/t=0\r\n") == END


def test_bare_lf_ends_a_request_line(client):
    assert client.send(b"set jobs 0 0 2\nhi\r\nget jobs\n") == b"STORED\r\n" + value(b"jobs", b"hi")


def test_delete_always_replies_deleted(kestrel, client):
    client.send(set_request(b"jobs", b"x"))
    assert client.send(b"delete jobs\r\n") == b"DELETED\r\n"
    assert "jobs" not in kestrel.collection
    assert kestrel.collection.queue_deletes == 1
    assert client.send(b"delete nothing\r\n") == b"DELETED\r\n"
    assert kestrel.collection.queue_deletes == 1
    assert "nothing" not in kestrel.collection


def test_flush_empties_a_queue_and_creates_none(kestrel, client):
    client.send(set_request(b"jobs", b"x") + set_request(b"jobs", b"y"))
    assert client.send(b"flush jobs\r\n") == END
    assert kestrel.queue_stat("jobs", "items") == 0
    assert kestrel.queue_stat("jobs", "total_flushes") == 1
    assert client.send(b"flush nothing\r\n") == END
    assert "nothing" not in kestrel.collection


def test_flush_all(kestrel, client):
    client.send(set_request(b"a", b"x") + set_request(b"b", b"y"))
    assert client.send(b"flush_all\r\n") == b"Flushed all queues.\r\n"
    assert (kestrel.queue_stat("a", "items"), kestrel.queue_stat("b", "items")) == (0, 0)


@pytest.mark.parametrize(
    "request_line",
    [b"delete jobs noreply", b"delete jobs 0 noreply", b"flush jobs noreply", b"flush_all noreply", b"flush_all 0 noreply"],
)
def test_noreply_asks_for_no_reply_and_the_command_runs(kestrel, client, request_line):
    client.send(set_request(b"jobs", b"x"))
    assert client.send(request_line + b"\r\nversion\r\n") == b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()
    assert kestrel.collection.queue("jobs", create=False) is None or kestrel.queue_stat("jobs", "items") == 0


def test_a_queue_named_noreply_is_deleted_with_a_reply(kestrel, client):
    client.send(set_request(b"noreply", b"x"))
    assert client.send(b"delete noreply\r\n") == b"DELETED\r\n"
    assert "noreply" not in kestrel.collection


def test_flush_all_answers_as_memcached_when_the_listener_says_so(harness):
    client = connect(ServerHarness(harness, memcache_flush_all_reply="memcached"))
    assert client.send(b"flush_all\r\n") == b"OK\r\n"


def test_flush_expired_and_flush_all_expired_count(kestrel, client):
    client.send(set_request(b"q1", b"a", exptime=b"1") + set_request(b"q1", b"b"))
    client.send(set_request(b"q2", b"c", exptime=b"1") + set_request(b"q2", b"d", exptime=b"1"))
    kestrel.clock.advance(2)
    assert client.send(b"flush_expired q1\r\n") == b"1\r\n"
    assert client.send(b"flush_all_expired\r\n") == b"2\r\n"
    assert client.send(b"flush_all_expired\r\n") == b"0\r\n"
    assert client.send(b"flush_expired nothing\r\n") == b"0\r\n"
    assert "nothing" not in kestrel.collection
    assert kestrel.queue_stat("q1", "expired_items") == 1


def test_version(client):
    assert client.send(b"version\r\n") == b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()


def test_quit_closes_without_a_reply_and_ignores_what_follows(kestrel, client):
    assert client.send(b"quit\r\n" + set_request(b"jobs", b"x")) == b""
    assert client.closed
    assert "jobs" not in kestrel.collection


def test_shutdown_closes_and_calls_the_shutdown_hook_a_moment_later(kestrel, client):
    assert client.send(b"shutdown\r\n") == b""
    assert client.closed
    assert kestrel.shutdowns == 0
    kestrel.clock.advance(0.1)
    assert kestrel.shutdowns == 1


def test_reload_changes_a_live_queue(harness, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "kestrel.conf"
    path.write_text(f'[server]\nqueue_path = "{harness.directory}"\n[queues.jobs]\nmax_items = 1\n')
    kestrel = ServerHarness(harness, config=load_config(str(path)))
    client = connect(kestrel)
    assert client.send(set_request(b"jobs", b"1") + set_request(b"jobs", b"2")) == b"STORED\r\nNOT_STORED\r\n"

    path.write_text(f'[server]\nqueue_path = "{harness.directory}"\n[queues.jobs]\nmax_items = 2\n')
    assert client.send(b"reload\r\n") == b"Reloaded config.\r\n"
    assert kestrel.collection.queue("jobs").config.max_items == 2
    assert client.send(set_request(b"jobs", b"2") + set_request(b"jobs", b"3")) == b"STORED\r\nNOT_STORED\r\n"


def test_a_failed_reload_says_so_and_keeps_the_connection(client):
    reply = client.send(b"reload\r\n")
    assert reply.startswith(b"SERVER_ERROR ")
    assert not client.closed


# SET (1.3)


@pytest.mark.parametrize(
    "exptime, later, there",
    [
        (b"0", 10**8, True),
        (b"10", 10, True),
        (b"10", 10.001, False),
        (str(int(START) + 5).encode(), 5, True),
        (str(int(START) + 5).encode(), 5.001, False),
        (b"1000000", 0, False),  # absolute: 1970-01-12
        (b"999999", 999_999, True),  # relative: just under the limit
        (b"-1", 0, False),
    ],
)
def test_exptime_rules(kestrel, client, exptime, later, there):
    assert client.send(set_request(b"jobs", b"x", exptime=exptime)) == b"STORED\r\n"
    kestrel.clock.advance(later)
    assert client.send(b"get jobs\r\n") == (value(b"jobs", b"x") if there else END)


def test_absolute_exptime_of_now_expires_a_second_later(kestrel, client):
    # Spec 6.1.2: A with the current epoch second as exptime, B without one.
    client.send(set_request(b"jobs", b"A", exptime=str(int(kestrel.clock.seconds())).encode()))
    client.send(set_request(b"jobs", b"B"))
    kestrel.clock.advance(1)
    assert client.send(b"get jobs\r\n") == value(b"jobs", b"B")


def test_flags_are_ignored_and_reported_as_zero(client):
    assert client.send(set_request(b"jobs", b"x", flags=b"123")) == b"STORED\r\n"
    assert client.send(b"get jobs\r\n") == value(b"jobs", b"x")


def test_non_integer_flags_are_a_client_error_that_keeps_the_connection(kestrel, client):
    assert_client_error(client.send(set_request(b"jobs", b"x", flags=b"red")))
    assert not client.closed
    assert client.send(b"get jobs\r\n") == END


def test_noreply(kestrel, client):
    assert client.send(b"set jobs 0 0 1 noreply\r\nx\r\n") == b""
    assert client.send(b"get jobs\r\n") == value(b"jobs", b"x")


def test_python_memcached_trailing_space(client):
    assert client.send(b"set jobs 0 0 5 \r\nhello\r\n") == b"STORED\r\n"
    assert client.send(b"get jobs\r\n") == value(b"jobs", b"hello")


def test_not_stored_when_the_queue_is_full(harness):
    kestrel = ServerHarness(harness, default_queue=QueueConfig(max_items=1))
    client = connect(kestrel)
    assert client.send(set_request(b"jobs", b"1") + set_request(b"jobs", b"2")) == b"STORED\r\nNOT_STORED\r\n"


@pytest.mark.parametrize(
    "data",
    [b"a\r\nb", b"\r\n", b"END\r\nVALUE x 0 1\r\n", bytes(range(256)), b""],
)
def test_binary_values_round_trip(client, data):
    assert client.send(set_request(b"jobs", data)) == b"STORED\r\n"
    assert client.send(b"get jobs\r\n") == value(b"jobs", data)


def test_the_two_bytes_after_the_data_are_not_checked(client):
    assert client.send(b"set jobs 0 0 4\r\na\r\nbXYget jobs\r\n") == b"STORED\r\n" + value(b"jobs", b"a\r\nb")
    assert not client.closed


# Bad requests (1.9)


def assert_refused_and_closed(client: Connection, request: bytes) -> None:
    assert_client_error(client.send(request))
    assert client.closed


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"die in a fire\r\n",
        b"dump_config\r\n",
        b"add cheese 0 0 5\r\nswiss\r\n",
        b"cas cheese 0 0 5\r\nswiss\r\n",
        b"\r\n",
    ],
)
def test_unknown_commands_are_refused_and_closed(kestrel, client, request_bytes):
    assert_refused_and_closed(client, request_bytes + b"get cheese\r\n")
    assert "cheese" not in kestrel.collection


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"set jobs 0 0 x\r\nhello\r\n",  # non-numeric byte count
        b"set jobs 0 0 -1\r\n",
        b"set jobs 0 0\r\n",  # no byte count: the data cannot be framed
        b"set jobs 0 x 5\r\nhello\r\n",  # non-numeric exptime
        b"set  0 0 5\r\nhello\r\n",  # empty queue name
    ],
)
def test_bad_set_lines_are_refused_and_closed(kestrel, client, request_bytes):
    assert_refused_and_closed(client, request_bytes)
    assert kestrel.collection.names() == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        set_request(b"a.b", b"x"),
        set_request(b"a/b", b"x"),
        set_request(b"a~b", b"x"),
        b"get a.b\r\n",
        b"get a~b/open\r\n",
        b"get +a/peek\r\n",
        b"monitor a.b 1\r\n",
    ],
)
def test_illegal_queue_names_are_refused_and_closed(kestrel, client, request_bytes):
    assert_refused_and_closed(client, request_bytes)
    assert kestrel.collection.names() == []


@pytest.mark.parametrize(
    "key",
    [
        b"/close/open",
        b"/t=10",
        b"test/open/peek",
        b"test/close/peek",
        b"test/peek/open",
        b"test/open/abort",
        b"test/abort/close",
        b"test/close/abort",
        b"test/peek/abort",
        b"test/abort/peek",
        b"test/t=abc",
        b"test/t=",
        b"test/open/t=5s",
    ],
)
def test_bad_get_keys_are_refused_and_closed(kestrel, client, key):
    client.send(set_request(b"test", b"x"))
    assert_refused_and_closed(client, b"get %s\r\n" % key)
    assert kestrel.queue_stat("test", "items") == 1


@pytest.mark.parametrize(
    "request_bytes",
    [b"get\r\n", b"flush\r\n", b"delete\r\n", b"flush_expired\r\n", b"monitor jobs\r\n", b"monitor\r\n",
     b"confirm jobs\r\n", b"confirm jobs x\r\n", b"monitor jobs x\r\n", b"monitor jobs 1 x\r\n"],
)
def test_too_few_or_bad_arguments_keep_the_connection(client, request_bytes):
    assert_client_error(client.send(request_bytes))
    assert not client.closed
    assert client.send(b"version\r\n").startswith(b"VERSION ")


def test_a_refused_request_does_not_lose_the_replies_before_it(client):
    reply = client.send(set_request(b"jobs", b"x") + b"get jobs\r\nwhat\r\nget jobs\r\n")
    assert reply.startswith(b"STORED\r\n" + value(b"jobs", b"x") + b"CLIENT_ERROR ")
    assert reply.count(b"\r\n") == 5
    assert client.closed


# GET options (1.4, 1.5)


@pytest.mark.parametrize("key", [b"work/t=500/open", b"work/open/t=500", b"work/open", b"work/close/open", b"work/foo/open"])
def test_get_options_in_any_order_open_a_read(kestrel, client, key):
    client.send(set_request(b"work", b"job"))
    assert client.send(b"get %s\r\n" % key) == value(key, b"job")
    assert kestrel.queue_stat("work", "open_transactions") == 1


def test_unknown_options_are_ignored(client):
    client.send(set_request(b"work", b"job"))
    assert client.send(b"get work/cheese\r\n") == value(b"work/cheese", b"job")


def test_close_confirms_and_abort_returns_the_item_to_the_head(kestrel, client):
    client.send(set_request(b"work", b"1") + set_request(b"work", b"2"))
    assert client.send(b"get work/open\r\n") == value(b"work/open", b"1")
    assert client.send(b"get work/abort\r\n") == END
    assert kestrel.queue_stat("work", "items") == 2
    assert client.send(b"get work/open\r\n") == value(b"work/open", b"1")
    assert client.send(b"get work/close\r\n") == END
    assert (kestrel.queue_stat("work", "items"), kestrel.queue_stat("work", "open_transactions")) == (1, 0)
    assert client.send(b"get work/close\r\n") == END
    assert client.send(b"get work/abort\r\n") == END
    assert client.send(b"get work\r\n") == value(b"work", b"2")


def test_close_open_cycles_then_disconnect_rolls_back_the_last(kestrel, client):
    # Spec 6.1.10.
    client.send(b"".join(set_request(b"q", b"v%d" % n) for n in range(3)))
    assert client.send(b"get q/open\r\n") == value(b"q/open", b"v0")
    assert client.send(b"get q/close/open\r\n") == value(b"q/close/open", b"v1")
    assert client.send(b"get q/close/open\r\n") == value(b"q/close/open", b"v2")
    client.disconnect()
    other = connect(kestrel)
    assert other.send(b"get q\r\n") == value(b"q", b"v2")
    assert (kestrel.queue_stat("q", "total_items"), kestrel.queue_stat("q", "items")) == (3, 0)


def test_close_open_on_an_empty_queue_confirms_and_replies_end(kestrel, client):
    client.send(set_request(b"q", b"x"))
    client.send(b"get q/open\r\n")
    assert client.send(b"get q/close/open\r\n") == END
    assert kestrel.queue_stat("q", "open_transactions") == 0


def test_plain_get_while_holding_an_open_read_is_an_error_that_closes(kestrel, client):
    client.send(set_request(b"q", b"1") + set_request(b"q", b"2"))
    client.send(b"get q/open\r\n")
    assert client.send(b"get q\r\n") == ERROR
    assert client.closed
    client.protocol.connectionLost(None)
    assert kestrel.contents("q") == [b"1", b"2"]


def test_peek_and_open_while_holding_an_open_read_are_allowed(client):
    client.send(set_request(b"q", b"1") + set_request(b"q", b"2") + set_request(b"q", b"3"))
    client.send(b"get q/open\r\n")
    assert client.send(b"get q/peek\r\n") == value(b"q/peek", b"2")
    assert client.send(b"get q/open\r\n") == value(b"q/open", b"2")
    assert client.send(b"get other\r\n") == END
    assert not client.closed


def test_too_many_open_reads_is_an_error_that_closes(kestrel, client):
    client.send(b"".join(set_request(b"q", b"%d" % n) for n in range(11)))
    for n in range(10):
        assert client.send(b"get q/open\r\n") == value(b"q/open", b"%d" % n)
    assert client.send(b"get q/open\r\n") == ERROR
    assert client.closed
    client.protocol.connectionLost(None)
    assert kestrel.queue_stat("q", "items") == 11


def test_peek_leaves_the_item(kestrel, client):
    # Spec 6.1.12.
    client.send(set_request(b"testy", b"x"))
    for _ in range(3):
        assert client.send(b"get testy/peek\r\n") == value(b"testy/peek", b"x")
    assert client.send(b"get testy\r\n") == value(b"testy", b"x")
    assert client.send(b"get testy\r\n") == END
    assert (kestrel.stats.cmd_peek, kestrel.stats.cmd_get) == (3, 2)


# CONFIRM and MONITOR (1.6)


def test_confirm_confirms_the_oldest(kestrel, client):
    client.send(b"".join(set_request(b"test", b"%d" % n) for n in range(3)))
    client.send(b"get test/open\r\n" * 3)
    assert client.send(b"confirm test 2\r\n") == END
    assert kestrel.queue_stat("test", "open_transactions") == 1
    client.disconnect()
    assert kestrel.contents("test") == [b"2"]


@pytest.mark.parametrize("count", [b"0", b"2", b"-1"])
def test_confirm_too_many_is_an_error_and_confirms_nothing(kestrel, client, count):
    client.send(set_request(b"test", b"1"))
    client.send(b"get test/open\r\n")
    assert client.send(b"confirm test %s\r\n" % count) == ERROR
    assert not client.closed
    assert kestrel.queue_stat("test", "open_transactions") == 1
    assert client.send(b"confirm test 1\r\n") == END
    assert kestrel.queue_stat("test", "open_transactions") == 0


def test_confirm_on_a_queue_without_reads(client):
    assert client.send(b"confirm nothing 1\r\n") == ERROR
    assert not client.closed


def test_monitor_streams_ready_items(kestrel, client):
    client.send(b"".join(set_request(b"test", b"%d" % n) for n in range(3)))
    reply = client.send(b"monitor test 100 3\r\n")
    assert reply == value(b"test", b"0") + value(b"test", b"1") + value(b"test", b"2") + END
    assert kestrel.queue_stat("test", "open_transactions") == 3
    assert (kestrel.stats.cmd_monitor, kestrel.stats.cmd_monitor_get) == (1, 3)


def test_monitor_with_fewer_items_ends_at_the_deadline(kestrel, client):
    client.send(b"".join(set_request(b"test", b"%d" % n) for n in range(3)))
    assert client.send(b"monitor test 100 5\r\n") == value(b"test", b"0") + value(b"test", b"1") + value(b"test", b"2")
    kestrel.clock.advance(99.999)
    assert client.written() == b""
    kestrel.clock.advance(0.001)
    assert client.written() == END
    assert kestrel.queue_stat("test", "waiters") == 0


def test_monitor_streams_items_that_arrive_before_the_deadline(kestrel, client):
    assert client.send(b"monitor test 10 2\r\n") == b""
    writer = connect(kestrel)
    kestrel.clock.advance(5)
    assert writer.send(set_request(b"test", b"late")) == b"STORED\r\n"
    assert client.written() == value(b"test", b"late")
    kestrel.clock.advance(5)
    assert client.written() == END


def test_monitor_stops_at_the_open_read_limit(kestrel, client):
    client.send(b"".join(set_request(b"test", b"%d" % n) for n in range(12)))
    client.send(b"get test/open\r\n" * 9)
    assert client.written() == b""
    assert client.send(b"monitor test 100 2\r\n") == value(b"test", b"9") + END
    assert kestrel.queue_stat("test", "open_transactions") == 10


def test_monitor_max_items_defaults_to_the_open_read_limit(kestrel, client):
    client.send(b"".join(set_request(b"test", b"%d" % n) for n in range(12)))
    reply = client.send(b"monitor test 100\r\n")
    assert reply == b"".join(value(b"test", b"%d" % n) for n in range(10)) + END


def test_monitor_items_are_open_reads(kestrel, client):
    client.send(set_request(b"test", b"1") + set_request(b"test", b"2"))
    client.send(b"monitor test 1 2\r\n")
    assert client.send(b"confirm test 2\r\n") == END
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (0, 0)


def test_monitor_holds_later_requests_until_it_ends(kestrel, client):
    assert client.send(b"monitor test 1\r\nversion\r\n") == b""
    kestrel.clock.advance(1)
    assert client.written() == END + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()


# Blocking reads


def test_blocking_get_is_answered_by_a_set_from_another_connection(kestrel, client):
    assert client.send(b"get jobs/t=1000\r\n") == b""
    assert kestrel.queue_stat("jobs", "waiters") == 1
    kestrel.clock.advance(0.5)
    writer = connect(kestrel)
    assert writer.send(set_request(b"jobs", b"hi")) == b"STORED\r\n"
    assert client.written() == value(b"jobs/t=1000", b"hi")
    assert kestrel.queue_stat("jobs", "waiters") == 0
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []


def test_blocking_get_times_out_at_the_deadline(kestrel, client):
    assert client.send(b"get jobs/t=1000\r\n") == b""
    kestrel.clock.advance(0.999)
    assert client.written() == b""
    kestrel.clock.advance(0.001)
    assert client.written() == END
    assert kestrel.queue_stat("jobs", "waiters") == 0
    assert kestrel.stats.get_misses == 1


def test_blocking_open_get_opens_the_item(kestrel, client):
    client.send(b"get jobs/t=1000/open\r\n")
    connect(kestrel).send(set_request(b"jobs", b"hi"))
    assert client.written() == value(b"jobs/t=1000/open", b"hi")
    assert kestrel.queue_stat("jobs", "open_transactions") == 1


def test_t_zero_does_not_wait(client):
    assert client.send(b"get jobs/t=0\r\n") == END


def test_a_request_after_a_blocking_get_waits_for_it(kestrel, client):
    client.send(set_request(b"other", b"o"))
    assert client.send(b"get jobs/t=1000\r\nget other\r\nversion\r\n") == b""
    kestrel.clock.advance(0.5)
    assert kestrel.queue_stat("other", "items") == 1
    connect(kestrel).send(set_request(b"jobs", b"j"))
    assert client.written() == value(b"jobs/t=1000", b"j") + value(b"other", b"o") + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()


def test_requests_sent_while_waiting_are_answered_in_order(kestrel, client):
    client.send(b"get jobs/t=1000\r\n")
    assert client.send(b"get jobs/t=1000\r\nget jo") == b""
    assert client.send(b"bs\r\n") == b""
    kestrel.clock.advance(1)
    assert client.written() == END
    kestrel.clock.advance(1)
    assert client.written() == END + END


# Pipelining and framing

PIPELINE = (
    set_request(b"p", b"one")
    + b"set p 0 0 4 noreply\r\nt\r\no\r\n"
    + set_request(b"p", b"three\r\n")
    + b"get p\r\n"
    + b"get p/open\r\n"
    + b"get p/peek\r\n"
    + b"get p/close\r\n"
    + b"gets p/t=0\r\n"
    + b"get p\r\n"
    + b"confirm p 1\r\n"
    + b"set p 0 0 1\nx\r\n"
    + b"get p\n"
    + b"version\r\n"
)
PIPELINE_REPLIES = (
    b"STORED\r\n"
    + b"STORED\r\n"
    + value(b"p", b"one")
    + value(b"p/open", b"t\r\no")
    + value(b"p/peek", b"three\r\n")
    + END
    + value(b"p/t=0", b"three\r\n")
    + END
    + ERROR
    + b"STORED\r\n"
    + value(b"p", b"x")
    + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()
)


def test_pipelined_requests_in_one_burst_are_answered_in_order_in_one_write(kestrel, client):
    assert client.send(PIPELINE) == PIPELINE_REPLIES
    assert not client.closed


def test_pipelined_requests_split_at_every_byte(kestrel):
    for split in range(1, len(PIPELINE)):
        client = connect(kestrel)
        replies = client.send(PIPELINE[:split]) + client.send(PIPELINE[split:])
        assert replies == PIPELINE_REPLIES, split
        client.disconnect()
        assert kestrel.queue_stat("p", "items") == 0


def test_pipelined_requests_one_byte_at_a_time(client):
    replies = b"".join(client.send(PIPELINE[n:n + 1]) for n in range(len(PIPELINE)))
    assert replies == PIPELINE_REPLIES


def test_replies_of_one_burst_go_out_in_one_write(client):
    writes = []
    client.transport.writeSequence = writes.append
    client.send(set_request(b"a", b"1") + b"get a\r\nget a\r\n")
    assert len(writes) == 1


@pytest.fixture
def small_limits(harness) -> ServerHarness:
    return ServerHarness(harness, max_line_length=64, max_value_size=16)


def test_a_line_of_the_longest_length_is_accepted(small_limits):
    client = connect(small_limits)
    name = b"q" * (64 - len(b"get "))
    assert client.send(b"get %s\r\n" % name) == END
    assert client.send(b"get %s\n" % name) == END
    assert not client.closed


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r", b"q"])
def test_a_longer_line_is_refused_and_closed(small_limits, ending):
    client, other = connect(small_limits), connect(small_limits)
    name = b"q" * (65 - len(b"get "))
    assert_refused_and_closed(client, b"get %s%s" % (name, ending))
    assert other.send(set_request(b"q", b"ok")) == b"STORED\r\n"
    assert not other.closed


def test_an_endless_line_is_refused_before_it_ends(small_limits):
    client = connect(small_limits)
    assert client.send(b"get " + b"q" * 30) == b""
    assert_refused_and_closed(client, b"q" * 40)


def test_a_value_larger_than_the_limit_is_refused_and_closed(small_limits):
    client, other = connect(small_limits), connect(small_limits)
    assert client.send(set_request(b"q", b"x" * 16)) == b"STORED\r\n"
    assert_refused_and_closed(client, b"set q 0 0 17\r\n")
    assert other.send(b"get q\r\n") == value(b"q", b"x" * 16)
    assert small_limits.queue_stat("q", "items") == 0


# Disconnects


def test_disconnect_aborts_open_reads_oldest_at_the_head(kestrel, client):
    client.send(b"".join(set_request(b"q", b"%d" % n) for n in range(4)) + set_request(b"r", b"r0"))
    client.send(b"get q/open\r\n" * 3 + b"get r/open\r\n")
    assert kestrel.queue_stat("q", "items") == 1
    client.disconnect()
    assert kestrel.contents("q") == [b"0", b"1", b"2", b"3"]
    assert kestrel.contents("r") == [b"r0"]
    assert kestrel.stats.curr_connections == 0


def test_disconnect_hands_the_item_to_another_client(kestrel, client):
    client.send(set_request(b"q", b"job"))
    client.send(b"get q/open\r\n")
    other = connect(kestrel)
    assert other.send(b"get q\r\n") == END
    client.disconnect()
    assert other.send(b"get q/open\r\n") == value(b"q/open", b"job")


@pytest.mark.parametrize("request_bytes", [b"get q/t=3599000\r\n", b"get q/open/t=3599000\r\n", b"monitor q 3600\r\n"])
def test_disconnect_cancels_a_waiting_read(kestrel, client, request_bytes):
    assert client.send(request_bytes) == b""
    assert kestrel.queue_stat("q", "waiters") == 1
    client.disconnect()
    assert kestrel.queue_stat("q", "waiters") == 0
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []
    connect(kestrel).send(set_request(b"q", b"job"))
    assert kestrel.contents("q") == [b"job"]


@pytest.mark.parametrize("request_bytes", [b"get q/t=3599000\r\n", b"monitor q 3600\r\n"])
def test_requests_behind_a_waiting_read_die_with_the_connection(kestrel, client, request_bytes):
    kestrel.add("other", b"keep")
    client.send(request_bytes + b"get other\r\nflush_all\r\n")
    client.disconnect()
    assert kestrel.contents("other") == [b"keep"]


def test_a_blocking_get_waiting_for_an_item_gets_one_freed_by_a_disconnect(kestrel, client):
    # Spec 6.1.8: immediate handoff.
    client.send(set_request(b"slow", b"job"))
    client.send(b"get slow/open\r\n")
    client.send(b"get slower/open/t=1000\r\n")
    other = connect(kestrel)
    assert other.send(b"get slow/open/t=1000\r\n") == b""
    client.disconnect()
    assert other.written() == value(b"slow/open/t=1000", b"job")


def test_an_idle_connection_times_out(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    kestrel.clock.advance(29)
    client.send(b"version\r\n")
    kestrel.clock.advance(29)
    assert not client.closed
    kestrel.clock.advance(1)
    assert client.closed


def test_a_client_trickling_a_request_byte_by_byte_times_out(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    for byte in b"set q 0 0 5\r\nhel":  # 16 bytes, 3 s apart: 48 s for one request
        client.send(bytes([byte]))
        kestrel.clock.advance(3)
        if client.closed:
            break
    assert client.closed
    assert kestrel.collection.queue("q", create=False) is None


def test_a_connection_waiting_in_a_blocking_get_does_not_time_out(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    client.send(b"get q/t=100000\r\n")
    kestrel.clock.advance(99)
    assert not client.closed
    kestrel.clock.advance(1)
    assert client.written() == END
    kestrel.clock.advance(29)
    assert not client.closed
    kestrel.clock.advance(1)
    assert client.closed


def test_no_timer_is_left_behind_by_a_connection_that_went_away_while_waiting(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    client.send(b"monitor q 3600\r\n")
    client.disconnect()
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []


# Dead letters (doc/configuration.md)


def test_an_item_aborted_and_dropped_max_deliveries_times_goes_to_the_dead_letter_queue(harness):
    kestrel = ServerHarness(harness, queue_overrides={"jobs": {"max_deliveries": 2, "dead_letter_queue": "dead"}})
    client = connect(kestrel)
    client.send(set_request(b"jobs", b"poison") + set_request(b"jobs", b"fine"))
    assert client.send(b"get jobs/open\r\n") == value(b"jobs/open", b"poison")
    assert client.send(b"get jobs/abort\r\n") == END
    dropping = connect(kestrel)
    assert dropping.send(b"get jobs/open\r\n") == value(b"jobs/open", b"poison")
    dropping.disconnect()

    assert client.send(b"get jobs/open\r\n") == value(b"jobs/open", b"fine")
    assert client.send(b"get dead\r\n") == value(b"dead", b"poison")
    assert kestrel.queue_stat("jobs", "dead_lettered") == 1


# Stats (1.8)

GLOBAL_STATS = [
    "uptime", "time", "version", "curr_items", "total_items", "bytes", "reserved_memory_ratio",
    "curr_connections", "total_connections", "cmd_get", "cmd_set", "cmd_peek", "get_hits",
    "get_misses", "bytes_read", "bytes_written", "queue_creates", "queue_deletes", "queue_expires",
]
QUEUE_STATS = [
    "items", "bytes", "total_items", "logsize", "expired_items", "mem_items", "mem_bytes", "age",
    "discarded", "waiters", "open_transactions", "transactions", "canceled_transactions",
    "total_flushes", "journal_rewrites", "journal_rotations",
    # txkestrel's own, after Kestrel's
    "journal_failing", "read_behind_errors", "lost_items", "head_age", "dead_lettered",
]


def parse_stats(reply: bytes) -> list[tuple[str, str]]:
    assert reply.endswith(b"\r\nEND\r\n")
    lines = reply.decode().split("\r\n")[:-2]
    assert all(line.startswith("STAT ") for line in lines)
    return [tuple(line[5:].split(" ", 1)) for line in lines]


def test_stats_names_and_order(harness):
    kestrel = ServerHarness(harness, aliases={"all": ("b", "a")})
    client = connect(kestrel)
    client.send(set_request(b"b", b"12") + set_request(b"a+x", b"1") + set_request(b"a", b"345"))
    kestrel.clock.advance(3)
    stats = parse_stats(client.send(b"stats\r\n"))
    names = [name for name, _ in stats]
    queue = lambda name: [f"queue_{name}_{key}" for key in QUEUE_STATS]  # noqa: E731
    assert names == (
        GLOBAL_STATS + queue("a") + ["queue_a_children"] + queue("a+x")
        + ["queue_all_put_items", "queue_all_put_bytes", "queue_all_children"] + queue("b")
    )
    values = dict(stats)
    assert values["uptime"] == "3"
    assert values["time"] == str(int(START) + 3)
    assert values["version"] == __version__
    assert (values["curr_items"], values["total_items"], values["bytes"]) == ("4", "4", "9")
    assert (values["curr_connections"], values["total_connections"], values["cmd_set"]) == ("1", "1", "3")
    assert values["bytes_read"] == str(len(set_request(b"b", b"12") + set_request(b"a+x", b"1") + set_request(b"a", b"345")) + 7)
    assert values["bytes_written"] == str(3 * len(b"STORED\r\n"))
    assert values["queue_creates"] == "3"
    assert values["queue_a_children"] == "a+x"
    assert (values["queue_a_items"], values["queue_a_bytes"], values["queue_a+x_items"]) == ("1", "3", "2")
    assert values["queue_all_children"] == "b,a"
    assert float(values["reserved_memory_ratio"]) > 0 and len(values["reserved_memory_ratio"].split(".")[1]) == 3


def test_stats_count_commands(kestrel, client):
    client.send(set_request(b"q", b"x") + b"get q\r\nget q\r\nget q/peek\r\nget q/open\r\n")
    values = dict(parse_stats(client.send(b"stats\r\n")))
    assert [values[key] for key in ("cmd_set", "cmd_get", "cmd_peek", "get_hits", "get_misses")] == ["1", "3", "1", "1", "3"]


def test_dump_stats(kestrel, client):
    client.send(set_request(b"b", b"xy") + set_request(b"a", b"z"))
    reply = client.send(b"dump_stats\r\n").decode()
    lines = reply.split("\r\n")
    count = len(QUEUE_STATS)
    assert lines[0] == "queue 'a' {"
    assert [line.split("=")[0] for line in lines[1:count + 1]] == [f"  {key}" for key in QUEUE_STATS]
    assert lines[1:3] == ["  items=1", "  bytes=1"]
    assert lines[count + 1:count + 3] == ["}", "queue 'b' {"]
    assert lines[count + 3:count + 5] == ["  items=1", "  bytes=2"]
    assert lines[2 * count + 3:] == ["}", "END", ""]


def test_dump_stats_of_named_queues_creates_none(kestrel, client):
    client.send(set_request(b"a", b"z"))
    reply = client.send(b"dump_stats nothing a\r\n").decode()
    assert reply.startswith("queue 'a' {\r\n  items=1\r\n") and reply.endswith("}\r\nEND\r\n")
    assert reply.count("queue '") == 1
    assert "nothing" not in kestrel.collection
    assert client.send(b"dump_stats nothing\r\n") == END


# Server status (1.2, 1.7, 3.10)


@pytest.fixture
def with_status(harness, tmp_path) -> ServerHarness:
    return ServerHarness(harness, status_file=str(tmp_path / "state" / "status"), max_open_transactions=10)


@pytest.mark.parametrize("request_bytes", [b"status\r\n", b"status up\r\n"])
def test_status_without_status_file_is_an_error_that_closes(client, request_bytes):
    assert client.send(request_bytes) == ERROR
    assert client.closed


def test_status_reports_and_sets(with_status, tmp_path):
    client = connect(with_status)
    assert client.send(b"status\r\n") == b"UP\r\n"
    assert client.send(b"status writeavoid\r\n") == END
    assert client.send(b"status\r\n") == b"WRITEAVOID\r\n"
    assert client.send(b"status ReadOnly\r\n") == END
    assert client.send(b"status\r\n") == b"READONLY\r\n"
    assert (tmp_path / "state" / "status").read_text() == "ReadOnly\n"
    assert client.send(b"status QUIESCENT\r\n") == END
    assert client.send(b"status\r\n") == b"QUIESCENT\r\n"
    assert client.send(b"status up\r\n") == END
    assert not client.closed


@pytest.mark.parametrize("name", [b"spongebob", b"down", b"DOWN"])
def test_bad_status_names_are_refused_and_closed(with_status, name):
    client = connect(with_status)
    assert_refused_and_closed(client, b"status %s\r\n" % name)
    assert with_status.server.status.current.name == "UP"


def test_a_status_that_cannot_be_saved_is_a_server_error(with_status, tmp_path):
    os.makedirs(tmp_path / "state" / "status")
    client = connect(with_status)
    assert client.send(b"status readonly\r\n").startswith(b"SERVER_ERROR ")
    assert not client.closed
    assert client.send(b"status\r\n") == b"UP\r\n"
    assert client.send(set_request(b"q", b"x")) == b"STORED\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [set_request(b"q", b"x"), b"set q 0 0 1 noreply\r\nx\r\n", b"flush q\r\n", b"flush_all\r\n", b"delete q\r\n",
     b"flush_expired q\r\n", b"flush_all_expired\r\n"],
)
def test_readonly_refuses_writes_with_a_server_error_that_closes(with_status, request_bytes):
    with_status.add("q", b"old")
    connect(with_status).send(b"status readonly\r\n")
    client = connect(with_status)
    reply = client.send(request_bytes)
    assert reply.startswith(b"SERVER_ERROR ") and reply.count(b"\r\n") == 1
    assert client.closed
    assert with_status.contents("q") == [b"old"]


def test_readonly_still_reads(with_status):
    with_status.add("q", b"1", b"2")
    client = connect(with_status)
    client.send(b"status readonly\r\n")
    assert client.send(b"get q\r\n") == value(b"q", b"1")
    assert client.send(b"get q/open\r\n") == value(b"q/open", b"2")
    assert client.send(b"get q/close\r\n") == END


@pytest.mark.parametrize(
    "request_bytes", [b"get q\r\n", b"get q/open\r\n", b"get q/peek\r\n", b"get q/t=10\r\n", b"monitor q 1\r\n"]
)
def test_quiescent_refuses_reads_with_a_server_error_that_closes(with_status, request_bytes):
    with_status.add("q", b"1")
    connect(with_status).send(b"status quiescent\r\n")
    client = connect(with_status)
    reply = client.send(request_bytes)
    assert reply.startswith(b"SERVER_ERROR ") and reply.count(b"\r\n") == 1
    assert client.closed
    assert with_status.contents("q") == [b"1"]


def test_quiescent_still_confirms_and_aborts(with_status):
    with_status.add("q", b"1", b"2", b"3")
    client = connect(with_status)
    client.send(b"get q/open\r\n" * 3)
    client.send(b"status quiescent\r\n")
    assert client.send(b"get q/close\r\n") == END
    assert client.send(b"get q/abort\r\n") == END
    assert client.send(b"confirm q 1\r\n") == END
    assert not client.closed
    assert with_status.queue_stat("q", "items") == 1


def test_a_monitor_ends_when_reads_become_blocked(with_status):
    with_status.add("q", b"1")
    client = connect(with_status)
    assert client.send(b"monitor q 100 5\r\n") == value(b"q", b"1")
    with_status.server.status.set("quiescent")
    # The fetch already waiting gets the next item; no fetch follows it.
    with_status.add("q", b"2", b"3")
    assert client.written() == value(b"q", b"2") + END
    assert with_status.queue_stat("q", "items") == 1


def test_connection_limit_refuse_writes(harness):
    kestrel = ServerHarness(harness, connection_limit_refuse_writes=1)
    first, second = connect(kestrel), connect(kestrel)
    assert first.send(set_request(b"q", b"1")) == b"STORED\r\n"
    assert second.send(b"get q\r\n") == value(b"q", b"1")
    reply = second.send(set_request(b"q", b"2"))
    assert reply.startswith(b"SERVER_ERROR ")
    assert second.closed
    assert first.send(set_request(b"q", b"3")) == b"STORED\r\n"


def test_connection_limit_refuse_reads(harness):
    kestrel = ServerHarness(harness, connection_limit_refuse_reads=1)
    first, second = connect(kestrel), connect(kestrel)
    assert second.send(set_request(b"q", b"1")) == b"STORED\r\n"
    assert second.send(b"get q\r\n").startswith(b"SERVER_ERROR ")
    assert second.closed
    assert first.send(b"get q\r\n") == value(b"q", b"1")


def test_status_change_waits_for_the_grace_period(harness, tmp_path):
    kestrel = ServerHarness(harness, status_file=str(tmp_path / "state" / "status"), status_change_grace_period=30.0)
    client = connect(kestrel)
    assert client.send(b"status readonly\r\n") == END
    assert client.send(b"status\r\n") == b"READONLY\r\n"
    assert client.send(b"status quiescent\r\n") == END
    assert client.send(b"status\r\n") == b"READONLY\r\n"
    assert client.send(set_request(b"q", b"1")) == b"STORED\r\n"
    kestrel.clock.advance(30)
    assert client.send(set_request(b"q", b"2")).startswith(b"SERVER_ERROR ")
    assert client.closed


# Queues that fsync every write (sync_journal = 0)


def test_stored_waits_for_the_batch_on_a_sync_journal_queue(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    assert client.send(set_request(b"q", b"x") + b"version\r\n") == b""
    kestrel.clock.advance(0)
    assert len(runner.calls) == 1
    assert client.written() == b""
    runner.run_next()
    assert client.written() == b"STORED\r\n" + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()


def test_noreply_on_a_sync_journal_queue_still_waits_then_writes_nothing(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    assert client.send(b"set q 0 0 1 noreply\r\nx\r\nversion\r\n") == b""
    kestrel.clock.advance(0)
    runner.run_next()
    assert client.written() == b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()


def test_reads_and_confirms_wait_for_the_batch_on_a_sync_journal_queue(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    client.send(set_request(b"q", b"x"))
    kestrel.clock.advance(0)
    runner.run_next()
    assert client.written() == b"STORED\r\n"
    assert client.send(b"get q/open\r\n") == b""
    kestrel.clock.advance(0)
    runner.run_next()
    assert client.written() == value(b"q/open", b"x")
    assert client.send(b"get q/close\r\n") == b""
    kestrel.clock.advance(0)
    runner.run_next()
    assert client.written() == b"END\r\n"


def test_a_failed_sync_write_is_a_server_error(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    client.send(set_request(b"q", b"x"))
    kestrel.clock.advance(0)
    function, args, result = runner.calls.pop(0)
    result.errback(OSError("disk on fire"))
    assert client.written().startswith(b"SERVER_ERROR ")
    assert client.closed


# More reads


def test_a_blocking_peek_leaves_the_item(kestrel, client):
    assert client.send(b"get q/peek/t=1000\r\n") == b""
    connect(kestrel).send(set_request(b"q", b"x"))
    assert client.written() == value(b"q/peek/t=1000", b"x")
    assert kestrel.contents("q") == [b"x"]


def test_aliases_take_sets_and_read_as_empty(harness):
    kestrel = ServerHarness(harness, aliases={"all": ("a", "b")})
    client = connect(kestrel)
    assert client.send(set_request(b"all", b"x")) == b"STORED\r\n"
    assert client.send(b"get all\r\n") == END
    assert (kestrel.stats.get_hits, kestrel.stats.get_misses) == (0, 0)
    assert client.send(b"get a\r\nget b\r\n") == value(b"a", b"x") + value(b"b", b"x")


def test_a_set_to_a_master_reaches_its_fanout_children(kestrel, client):
    client.send(b"get jobs+audit\r\n")
    assert client.send(set_request(b"jobs", b"x")) == b"STORED\r\n"
    assert client.send(b"get jobs\r\nget jobs+audit\r\n") == value(b"jobs", b"x") + value(b"jobs+audit", b"x")


def test_deleting_a_queue_with_an_open_read_then_aborting_does_not_recreate_it(kestrel, client):
    client.send(set_request(b"q", b"x") + b"get q/open\r\n")
    assert client.send(b"delete q\r\n") == b"DELETED\r\n"
    assert client.send(b"get q/abort\r\nget q/close\r\nconfirm q 1\r\n") == END + END + ERROR
    assert "q" not in kestrel.collection
    client.disconnect()
    assert "q" not in kestrel.collection


def test_a_client_that_pipelines_without_reading_is_paused_until_its_wait_ends(small_limits):
    client = connect(small_limits)
    client.send(b"get q/t=1000\r\n")
    assert client.send(b"version\r\n" * 8) == b""
    assert client.transport.producerState == "producing"
    assert client.send(b"version\r\n" * 2) == b""
    assert client.transport.producerState == "paused"
    small_limits.clock.advance(1)
    assert client.written() == END + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode() * 10
    assert client.transport.producerState == "producing"


def test_a_waiting_get_on_a_deleted_queue_ends_at_once(kestrel, client):
    client.send(b"get q/t=1000\r\nversion\r\n")
    assert connect(kestrel).send(b"delete q\r\n") == b"DELETED\r\n"
    assert client.written() == END + b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []


def test_the_second_waiter_gets_the_item_when_the_first_went_away(kestrel, client):
    # Spec 6.1.7.
    second = connect(kestrel)
    client.send(b"get q/t=10000/open\r\n")
    second.send(b"get q/t=10000/open\r\n")
    client.disconnect()
    connect(kestrel).send(set_request(b"q", b"x"))
    assert second.written() == value(b"q/t=10000/open", b"x")
    assert client.written() == b""


def test_relative_expiry_then_flush_expired(kestrel, client):
    # Spec 6.1.17.
    client.send(set_request(b"q1", b"a", exptime=b"1"))
    client.send(set_request(b"q2", b"b", exptime=b"1") + set_request(b"q2", b"c", exptime=b"1"))
    client.send(set_request(b"q3", b"d", exptime=b"1"))
    values = dict(parse_stats(client.send(b"stats\r\n")))
    assert [values[f"queue_{name}_items"] for name in ("q1", "q2", "q3")] == ["1", "2", "1"]
    kestrel.clock.advance(1.001)
    assert client.send(b"flush_expired q1\r\n") == b"1\r\n"
    assert client.send(b"flush_all_expired\r\n") == b"3\r\n"
    assert kestrel.collection.totals().items == 0


def test_connections_beyond_max_connections_are_refused_with_an_error(harness):
    kestrel = ServerHarness(harness, max_connections=2)
    first, _ = connect(kestrel), connect(kestrel)
    refused = connect(kestrel)
    assert refused.written() == b"SERVER_ERROR too many connections\r\n"
    assert refused.closed
    refused.disconnect()
    first.disconnect()
    assert not connect(kestrel).closed


def test_disconnect_hands_the_oldest_aborted_item_to_the_first_waiter(kestrel):
    holder, waiter = connect(kestrel), connect(kestrel)
    kestrel.add("q", b"one", b"two")
    holder.send(b"get q/open\r\n")
    holder.send(b"get q/open\r\n")
    assert waiter.send(b"get q/t=1000\r\n") == b""
    holder.disconnect()
    assert waiter.written() == value(b"q/t=1000", b"one")
    assert kestrel.contents("q") == [b"two"]


def test_an_exptime_beyond_the_journal_range_is_a_client_error(client):
    reply = client.send(b"set q 0 99999999999999999999 1\r\nx\r\n")
    assert_client_error(reply)
    assert b"exptime" in reply
    assert client.closed


@pytest.mark.parametrize(
    "token", [b"0", b"7", b"64", b"0123", b"999999999999999999", b"1000000000000000000", b"12345678901234567890123",
              b"-1", b"+5", b" 5", b"5 ", b"1_000"]
)
def test_numbers_read_as_int_reads_them(token):
    assert memcache.parse_int(token, "count") == int(token)


@pytest.mark.parametrize("token", [b"", b"x", b"5x", b"--1", b"0x10", b"1.5", b"\xd9\xa3", b"5\x00"])
def test_what_is_not_a_number_is_refused_naming_it(token):
    with pytest.raises(memcache.ClientError, match="bad count"):
        memcache.parse_int(token, "count")
