"""
The Thrift protocol (doc/compatibility.md §2.2, §2.3, §5) over a real collection and server, on a Clock;
and the frame scanner that guards thriftpy2's decoders.
"""

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TMemoryBuffer
from twisted.internet.testing import StringTransport

from kestrel import PROTOCOL_VERSION
from kestrel.protocols.thrift import scan as thrift_scan
from kestrel.protocols.thrift.protocol import ThriftFactory
from kestrel.protocols.thrift.codec import (
    METHODS,
    Kestrel,
    QueueInfo,
    ThriftItem,
    ThriftStatus,
    decode_arguments,
)
from kestrel.protocols.thrift.scan import MalformedFrame, MessageHeader, scan_message
from kestrel.test.support import START, QueueHarness, ServerHarness, pending_calls
from kestrel.test.test_memcache import Connection

# Frames as a client writes and reads them


def message(method: str, *args, seqid: int = 0, message_type: int = TMessageType.CALL, **kwargs) -> bytes:
    """The message of a call, without its frame length."""
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocol(buffer)
    protocol.write_message_begin(method, message_type, seqid)
    protocol.write_struct(getattr(Kestrel, f"{method}_args")(*args, **kwargs))
    protocol.write_message_end()
    return buffer.getvalue()


def framed(body: bytes) -> bytes:
    return struct.pack("!I", len(body)) + body


def call_frame(method: str, *args, seqid: int = 0, **kwargs) -> bytes:
    return framed(message(method, *args, seqid=seqid, **kwargs))


class Reply:
    """One decoded reply: its header, and its value or the application exception."""

    def __init__(self, body: bytes):
        protocol = TBinaryProtocol(TMemoryBuffer(body))
        self.name, self.type, self.seqid = protocol.read_message_begin()
        if self.type == TMessageType.EXCEPTION:
            self.error = TApplicationException()
            protocol.read_struct(self.error)
            self.value = None
        else:
            self.error = None
            result = getattr(Kestrel, f"{self.name}_result")()
            protocol.read_struct(result)
            self.value = getattr(result, "success", None)


def replies_in(data: bytes) -> list[Reply]:
    """The replies in what the server wrote."""
    replies = []
    while data:
        (length,) = struct.unpack_from("!I", data)
        replies.append(Reply(data[4:4 + length]))
        data = data[4 + length:]
    return replies


class ThriftConnection(Connection):
    """A ThriftProtocol on a StringTransport: frames in, decoded replies out."""

    def __init__(self, factory: ThriftFactory):
        self.transport = StringTransport()
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> list[Reply]:
        self.protocol.dataReceived(data)
        return self.replies()

    def replies(self) -> list[Reply]:
        return replies_in(self.written())

    def call(self, method: str, *args, **kwargs):
        """Call and return the value, or raise the application exception it got."""
        (reply,) = self.send(call_frame(method, *args, **kwargs))
        assert reply.name == method
        if reply.error is not None:
            raise reply.error
        return reply.value

    def refusal(self, method: str, *args, **kwargs) -> TApplicationException:
        with pytest.raises(TApplicationException) as raised:
            self.call(method, *args, **kwargs)
        return raised.value


class ThriftServer:
    """A ServerHarness with a started Thrift factory: the server-wide handle table."""

    def __init__(self, kestrel: ServerHarness):
        self.kestrel = kestrel
        self.clock = kestrel.clock
        self.factory = ThriftFactory(kestrel.server)
        self.factory.doStart()
        self.handles = self.factory.handles

    def connect(self) -> ThriftConnection:
        return ThriftConnection(self.factory)

    def __getattr__(self, name):
        return getattr(self.kestrel, name)


@pytest.fixture
def kestrel(harness) -> ThriftServer:
    return ThriftServer(ServerHarness(harness, max_open_transactions=10))


@pytest.fixture
def client(kestrel) -> ThriftConnection:
    return kestrel.connect()


def items(*pairs) -> list:
    return [ThriftItem(data=data, id=handle) for data, handle in pairs]


def timers(kestrel: ThriftServer) -> list:
    kestrel.settle()
    return pending_calls(kestrel.clock)


# put


def test_put_returns_the_count(kestrel, client):
    assert client.call("put", "test", [b"one"]) == 1
    assert client.call("put", "test", [b"two", b"three"]) == 2
    assert client.call("put", "test", []) == 0
    assert kestrel.contents("test") == [b"one", b"two", b"three"]


def test_put_stops_at_the_first_refused_item(harness):
    kestrel = ThriftServer(ServerHarness(harness, queue_overrides={"small": {"max_item_size": 4}}))
    assert kestrel.connect().call("put", "small", [b"one", b"too big", b"two"]) == 1
    assert kestrel.contents("small") == [b"one"]


def test_put_expiry_is_milliseconds_from_now(kestrel, client):
    assert client.call("put", "test", [b"x"], 5000) == 1
    assert client.call("put", "test", [b"y"]) == 1
    queue = kestrel.collection.queue("test")
    assert queue.peek().expiry == int(START * 1000) + 5000
    kestrel.clock.advance(5.001)
    assert client.call("get", "test", 5) == items((b"y", 0))


def test_put_keeps_item_bytes_exactly(kestrel, client):
    data = bytes(range(256)) * 3
    assert client.call("put", "test", [data, b""]) == 2
    assert kestrel.contents("test") == [data, b""]


# get


def test_get_removes_items_for_good_with_id_zero(kestrel, client):
    kestrel.add("test", b"one", b"two")
    assert client.call("get", "test", 1) == items((b"one", 0))
    assert kestrel.queue_stat("test", "open_transactions") == 0
    assert client.call("get", "test", 5, 0, 0) == items((b"two", 0))
    assert client.call("get", "test", 5) == []


def test_get_of_no_items(kestrel, client):
    kestrel.add("test", b"one")
    assert client.call("get", "test", 0) == []
    assert kestrel.queue_stat("test", "items") == 1


def test_get_with_a_timeout_waits_until_the_deadline(kestrel, client):
    assert client.send(call_frame("get", "test", 1, 1000)) == []
    kestrel.clock.advance(0.999)
    assert client.replies() == []
    kestrel.clock.advance(0.002)
    (reply,) = client.replies()
    assert reply.value == []


def test_get_with_a_timeout_collects_what_arrives_until_the_deadline(kestrel, client):
    kestrel.add("test", b"one")
    assert client.send(call_frame("get", "test", 3, 1000)) == []
    kestrel.clock.advance(0.5)
    kestrel.add("test", b"two")
    assert client.replies() == []
    kestrel.clock.advance(0.501)
    (reply,) = client.replies()
    assert reply.value == items((b"one", 0), (b"two", 0))


def test_get_with_a_timeout_returns_as_soon_as_it_has_max_items(kestrel, client):
    assert client.send(call_frame("get", "test", 2, 1000)) == []
    kestrel.add("test", b"one", b"two")
    (reply,) = client.replies()
    assert reply.value == items((b"one", 0), (b"two", 0))
    assert timers(kestrel) == []


def test_reliable_get_opens_under_handle_one(kestrel, client):
    kestrel.add("test", b"one")
    assert client.call("get", "test", 1, 0, 500) == items((b"one", 1))
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (0, 1)


def test_reliable_get_of_several_items_numbers_them(kestrel, client):
    kestrel.add("test", b"one", b"two")
    assert client.call("get", "test", 2, 0, 500) == items((b"one", 1), (b"two", 2))


def test_handles_are_global_over_queues_and_connections(kestrel, client):
    kestrel.add("red", b"r")
    kestrel.add("blue", b"b")
    assert client.call("get", "red", 1, 0, 500) == items((b"r", 1))
    assert kestrel.connect().call("get", "blue", 1, 0, 500) == items((b"b", 2))


def test_too_many_open_reads_gives_an_empty_list(kestrel, client):
    kestrel.add("test", *[b"%d" % n for n in range(12)])
    got = client.call("get", "test", 10, 0, 500)
    assert [item.id for item in got] == list(range(1, 11))
    assert client.call("get", "test", 10, 0, 500) == []
    # A plain get is no open read: it is still allowed.
    assert client.call("get", "test", 1) == items((b"10", 0))


def test_the_open_limit_counts_what_one_get_takes(kestrel, client):
    kestrel.add("test", *[b"%d" % n for n in range(12)])
    assert len(client.call("get", "test", 8, 0, 500)) == 8
    assert len(client.call("get", "test", 5, 0, 500)) == 2


def test_the_open_limit_is_per_connection_and_per_queue(kestrel, client):
    kestrel.add("test", *[b"%d" % n for n in range(20)])
    kestrel.add("other", b"x")
    assert len(client.call("get", "test", 10, 0, 500)) == 10
    assert len(client.call("get", "other", 10, 0, 500)) == 1
    assert len(kestrel.connect().call("get", "test", 10, 0, 500)) == 10


def test_a_reliable_get_that_waits_opens_what_arrives(kestrel, client):
    assert client.send(call_frame("get", "test", 1, 1000, 500)) == []
    kestrel.add("test", b"late")
    (reply,) = client.replies()
    assert reply.value == items((b"late", 1))
    assert kestrel.queue_stat("test", "open_transactions") == 1


def test_get_on_an_alias_is_empty(harness):
    kestrel = ThriftServer(ServerHarness(harness, aliases={"both": ("a", "b")}))
    client = kestrel.connect()
    assert client.call("put", "both", [b"x"]) == 1
    assert client.call("get", "both", 1, 0, 500) == []
    assert kestrel.contents("a") == kestrel.contents("b") == [b"x"]


# confirm and abort


def test_confirm_removes_the_items_for_good(kestrel, client):
    kestrel.add("test", b"one", b"two", b"three")
    client.call("get", "test", 2, 0, 500)
    assert client.call("confirm", "test", {1, 2}) == 2
    assert client.call("confirm", "test", {1, 2}) == 0
    assert kestrel.queue_stat("test", "open_transactions") == 0
    kestrel.clock.advance(1)
    assert kestrel.contents("test") == [b"three"]


def test_abort_puts_the_items_back_at_the_head_in_order(kestrel, client):
    kestrel.add("test", b"one", b"two", b"three")
    client.call("get", "test", 2, 0, 500)
    assert client.call("abort", "test", {1, 2}) == 2
    assert client.call("abort", "test", {1, 2}) == 0
    assert kestrel.contents("test") == [b"one", b"two", b"three"]


def test_confirm_and_abort_count_only_open_handles(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    assert client.call("confirm", "test", {1, 7, 99}) == 1
    assert client.call("abort", "test", set()) == 0


def test_handles_are_looked_up_whatever_the_queue_name(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    assert client.call("confirm", "elsewhere", {1}) == 1
    assert "elsewhere" not in kestrel.collection


def test_auto_abort_puts_the_item_back_after_its_timeout(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    kestrel.clock.advance(0.499)
    assert kestrel.queue_stat("test", "open_transactions") == 1
    kestrel.clock.advance(0.002)
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "open_transactions")) == (1, 0)
    assert len(kestrel.handles) == 0
    assert timers(kestrel) == []
    assert client.call("confirm", "test", {1}) == 0


def test_an_item_auto_aborted_max_deliveries_times_goes_to_the_dead_letter_queue(harness):
    kestrel = ThriftServer(ServerHarness(harness, queue_overrides={"jobs": {"max_deliveries": 2, "dead_letter_queue": "dead"}}))
    client = kestrel.connect()
    client.call("put", "jobs", [b"poison", b"fine"])
    for handle in (1, 2):
        assert client.call("get", "jobs", 1, 0, 500) == items((b"poison", handle))
        kestrel.clock.advance(0.501)
    assert client.call("get", "jobs", 1, 0, 500) == items((b"fine", 3))
    assert client.call("get", "dead", 1) == items((b"poison", 0))
    assert kestrel.queue_stat("jobs", "dead_lettered") == 1


def test_the_abort_timer_starts_when_the_get_completes(kestrel, client):
    client.send(call_frame("get", "test", 1, 1000, 500))
    kestrel.clock.advance(0.9)
    kestrel.add("test", b"one")
    assert client.replies()[0].value == items((b"one", 1))
    kestrel.clock.advance(0.499)
    assert kestrel.queue_stat("test", "open_transactions") == 1
    kestrel.clock.advance(0.002)
    assert kestrel.queue_stat("test", "open_transactions") == 0


@pytest.mark.parametrize("method", ["confirm", "abort"])
def test_confirm_and_abort_stop_the_timers(kestrel, client, method):
    kestrel.add("test", b"one", b"two")
    client.call("get", "test", 2, 0, 500)
    assert len(timers(kestrel)) == 2
    assert client.call(method, "test", {1, 2}) == 2
    assert timers(kestrel) == []
    assert len(kestrel.handles) == 0


def test_some_confirmed_leaves_one_timer_that_aborts_the_other(kestrel, client):
    kestrel.add("test", b"one", b"two", b"three")
    client.call("get", "test", 3, 0, 500)
    assert client.call("confirm", "test", {1, 3}) == 2
    assert len(timers(kestrel)) == 1
    kestrel.clock.advance(0.501)
    assert kestrel.contents("test") == [b"two"]


def test_a_handle_may_be_confirmed_from_another_connection(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    assert kestrel.connect().call("confirm", "test", {1}) == 1
    assert kestrel.queue_stat("test", "open_transactions") == 0


def test_closing_the_connection_aborts_nothing(kestrel, client):
    kestrel.add("test", b"one", b"two")
    client.call("get", "test", 2, 0, 60000)
    client.disconnect()
    assert kestrel.queue_stat("test", "open_transactions") == 2
    other = kestrel.connect()
    assert other.call("confirm", "test", {1}) == 1
    assert other.call("abort", "test", {2}) == 1
    assert kestrel.contents("test") == [b"two"]


def test_a_disconnect_while_a_reliable_get_waits_puts_back_what_it_took(kestrel, client):
    kestrel.add("test", b"one")
    client.send(call_frame("get", "test", 2, 1000, 500))
    assert kestrel.queue_stat("test", "open_transactions") == 1
    client.disconnect()
    assert (kestrel.queue_stat("test", "items"), kestrel.queue_stat("test", "waiters")) == (1, 0)
    assert len(kestrel.handles) == 0
    assert timers(kestrel) == []


def test_deleting_a_queue_drops_its_handles_and_timers(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    client.call("delete_queue", "test")
    assert len(kestrel.handles) == 0
    assert timers(kestrel) == []


def test_a_handle_of_a_deleted_queue_does_not_touch_its_successor(kestrel, client):
    kestrel.add("test", b"old")
    client.call("get", "test", 1, 0, 500)
    kestrel.connect().call("delete_queue", "test")
    kestrel.add("test", b"new")
    assert client.call("get", "test", 1, 0, 500) == items((b"new", 2))
    assert kestrel.collection.queue("test").open_xids() == [1]
    assert client.call("confirm", "test", {1}) == 0
    assert client.call("abort", "test", {1}) == 0
    assert kestrel.queue_stat("test", "open_transactions") == 1


def test_a_reliable_get_whose_queue_is_deleted_while_it_waits_opens_no_handle(kestrel, client):
    kestrel.add("test", b"one")
    client.send(call_frame("get", "test", 2, 1000, 500))
    kestrel.connect().call("delete_queue", "test")
    (reply,) = client.replies()
    assert reply.value == items((b"one", 0))
    assert len(kestrel.handles) == 0
    assert timers(kestrel) == []


def test_stopping_the_factory_stops_the_timers_and_leaves_the_reads_open(kestrel, client):
    kestrel.add("test", b"one")
    client.call("get", "test", 1, 0, 500)
    kestrel.factory.doStop()
    assert timers(kestrel) == []
    assert kestrel.queue_stat("test", "open_transactions") == 1


# peek, flush, delete, status, version


def test_peek_reports_the_head_and_the_queue_stats(kestrel, client):
    kestrel.add("test", b"head", b"tail!")
    client.call("get", "test", 1, 0, 500)
    kestrel.add("test", b"more")
    waiting = kestrel.connect()
    waiting.send(call_frame("get", "other", 1, 1000))
    kestrel.clock.advance(0.25)
    stats = dict(kestrel.collection.queue("test").stats())
    info = client.call("peek", "test")
    assert info == QueueInfo(
        head_item=b"tail!", items=2, bytes=9, journal_bytes=stats["logsize"], age=250, waiters=0, open_transactions=1
    )
    assert stats["logsize"] > 0
    assert client.call("peek", "other").waiters == 1
    assert kestrel.queue_stat("test", "items") == 2


def test_peek_of_an_empty_queue_has_no_head_and_creates_the_queue(kestrel, client):
    info = client.call("peek", "fresh")
    assert info == QueueInfo(head_item=None, items=0, bytes=0, journal_bytes=0, age=0, waiters=0, open_transactions=0)
    assert "fresh" in kestrel.collection


def test_flush_queue_delete_queue_and_flush_all_queues(kestrel, client):
    kestrel.add("a", b"1", b"2")
    kestrel.add("b", b"3")
    assert client.call("flush_queue", "a") is None
    assert kestrel.queue_stat("a", "items") == 0
    client.call("flush_queue", "nothing")
    assert "nothing" not in kestrel.collection
    kestrel.add("a", b"4")
    client.call("flush_all_queues")
    assert (kestrel.queue_stat("a", "items"), kestrel.queue_stat("b", "items")) == (0, 0)
    client.call("delete_queue", "a")
    assert "a" not in kestrel.collection
    client.call("delete_queue", "nothing")
    assert kestrel.collection.queue_deletes == 1


def test_version(client):
    assert client.call("get_version") == PROTOCOL_VERSION


def test_status_without_a_status_file(client):
    assert client.call("current_status") == ThriftStatus.NOT_CONFIGURED
    error = client.refusal("set_status", ThriftStatus.UP)
    assert error.type == TApplicationException.INTERNAL_ERROR
    assert error.message == "server status is not configured"


@pytest.fixture
def with_status(harness, tmp_path) -> ThriftServer:
    return ThriftServer(ServerHarness(harness, status_file=str(tmp_path / "status"), max_open_transactions=10))


def test_status_reports_and_sets(with_status, tmp_path):
    client = with_status.connect()
    assert client.call("current_status") == ThriftStatus.UP
    client.call("set_status", ThriftStatus.READ_ONLY)
    assert client.call("current_status") == ThriftStatus.READ_ONLY
    assert (tmp_path / "status").read_text() == "ReadOnly\n"
    client.call("set_status", ThriftStatus.QUIESCENT)
    assert client.call("current_status") == ThriftStatus.QUIESCENT
    with_status.server.status.set("writeavoid")
    assert client.call("current_status") == ThriftStatus.NOT_CONFIGURED
    client.call("set_status", ThriftStatus.UP)
    assert client.call("current_status") == ThriftStatus.UP


def test_not_configured_cannot_be_set(with_status):
    client = with_status.connect()
    assert client.refusal("set_status", ThriftStatus.NOT_CONFIGURED).message == "status 0 cannot be set"
    assert client.refusal("set_status", 42).message == "status 42 cannot be set"
    assert client.call("current_status") == ThriftStatus.UP


def test_readonly_refuses_writes(with_status):
    client = with_status.connect()
    with_status.add("test", b"x")
    client.call("set_status", ThriftStatus.READ_ONLY)
    for method, args, operation in [
        ("put", ("test", [b"y"]), "set"),
        ("flush_queue", ("test",), "flush"),
        ("flush_all_queues", (), "flush_all"),
        ("delete_queue", ("test",), "delete"),
    ]:
        error = client.refusal(method, *args)
        assert (error.type, error.message) == (TApplicationException.INTERNAL_ERROR, f"Server not available for operation {operation}")
    assert client.call("get", "test", 1, 0, 500) == items((b"x", 1))
    assert client.call("confirm", "test", {1}) == 1
    assert not client.closed


def test_quiescent_refuses_reads_but_confirms(with_status):
    client = with_status.connect()
    with_status.add("test", b"x", b"y")
    client.call("get", "test", 1, 0, 500)
    client.call("set_status", ThriftStatus.QUIESCENT)
    assert client.refusal("get", "test", 1).message == "Server not available for operation get"
    assert client.refusal("peek", "test").message == "Server not available for operation peek"
    assert client.call("confirm", "test", {1}) == 1
    assert with_status.queue_stat("test", "items") == 1


def test_a_get_that_waits_ends_with_what_it_has_when_reads_are_blocked(with_status):
    client = with_status.connect()
    client.send(call_frame("get", "test", 3, 1000))
    with_status.server.status.set("quiescent")
    # The read waiting since before the change takes this item; the next read is refused.
    with_status.add("test", b"x")
    (reply,) = client.replies()
    assert reply.value == items((b"x", 0))
    assert with_status.queue_stat("test", "waiters") == 0


# Calls that cannot be served


def test_an_illegal_queue_name_is_an_application_exception(kestrel, client):
    error = client.refusal("put", "a.b", [b"x"])
    assert error.type == TApplicationException.INTERNAL_ERROR
    assert error.message.startswith("queue name contains illegal characters")
    assert client.call("get_version") == PROTOCOL_VERSION


def test_a_missing_queue_name_is_an_application_exception(client):
    assert client.refusal("get", None, 1).message == "queue_name is required"
    assert client.refusal("peek", "").message == "queue_name is required"


def test_an_unknown_method_is_an_application_exception(client):
    body = message("get_version").replace(b"get_version", b"get_potato!")
    (reply,) = client.send(framed(body))
    assert (reply.name, reply.error.type) == ("get_potato!", TApplicationException.UNKNOWN_METHOD)
    assert client.call("get_version") == PROTOCOL_VERSION


def test_a_message_that_is_not_a_call_is_refused(client):
    (reply,) = client.send(framed(message("get_version", seqid=3, message_type=TMessageType.REPLY)))
    assert (reply.seqid, reply.error.type) == (3, TApplicationException.INVALID_MESSAGE_TYPE)


def test_a_failing_handler_is_an_internal_error_and_the_connection_stays(kestrel, client, monkeypatch, captured_logs):
    monkeypatch.setattr(client.protocol.handler, "get_version", lambda: 1 / 0)
    error = client.refusal("get_version")
    assert error.type == TApplicationException.INTERNAL_ERROR
    assert error.message == "internal error in get_version: division by zero"
    assert any("Thrift call get_version failed" in line for line in captured_logs.messages())
    assert client.call("put", "test", [b"x"]) == 1


def test_a_result_that_cannot_be_encoded_is_an_internal_error(client, monkeypatch):
    monkeypatch.setattr(client.protocol.handler, "get_version", lambda: object())
    assert client.refusal("get_version").type == TApplicationException.INTERNAL_ERROR
    assert client.call("current_status") == ThriftStatus.NOT_CONFIGURED


def test_replies_echo_the_sequence_id(client):
    replies = client.send(call_frame("get_version", seqid=7) + call_frame("current_status", seqid=-2))
    assert [(reply.name, reply.seqid) for reply in replies] == [("get_version", 7), ("current_status", -2)]


def test_calls_behind_a_waiting_get_are_answered_after_it(kestrel, client):
    frames = call_frame("get", "test", 1, 1000, seqid=1) + call_frame("put", "test", [b"x"], seqid=2) + call_frame("get_version", seqid=3)
    assert client.send(frames) == []
    kestrel.clock.advance(1.001)
    replies = client.replies()
    assert [(reply.seqid, reply.value) for reply in replies] == [(1, []), (2, 1), (3, PROTOCOL_VERSION)]


def test_frames_split_at_every_byte(tmp_path):
    frames = call_frame("put", "q", [b"one", b"two"], seqid=1) + call_frame("get", "q", 5, 0, 500, seqid=2) + call_frame("confirm", "q", {1, 2}, seqid=3)
    expected = [(1, 2), (2, items((b"one", 1), (b"two", 2))), (3, 2)]
    for split in range(1, len(frames)):
        kestrel = ThriftServer(ServerHarness(QueueHarness(str(tmp_path / str(split))), max_open_transactions=10))
        client = kestrel.connect()
        replies = client.send(frames[:split]) + client.send(frames[split:])
        assert [(reply.seqid, reply.value) for reply in replies] == expected, split


# Frames that must not reach the decoder


@pytest.fixture
def small_frames(harness) -> ThriftServer:
    return ThriftServer(ServerHarness(harness, max_value_size=100))


def test_a_frame_over_the_limit_is_refused_and_skipped(small_frames):
    client = small_frames.connect()
    frame = call_frame("put", "test", [b"x" * 200], seqid=9)
    (reply,) = client.send(frame + call_frame("get_version", seqid=10))[:1]
    assert (reply.name, reply.seqid, reply.error.type) == ("put", 9, TApplicationException.PROTOCOL_ERROR)
    assert reply.error.message == f"a frame of {len(frame) - 4} bytes is larger than the limit of 100"
    assert "test" not in small_frames.collection
    assert client.call("get_version") == PROTOCOL_VERSION
    assert not client.closed


def test_a_frame_over_the_limit_arriving_in_pieces_is_skipped_as_it_comes(small_frames):
    client = small_frames.connect()
    frame = call_frame("put", "test", [b"x" * 1000]) + call_frame("get_version", seqid=4)
    replies = []
    for start in range(0, len(frame), 7):
        replies += client.send(frame[start:start + 7])
        assert len(client.protocol._buffer) <= 100
    assert [(reply.name, reply.seqid) for reply in replies] == [("put", 0), ("get_version", 4)]
    assert replies[0].error.type == TApplicationException.PROTOCOL_ERROR


def test_a_frame_of_exactly_the_limit_is_served(small_frames):
    client = small_frames.connect()
    body = message("put", "test", [b""])
    padded = message("put", "test", [b"x" * (100 - len(body))])
    assert len(padded) == 100
    assert client.send(framed(padded))[0].value == 1


def test_a_client_that_pipelines_without_reading_is_paused_until_its_wait_ends(small_frames):
    client = small_frames.connect()
    version = call_frame("get_version")
    # The frames held behind the waiting get may hold up to a frame's limit of bytes.
    held = 100 // (len(version) - 4)
    assert client.send(call_frame("get", "q", 1, 1000)) == []
    assert client.send(version * held) == []
    assert client.transport.producerState == "producing"
    assert client.send(version) == []
    assert client.transport.producerState == "paused"
    small_frames.clock.advance(1.001)
    assert [reply.value for reply in client.replies()] == [[]] + [PROTOCOL_VERSION] * (held + 1)
    assert client.transport.producerState == "producing"


def test_something_that_is_not_thrift_is_closed(small_frames):
    client = small_frames.connect()
    assert client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []
    assert client.closed


def test_a_frame_without_a_strict_header_closes_the_connection(client):
    body = message("get_version")
    assert client.send(framed(b"\x00\x00\x00\x0bget_version\x01" + body[-5:])) == []
    assert client.closed


@pytest.mark.parametrize(
    "body, problem",
    [
        # put(queue_name="q", items=<a list declaring 2^31-1 strings>)
        (b"\x0b\x00\x01\x00\x00\x00\x01q\x0f\x00\x02\x0b\x7f\xff\xff\xff\x00", "cannot fit"),
        # a list of 2^31-1 elements of an unknown type
        (b"\x0f\x00\x02\x10\x7f\xff\xff\xff\x00", "unknown element type 16"),
        # a list of STOPs
        (b"\x0f\x00\x02\x00\x7f\xff\xff\xff\x00", "unknown element type 0"),
        # a string with a negative length
        (b"\x0b\x00\x01\xff\xff\xff\xf0\x00", "does not fit"),
        # a set of i64 declaring more than the frame holds
        (b"\x0e\x00\x02\x0a\x00\x00\x00\x02" + b"\x00" * 8 + b"\x00", "cannot fit"),
        # structs nested deeper than the cap
        (b"\x0c\x00\x01" * 40 + b"\x00" * 41, "nest too deep"),
        # a struct that never ends
        (b"\x08\x00\x01\x00\x00\x00\x01", "past the end"),
        # bytes after the message
        (b"\x00\x00", "after the end"),
    ],
)
def test_malformed_bodies_are_protocol_errors(client, body, problem):
    header = message("put")[:-1]
    (reply,) = client.send(framed(header + body))
    assert (reply.name, reply.error.type) == ("put", TApplicationException.PROTOCOL_ERROR)
    assert problem in reply.error.message
    assert client.call("get_version") == PROTOCOL_VERSION


def test_a_hostile_count_is_refused_at_once(client):
    started = time.perf_counter()
    header = message("confirm")[:-1]
    client.send(framed(header + b"\x0e\x00\x02\x02\x7f\xff\xff\xff" + b"\x00" * 1000 + b"\x00"))
    assert time.perf_counter() - started < 0.5


# Connections


def test_an_idle_connection_times_out(harness):
    kestrel = ThriftServer(ServerHarness(harness, client_timeout=30.0))
    client = kestrel.connect()
    kestrel.clock.advance(29)
    client.call("get_version")
    kestrel.clock.advance(29)
    assert not client.closed
    kestrel.clock.advance(1)
    assert client.closed


def test_a_client_trickling_a_frame_is_idle(harness):
    kestrel = ThriftServer(ServerHarness(harness, client_timeout=30.0))
    client = kestrel.connect()
    frame = call_frame("put", "q", [b"x" * 100])
    for start in range(30):
        client.send(frame[start:start + 1])
        kestrel.clock.advance(1)
    assert client.closed


def test_a_connection_waiting_in_a_get_does_not_time_out(harness):
    kestrel = ThriftServer(ServerHarness(harness, client_timeout=30.0))
    client = kestrel.connect()
    client.send(call_frame("get", "q", 1, 100000))
    kestrel.clock.advance(99)
    assert not client.closed
    kestrel.clock.advance(1.001)
    assert client.replies()[0].value == []
    kestrel.clock.advance(30)
    assert client.closed


def test_wire_bytes_are_counted(kestrel, client):
    frame = call_frame("get_version")
    client.protocol.dataReceived(frame)
    assert (kestrel.stats.bytes_read, kestrel.stats.bytes_written) == (len(frame), len(client.written()))


def test_connections_beyond_max_connections_are_closed(harness):
    kestrel = ThriftServer(ServerHarness(harness, max_connections=1))
    kestrel.connect()
    refused = kestrel.connect()
    assert refused.closed
    assert refused.transport.value() == b""


@pytest.fixture
def thrift_held_writes(held_writes):
    kestrel, runner = held_writes
    return ThriftServer(kestrel), runner


def test_put_to_a_queue_that_fsyncs_waits_for_the_fsync(thrift_held_writes):
    kestrel, runner = thrift_held_writes
    client = kestrel.connect()
    assert client.send(call_frame("put", "q", [b"a", b"b"], seqid=1) + call_frame("get_version", seqid=2)) == []
    kestrel.clock.advance(0)
    assert client.replies() == []
    runner.run_all()
    assert [(reply.seqid, reply.value) for reply in client.replies()] == [(1, 2), (2, PROTOCOL_VERSION)]


def test_confirm_on_a_queue_that_fsyncs_waits_for_the_fsync(thrift_held_writes):
    kestrel, runner = thrift_held_writes
    client = kestrel.connect()
    client.send(call_frame("put", "q", [b"a"], seqid=1))
    kestrel.clock.advance(0)
    runner.run_all()
    client.send(call_frame("get", "q", 1, 0, 5000, seqid=2))
    kestrel.clock.advance(0)
    runner.run_all()
    replies = client.replies()
    [item] = replies[-1].value
    assert client.send(call_frame("confirm", "q", {item.id}, seqid=3)) == []
    kestrel.clock.advance(0)
    assert client.replies() == []
    runner.run_all()
    assert [(reply.seqid, reply.value) for reply in client.replies()] == [(3, 1)]


def test_a_failed_fsync_is_an_internal_error(thrift_held_writes):
    kestrel, runner = thrift_held_writes
    client = kestrel.connect()
    client.send(call_frame("put", "q", [b"a"]))
    kestrel.clock.advance(0)
    _function, _args, result = runner.calls.pop(0)
    result.errback(OSError("disk on fire"))
    (reply,) = client.replies()
    assert reply.error.type == TApplicationException.INTERNAL_ERROR
    assert reply.error.message.startswith("internal error in put: journal write failed")


# The scanner


def test_every_call_of_the_interface_passes_the_scanner_and_decodes():
    calls = {
        "put": ("q", [b"a", b""], 10),
        "get": ("q", 5, 100, 500),
        "confirm": ("q", {1, 2**40}),
        "abort": ("q", set()),
        "peek": ("q",),
        "flush_queue": ("q",),
        "flush_all_queues": (),
        "delete_queue": ("q",),
        "current_status": (),
        "set_status": (ThriftStatus.UP,),
        "get_version": (),
    }
    assert sorted(calls) == sorted(Kestrel.thrift_services)
    for name, args in calls.items():
        body = message(name, *args, seqid=5)
        assert scan_message(body) == MessageHeader(name.encode(), TMessageType.CALL, 5)
        decoded = decode_arguments(body, METHODS[name.encode()])
        assert len(decoded) == len(args)


@st.composite
def thrift_values(draw, depth=3):
    """A (wire type, encoded value) pair of any type the binary protocol has."""
    scalar = st.sampled_from([
        (thrift_scan.BOOL, st.binary(min_size=1, max_size=1)),
        (thrift_scan.BYTE, st.binary(min_size=1, max_size=1)),
        (thrift_scan.I16, st.binary(min_size=2, max_size=2)),
        (thrift_scan.I32, st.binary(min_size=4, max_size=4)),
        (thrift_scan.I64, st.binary(min_size=8, max_size=8)),
        (thrift_scan.DOUBLE, st.binary(min_size=8, max_size=8)),
    ])
    kinds = ["scalar", "string"] + (["struct", "list", "map"] if depth > 0 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "scalar":
        ttype, data = draw(scalar)
        return ttype, draw(data)
    if kind == "string":
        data = draw(st.binary(max_size=20))
        return thrift_scan.STRING, struct.pack("!i", len(data)) + data
    if kind == "struct":
        fields = draw(st.lists(thrift_values(depth - 1), max_size=4))
        encoded = b"".join(bytes([ttype]) + struct.pack("!h", draw(st.integers(-5, 5))) + data for ttype, data in fields)
        return thrift_scan.STRUCT, encoded + b"\x00"
    if kind == "list":
        etype, first = draw(thrift_values(depth - 1))
        rest = draw(st.lists(thrift_values(depth - 1).filter(lambda value: value[0] == etype), max_size=3))
        elements = [first] + [data for _, data in rest]
        return thrift_scan.LIST, bytes([etype]) + struct.pack("!i", len(elements)) + b"".join(elements)
    ktype, key = draw(thrift_values(0))
    vtype, value = draw(thrift_values(depth - 1))
    return thrift_scan.MAP, bytes([ktype, vtype]) + struct.pack("!i", 1) + key + value


def call_of(name: bytes, arguments: bytes) -> bytes:
    return struct.pack("!Ii", 0x80010001, len(name)) + name + struct.pack("!i", 1) + arguments


@given(thrift_values(), st.sampled_from(sorted(METHODS)))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_well_formed_messages_pass_and_decode(value, name):
    ttype, data = value
    arguments = bytes([ttype]) + b"\x00\x01" + data + b"\x00"
    frame = call_of(name, arguments)
    assert scan_message(frame) == MessageHeader(name, TMessageType.CALL, 1)
    decode_arguments(frame, METHODS[name])


@given(thrift_values(), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_no_proper_prefix_of_a_message_passes(value, data):
    ttype, encoded = value
    frame = call_of(b"put", bytes([ttype]) + b"\x00\x01" + encoded + b"\x00")
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(MalformedFrame):
        scan_message(frame[:cut])


@given(thrift_values(), st.data())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_messages_are_refused_or_decode_quickly(value, data):
    ttype, encoded = value
    frame = bytearray(call_of(b"put", bytes([ttype]) + b"\x00\x02" + encoded + b"\x00"))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(frame) - 1))
        frame[position] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0F, 0x0D, 0x0C, data.draw(st.integers(0, 255))]))
    frame = bytes(frame)
    try:
        header = scan_message(frame)
    except MalformedFrame:
        return
    method = METHODS.get(header.name)
    if method is not None:
        decode_arguments(frame, method)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_never_crash_the_scanner(frame):
    try:
        scan_message(frame)
    except MalformedFrame:
        pass


@given(st.binary(max_size=60))
@settings(max_examples=500)
def test_random_bodies_after_a_good_header_are_refused_or_decode(body):
    frame = call_of(b"get", body)
    try:
        scan_message(frame)
    except MalformedFrame as error:
        assert error.header == MessageHeader(b"get", TMessageType.CALL, 1)
        return
    decode_arguments(frame, METHODS[b"get"])


# Finagle's protocol upgrade and client ids


def request_header(client_id: str | None) -> bytes:
    """Finagle's RequestHeader as its clients write it: trace and span ids, the client id, no contexts."""
    fields = struct.pack("!bhq", 10, 1, 7) + struct.pack("!bhq", 10, 2, 8)
    if client_id is not None:
        name = client_id.encode()
        fields += struct.pack("!bh", 12, 6) + struct.pack("!bhi", 11, 1, len(name)) + name + b"\x00"
    fields += struct.pack("!bhbi", 15, 8, 12, 0)
    return fields + b"\x00"


def upgrade(client: ThriftConnection) -> None:
    client.protocol.dataReceived(framed(_upgrade_call()))
    body = client.written()
    (length,) = struct.unpack_from("!I", body)
    reply = TBinaryProtocol(TMemoryBuffer(body[4:4 + length]))
    assert reply.read_message_begin() == ("__can__finagle__trace__v3__", TMessageType.REPLY, 0)
    assert body[4 + length - 1:] == b"\x00" and len(body) == 4 + length  # an empty UpgradeReply


def _upgrade_call() -> bytes:
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocol(buffer)
    protocol.write_message_begin("__can__finagle__trace__v3__", TMessageType.CALL, 0)
    return buffer.getvalue() + b"\x00"  # an empty ConnectionOptions


def upgraded_call(client: ThriftConnection, client_id: str | None, method: str, *args):
    """A call after the upgrade: a request header before the message, a response header before the reply."""
    client.protocol.dataReceived(framed(request_header(client_id) + message(method, *args)))
    body = client.written()
    (length,) = struct.unpack_from("!I", body)
    assert body[4:5] == b"\x00"  # an empty ResponseHeader
    reply = Reply(body[5:4 + length])
    if reply.error is not None:
        raise reply.error
    return reply.value


@pytest.fixture
def whitelisted(harness) -> ThriftServer:
    return ThriftServer(ServerHarness(harness, max_open_transactions=10, queue_overrides={
        "billing": {"whitelist_client_id_for_enqueue": ("producer",), "whitelist_client_id_for_dequeue": ("consumer",)},
    }))


def test_an_upgraded_client_is_known_by_the_client_id_of_each_request(whitelisted):
    client = whitelisted.connect()
    upgrade(client)
    assert upgraded_call(client, "producer", "put", "billing", [b"one", b"two"]) == 2
    with pytest.raises(TApplicationException, match="not available for operation set"):
        upgraded_call(client, "consumer", "put", "billing", [b"three"])
    with pytest.raises(TApplicationException, match="not available for operation get"):
        upgraded_call(client, "producer", "get", "billing", 1)
    assert [item.data for item in upgraded_call(client, "consumer", "get", "billing", 2)] == [b"one", b"two"]
    assert upgraded_call(client, None, "put", "open_to_all", [b"x"]) == 1


def test_a_client_that_never_upgrades_has_no_client_id(whitelisted):
    client = whitelisted.connect()
    with pytest.raises(TApplicationException, match="not available for operation set"):
        client.call("put", "billing", [b"one"])
    assert client.call("put", "open_to_all", [b"x"]) == 1


def test_a_second_upgrade_call_is_an_unknown_method(whitelisted):
    client = whitelisted.connect()
    upgrade(client)
    client.protocol.dataReceived(framed(request_header("producer") + _upgrade_call()))
    body = client.written()
    assert Reply(body[5:]).error.type == TApplicationException.UNKNOWN_METHOD


def test_an_upgraded_frame_without_a_request_header_closes_the_connection(whitelisted):
    client = whitelisted.connect()
    upgrade(client)
    client.protocol.dataReceived(framed(b"\x0c\x00\x06"))  # a struct field that never ends
    assert client.closed
