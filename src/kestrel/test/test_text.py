"""The text protocol (doc/compatibility.md §2.1, §5) over a real collection and server, on a Clock."""

import pytest
from twisted.internet.testing import StringTransport

from kestrel import PROTOCOL_VERSION
from kestrel.protocols.text import (
    NO_ITEM,
    TextProtocol,
    count_reply,
    error_reply,
    item_reply,
    split_request,
)
from kestrel.journal.writer import JournalWriter
from kestrel.test.support import START, QueueHarness, RecordingRunner, ServerHarness, pending_calls
from kestrel.test.test_memcache import Connection

VERSION = b":%s\n" % PROTOCOL_VERSION.encode()


class TextConnection(Connection):
    """A TextProtocol on a StringTransport."""

    def __init__(self, server):
        self.transport = StringTransport()
        self.protocol = TextProtocol(server)
        self.protocol.makeConnection(self.transport)


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    return ServerHarness(harness, max_open_transactions=10)


def connect(kestrel: ServerHarness) -> TextConnection:
    return TextConnection(kestrel.server)


@pytest.fixture
def client(kestrel) -> TextConnection:
    return connect(kestrel)


# The codec vectors of 2.1


def test_request_lines_split_into_a_lower_cased_command_and_arguments():
    assert split_request(b"get foo") == (b"get", [b"foo"])
    assert split_request(b"get foo 100") == (b"get", [b"foo", b"100"])
    assert split_request(b"QUIT") == (b"quit", [])
    assert split_request(b"GET Foo  1") == (b"get", [b"Foo", b"", b"1"])


def test_reply_encodings():
    assert count_reply(23) == b"+23\n"
    assert error_reply("Bad karma") == b"-Bad karma\n"
    assert NO_ITEM == b"*\n"
    assert item_reply(b"hello") == b":hello\n"


def test_a_get_line_with_crlf_is_one_request(kestrel, client):
    kestrel.add("foo", b"x")
    assert client.send(b"get foo\r\n") == b":x\n"


def test_a_request_split_across_reads_is_one_request(kestrel, client):
    kestrel.add("foo", b"x")
    assert client.send(b"get f") == b""
    assert client.send(b"oo\r\n") == b":x\n"


@pytest.mark.parametrize("parts, timeout", [((b"get foo 100", b"\n"), 0.1), ((b"get test 500\n",), 0.5)])
def test_a_timeout_is_milliseconds_from_now(kestrel, client, parts, timeout):
    assert b"".join(client.send(part) for part in parts) == b""
    kestrel.clock.advance(timeout - 0.001)
    assert client.written() == b""
    kestrel.clock.advance(0.002)
    assert client.written() == NO_ITEM


def test_a_put_over_several_reads(kestrel, client):
    assert client.send(b"put foo:\n") == b""
    assert client.send(b"hello\n") == b""
    assert client.send(b"\n") == b"+1\n"
    assert kestrel.contents("foo") == [b"hello"]


def test_quit_in_capitals_closes_without_a_reply(client):
    assert client.send(b"QUIT\r\nversion\n") == b""
    assert client.closed


# Commands


def test_get_opens_the_next_item_and_confirms_the_one_before(kestrel, client):
    kestrel.add("test", b"one", b"two")
    assert client.send(b"get test\n") == b":one\n"
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (1, 1)
    assert client.send(b"get test\n") == b":two\n"
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (0, 1)
    assert client.send(b"get test\n") == NO_ITEM
    assert kestrel.queue_stat("test", "open_transactions") == 0
    client.disconnect()
    assert kestrel.queue_stat("test", "items") == 0


def test_get_with_a_timeout_takes_an_item_that_arrives(kestrel, client):
    assert client.send(b"get test 500\nversion\n") == b""
    assert connect(kestrel).send(b"put test:\nlate\n\n") == b"+1\n"
    assert client.written() == b":late\n" + VERSION
    assert kestrel.queue_stat("test", "open_transactions") == 1


@pytest.mark.parametrize("timeout", [b"0", b"-5"])
def test_a_zero_or_negative_timeout_does_not_wait(client, timeout):
    assert client.send(b"get test %s\n" % timeout) == NO_ITEM


def test_peek_leaves_the_item_and_confirms_open_reads(kestrel, client):
    kestrel.add("test", b"one", b"two")
    assert client.send(b"get test\n") == b":one\n"
    assert client.send(b"peek test\n") == b":two\n"
    assert client.send(b"peek test\n") == b":two\n"
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (1, 0)


def test_peek_with_a_timeout(kestrel, client):
    assert client.send(b"peek test 200\n") == b""
    kestrel.add("test", b"x")
    assert client.written() == b":x\n"
    assert kestrel.queue_stat("test", "items") == 1


def test_monitor_streams_open_items_then_a_star_at_the_deadline(kestrel, client):
    kestrel.add("test", b"a", b"b", b"c")
    assert client.send(b"monitor test 1000\nversion\n") == b":a\n:b\n:c\n"
    assert kestrel.queue_stat("test", "open_transactions") == 3
    kestrel.clock.advance(0.5)
    kestrel.add("test", b"d")
    assert client.written() == b":d\n"
    kestrel.clock.advance(0.501)
    assert client.written() == NO_ITEM + VERSION


def test_monitor_stops_at_the_open_read_limit(kestrel, client):
    kestrel.add("test", *[b"%d" % n for n in range(12)])
    reply = client.send(b"monitor test 1000\n")
    assert reply == b"".join(b":%d\n" % n for n in range(10)) + NO_ITEM


def test_monitor_confirms_what_was_open_before(kestrel, client):
    kestrel.add("test", b"a", b"b")
    assert client.send(b"get test\n") == b":a\n"
    assert client.send(b"monitor test 0\n") == b":b\n*\n"
    assert kestrel.queue_stat("test", "open_transactions") == 1
    client.disconnect()
    assert kestrel.contents("test") == [b"b"]


def test_confirm_counts_or_refuses(kestrel, client):
    kestrel.add("test", b"a", b"b", b"c")
    client.send(b"monitor test 0\n")
    assert client.send(b"confirm test 4\n") == b"-Not that many transactions open.\n"
    assert client.send(b"confirm test 0\n") == b"-Not that many transactions open.\n"
    assert kestrel.queue_stat("test", "open_transactions") == 3
    assert client.send(b"confirm test 2\n") == b"+2\n"
    assert kestrel.queue_stat("test", "open_transactions") == 1
    client.disconnect()
    assert kestrel.contents("test") == [b"c"]


def test_put_adds_each_item_line(kestrel, client):
    assert client.send(b"put test:\none\ntwo\r\nthree\n\n") == b"+3\n"
    assert kestrel.contents("test") == [b"one", b"two", b"three"]


def test_put_without_a_colon_adds_nothing(kestrel, client):
    assert client.send(b"put test\n") == b"+0\n"
    assert client.send(b"put test:\n\n") == b"+0\n"


def test_put_counts_only_the_items_a_full_queue_takes(harness):
    kestrel = ServerHarness(harness, queue_overrides={"small": {"max_items": 2}})
    client = connect(kestrel)
    assert client.send(b"put small:\na\nb\nc\n\n") == b"+2\n"
    assert kestrel.contents("small") == [b"a", b"b"]


def test_put_expiry_is_milliseconds_from_now(kestrel, client):
    assert client.send(b"put test 1000:\nshort\n\nput test:\nlong\n\n") == b"+1\n+1\n"
    item = kestrel.collection.queue("test").peek()
    assert item.expiry == int(START * 1000) + 1000
    kestrel.clock.advance(1.001)
    assert client.send(b"get test\n") == b":long\n"


def test_a_bad_expiry_refuses_the_put_and_its_items(kestrel, client):
    assert client.send(b"put test soon:\nversion\nquit\n\n") == b"-Error parsing expiration time.\n"
    assert not client.closed
    assert "test" not in kestrel.collection


def test_item_bytes_are_stored_and_returned_exactly(kestrel, client):
    data = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"") + b"caf\xc3\xa9 \xff\x00 a\rb"
    assert client.send(b"put test:\n%s\n\n" % data) == b"+1\n"
    assert kestrel.collection.queue("test").peek().data == data
    assert client.send(b"get test\n") == b":%s\n" % data


def test_the_items_of_another_command_are_read_and_ignored(kestrel, client):
    kestrel.add("test", b"x")
    assert client.send(b"get test:\nversion\nquit\n\n") == b":x\n"
    assert not client.closed


def test_flush_and_delete_reply_plus_zero(kestrel, client):
    kestrel.add("test", b"a", b"b")
    assert client.send(b"flush test\n") == b"+0\n"
    assert kestrel.queue_stat("test", "items") == 0
    assert client.send(b"delete test\n") == b"+0\n"
    assert "test" not in kestrel.collection
    assert client.send(b"delete nothing\nflush nothing\n") == b"+0\n+0\n"
    assert "nothing" not in kestrel.collection


def test_version(client):
    assert client.send(b"version\n") == VERSION


def test_shutdown_replies_then_shuts_the_server_down(kestrel, client):
    assert client.send(b"shutdown\n") == b"+0\n"
    assert kestrel.shutdowns == 0
    kestrel.clock.advance(0.1)
    assert kestrel.shutdowns == 1


def test_unknown_commands(client):
    assert client.send(b"flush_all\n") == b"-Unknown command: flush_all\n"
    assert client.send(b"\n") == b"-Unknown command: \n"
    assert not client.closed


@pytest.mark.parametrize(
    "request_line, reply",
    [
        (b"get", b"-Queue name required.\n"),
        (b"peek", b"-Queue name required.\n"),
        (b"flush", b"-Queue name required.\n"),
        (b"delete", b"-Queue name required.\n"),
        (b"put", b"-Queue name required.\n"),
        (b"put:", None),
        (b"monitor test", b"-Queue name & timeout required.\n"),
        (b"confirm test", b"-Queue name & count required.\n"),
        (b"get test soon", b"-Error parsing timeout.\n"),
        (b"monitor test soon", b"-Error parsing timeout.\n"),
        (b"confirm test all", b"-Error parsing count.\n"),
    ],
)
def test_missing_or_bad_arguments(client, request_line, reply):
    if reply is None:
        assert client.send(request_line + b"\n") == b""
        assert client.send(b"\n") == b"-Queue name required.\n"
    else:
        assert client.send(request_line + b"\n") == reply
    assert not client.closed


def test_illegal_queue_names_are_refused(kestrel, client):
    for request in (b"get a.b\n", b"put a~b:\nx\n\n", b"peek a.b\n"):
        reply = client.send(request)
        assert reply.startswith(b"-queue name contains illegal characters") and reply.count(b"\n") == 1
    assert not client.closed
    assert len(kestrel.collection) == 0


# Status (2.1, 3.10)


@pytest.fixture
def with_status(harness, tmp_path) -> ServerHarness:
    return ServerHarness(harness, status_file=str(tmp_path / "status"), max_open_transactions=10)


def test_status_without_a_status_file(client):
    assert client.send(b"status\n") == b"-server status is not configured\n"
    assert client.send(b"status up\n") == b"-server status is not configured\n"
    assert not client.closed


def test_status_reports_and_sets(with_status):
    client = connect(with_status)
    assert client.send(b"status\n") == b":UP\n"
    assert client.send(b"status ReadOnly\n") == b"+0\n"
    assert client.send(b"status\n") == b":READONLY\n"
    assert client.send(b"status spongebob\n") == b"-unknown status: spongebob\n"
    assert client.send(b"status down\n") == b"-status down cannot be set by a client\n"
    assert not client.closed


def test_readonly_refuses_writes_without_closing(with_status):
    client = connect(with_status)
    with_status.add("test", b"x")
    client.send(b"status readonly\n")
    assert client.send(b"put test:\ny\n\n") == b"-Server not available for operation put\n"
    assert client.send(b"flush test\n") == b"-Server not available for operation flush\n"
    assert client.send(b"delete test\n") == b"-Server not available for operation delete\n"
    assert client.send(b"get test\n") == b":x\n"
    assert not client.closed
    assert with_status.queue_stat("test", "total_items") == 1


def test_quiescent_refuses_reads_without_closing(with_status):
    client = connect(with_status)
    with_status.add("test", b"x")
    assert client.send(b"get test\n") == b":x\n"
    client.send(b"status quiescent\n")
    assert client.send(b"get test\n") == b"-Server not available for operation get\n"
    assert with_status.queue_stat("test", "open_transactions") == 0
    assert client.send(b"peek test\n") == b"-Server not available for operation peek\n"
    assert client.send(b"monitor test 10\n") == b"-Server not available for operation monitor\n"
    assert not client.closed


# Connections


def test_disconnect_aborts_open_reads(kestrel, client):
    kestrel.add("test", b"a", b"b", b"c")
    client.send(b"monitor test 0\n")
    client.disconnect()
    assert kestrel.contents("test") == [b"a", b"b", b"c"]


def test_disconnect_cancels_a_waiting_read(kestrel, client):
    client.send(b"get test 10000\n")
    assert kestrel.queue_stat("test", "waiters") == 1
    client.disconnect()
    assert kestrel.queue_stat("test", "waiters") == 0
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []


def test_an_item_freed_by_a_disconnect_goes_to_a_waiting_get(kestrel, client):
    kestrel.add("test", b"x")
    other = connect(kestrel)
    assert client.send(b"get test\n") == b":x\n"
    assert other.send(b"get test 1000\n") == b""
    client.disconnect()
    assert other.written() == b":x\n"


PIPELINE = (
    b"put p:\none\ntwo\n\n"
    b"get p\n"
    b"peek p\n"
    b"get p 0\n"
    b"get p\n"
    b"confirm p 1\n"
    b"bogus\n"
    b"version\n"
)
PIPELINE_REPLIES = b"+2\n:one\n:two\n:two\n*\n-Not that many transactions open.\n-Unknown command: bogus\n" + VERSION


def test_pipelined_requests_split_at_every_byte(tmp_path):
    for split in range(1, len(PIPELINE)):
        kestrel = ServerHarness(QueueHarness(str(tmp_path / str(split))))
        client = connect(kestrel)
        replies = client.send(PIPELINE[:split]) + client.send(PIPELINE[split:])
        assert replies == PIPELINE_REPLIES, split
        assert kestrel.queue_stat("p", "items") == 0


def test_pipelined_requests_one_byte_at_a_time(client):
    replies = b"".join(client.send(PIPELINE[n:n + 1]) for n in range(len(PIPELINE)))
    assert replies == PIPELINE_REPLIES


def test_replies_of_one_burst_go_out_in_one_write(client):
    writes = []
    client.transport.writeSequence = writes.append
    client.send(PIPELINE)
    assert len(writes) == 1


@pytest.fixture
def small_limits(harness) -> ServerHarness:
    return ServerHarness(harness, max_line_length=16, max_value_size=32)


def test_a_command_line_longer_than_the_limit_is_refused_and_closed(small_limits):
    client = connect(small_limits)
    assert client.send(b"get " + b"q" * 12 + b"\n") == NO_ITEM
    assert client.send(b"get " + b"q" * 13 + b"\n") == b"-Line longer than 16 bytes.\n"
    assert client.closed


def test_item_lines_may_be_as_long_as_a_value(small_limits):
    client = connect(small_limits)
    assert client.send(b"put q:\n" + b"x" * 32 + b"\n\n") == b"+1\n"
    assert client.send(b"put q:\n" + b"x" * 33) == b""
    assert client.send(b"x") == b"-Line longer than 32 bytes.\n"
    assert client.closed
    assert small_limits.queue_stat("q", "items") == 1


def test_a_client_that_pipelines_without_reading_is_paused_until_its_wait_ends(small_limits):
    client = connect(small_limits)
    client.send(b"get q 1000\n")
    assert client.send(b"version\n" * 6) == b""
    assert client.transport.producerState == "producing"
    assert client.send(b"version\n" * 2) == b""
    assert client.transport.producerState == "paused"
    small_limits.clock.advance(1)
    assert client.written() == NO_ITEM + VERSION * 8
    assert client.transport.producerState == "producing"


def test_an_idle_connection_times_out(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    kestrel.clock.advance(29)
    client.send(b"version\n")
    kestrel.clock.advance(29)
    assert not client.closed
    kestrel.clock.advance(1)
    assert client.closed


def test_a_client_trickling_a_line_is_idle(harness):
    kestrel = ServerHarness(harness, client_timeout=30.0)
    client = connect(kestrel)
    for _ in range(30):
        client.send(b"v")
        kestrel.clock.advance(1)
    assert client.closed


def test_connections_beyond_max_connections_are_refused(harness):
    kestrel = ServerHarness(harness, max_connections=1)
    first = connect(kestrel)
    refused = connect(kestrel)
    assert refused.written() == b"-Too many connections.\n"
    assert refused.closed
    refused.disconnect()
    assert kestrel.stats.curr_connections == 1
    first.disconnect()
    assert not connect(kestrel).closed


def test_wire_bytes_are_counted(kestrel, client):
    client.send(b"version\nget q\n")
    assert kestrel.stats.bytes_read == len(b"version\nget q\n")
    assert kestrel.stats.bytes_written == len(VERSION + NO_ITEM)


# Queues that fsync every write


def test_put_waits_for_the_fsync_of_its_items(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    assert client.send(b"put q:\na\nb\n\nversion\n") == b""
    kestrel.clock.advance(0)
    assert client.written() == b""
    runner.run_all()
    assert client.written() == b"+2\n" + VERSION


def test_a_failed_fsync_is_an_error_reply(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    client.send(b"put q:\na\n\nversion\n")
    kestrel.clock.advance(0)
    _function, _args, result = runner.calls.pop(0)
    result.errback(OSError("disk on fire"))
    reply = client.written()
    assert reply.startswith(b"-Internal error: journal write failed") and reply.endswith(b"\n" + VERSION)
    assert reply.count(b"\n") == 2
    assert not client.closed


def test_a_put_to_a_queue_that_fsyncs_takes_the_lines_of_a_read_together_and_later_ones_once_written(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    assert client.send(b"put q:\na\nb\n") == b""
    assert kestrel.queue_stat("q", "items") == 2
    assert client.send(b"c\nd\n") == b""
    kestrel.clock.advance(0)
    # c and d wait until a and b are on disk.
    assert kestrel.queue_stat("q", "items") == 2
    runner.run_next()
    assert kestrel.queue_stat("q", "items") == 4
    # The reply waits for c and d.
    assert client.send(b"\nversion\n") == b""
    runner.run_all()
    assert client.written() == b"+4\n" + VERSION
    assert kestrel.contents("q") == [b"a", b"b", b"c", b"d"]


def test_the_items_of_a_put_that_arrive_together_are_written_in_one_batch(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    assert client.send(b"put q:\n" + b"item\n" * 1000 + b"\n") == b""
    kestrel.clock.advance(0)
    assert len(runner.calls) == 1
    runner.run_all()
    assert client.written() == b"+1000\n"


def test_a_write_that_fails_before_the_end_of_a_put_is_an_error_reply(held_writes):
    kestrel, runner = held_writes
    client = connect(kestrel)
    client.send(b"put q:\na\n")
    client.send(b"b\n\nversion\n")
    kestrel.clock.advance(0)
    _function, _args, result = runner.calls.pop(0)
    result.errback(OSError("disk on fire"))
    kestrel.clock.advance(0)
    runner.run_all()
    reply = client.written()
    assert reply.startswith(b"-Internal error: journal write failed") and reply.endswith(b"\n" + VERSION)
    assert reply.count(b"\n") == 2


def test_a_put_takes_no_item_line_while_the_writer_is_behind(harness):
    # Behind: more journal bytes wait for the writer than it allows (two items' records here).
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner, max_unwritten_bytes=100)
    writer.startService()
    kestrel = ServerHarness(harness, writer=writer)
    client = connect(kestrel)
    items = [b"%02d" % n + b"." * 38 for n in range(6)]
    assert client.send(b"put q:\n" + b"\n".join(items) + b"\n\nversion\n") == b""
    assert kestrel.queue_stat("q", "items") == 2
    kestrel.clock.advance(0)
    assert kestrel.queue_stat("q", "items") == 2
    runner.run_next()
    # The writer caught up: the put goes on until it is behind again.
    assert kestrel.queue_stat("q", "items") == 4
    while runner.calls or writer.behind():
        kestrel.clock.advance(0)
        runner.run_all()
    assert client.written() == b"+6\n" + VERSION
    assert kestrel.contents("q") == items
