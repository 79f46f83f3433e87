"""Spec 6.8 (Thrift): a thriftpy2 client against a real `twistd kestrel` process."""

import socket
import struct
import threading
import time

import pytest
from thriftpy2.thrift import TApplicationException

from kestrel import PROTOCOL_VERSION
from kestrel.load.process import wait_until
from kestrel.protocols.thrift.codec import ThriftItem, ThriftStatus
from kestrel.test.test_thrift import Reply, call_frame, framed, message


def items(*pairs) -> list:
    return [ThriftItem(data=data, id=handle) for data, handle in pairs]


@pytest.fixture
def thrift(kestrel):
    client = kestrel.thrift_client()
    yield client
    client.close()


def test_put_returns_the_count(thrift):
    assert thrift.put("counts", [b"one"]) == 1
    assert thrift.put("counts", [b"two", b"three"]) == 2
    assert thrift.get("counts", 10) == items((b"one", 0), (b"two", 0), (b"three", 0))


def test_put_stops_at_the_first_refused_item(make_server):
    kestrel = make_server(queues="[queues.small]\nmax_item_size = 4")
    thrift = kestrel.thrift_client()
    assert thrift.put("small", [b"one", b"too big", b"two"]) == 1
    assert thrift.get("small", 10) == items((b"one", 0))


def test_put_with_an_expiry(thrift):
    assert thrift.put("expiry", [b"brief"], 200) == 1
    assert thrift.put("expiry2", [b"lasting"]) == 1
    assert thrift.peek("expiry").items == 1
    time.sleep(0.3)
    assert thrift.peek("expiry").head_item is None
    assert thrift.get("expiry2", 1) == items((b"lasting", 0))


def test_get_one_item(kestrel, thrift):
    kestrel.client().set("plain", b"data")
    assert thrift.get("plain", 1, 0, 0) == items((b"data", 0))
    assert thrift.get("plain", 1) == []


def test_get_with_a_timeout_waits_for_an_item(kestrel, thrift):
    producer = kestrel.thrift_client()
    threading.Timer(0.2, producer.put, args=("waiting", [b"late"])).start()
    started = time.monotonic()
    assert thrift.get("waiting", 1, 5000) == items((b"late", 0))
    assert 0.15 < time.monotonic() - started < 4
    started = time.monotonic()
    assert thrift.get("waiting", 1, 300) == []
    assert time.monotonic() - started >= 0.25


def test_reliable_gets_number_their_handles_across_queues(thrift):
    thrift.put("reliable", [b"one", b"two", b"three"])
    thrift.put("other", [b"elsewhere"])
    assert thrift.get("reliable", 1, 0, 5000) == items((b"one", 1))
    assert thrift.get("reliable", 2, 0, 5000) == items((b"two", 2), (b"three", 3))
    assert thrift.get("other", 1, 0, 5000) == items((b"elsewhere", 4))
    assert thrift.peek("reliable").open_transactions == 3


def test_too_many_open_reads(make_server):
    kestrel = make_server(server="max_open_transactions = 10")
    thrift = kestrel.thrift_client()
    thrift.put("many", [b"%d" % n for n in range(12)])
    assert [item.id for item in thrift.get("many", 10, 0, 60000)] == list(range(1, 11))
    assert thrift.get("many", 10, 0, 60000) == []
    assert kestrel.thrift_client().get("many", 10, 0, 60000) == items((b"10", 11), (b"11", 12))


def test_confirm_and_abort_sets(thrift):
    thrift.put("sets", [b"a", b"b", b"c", b"d"])
    assert [item.id for item in thrift.get("sets", 4, 0, 60000)] == [1, 2, 3, 4]
    assert thrift.confirm("sets", {1, 3}) == 2
    assert thrift.abort("sets", {2, 4, 99}) == 2
    assert thrift.confirm("sets", {1, 2, 3, 4}) == 0
    info = thrift.peek("sets")
    assert (info.items, info.open_transactions, info.head_item) == (2, 0, b"b")
    assert thrift.get("sets", 5) == items((b"b", 0), (b"d", 0))


def test_auto_abort_after_its_timeout(thrift):
    thrift.put("auto", [b"job"])
    started = time.monotonic()
    assert thrift.get("auto", 1, 0, 300) == items((b"job", 1))
    assert thrift.peek("auto").open_transactions == 1
    assert wait_until(lambda: thrift.peek("auto").items == 1)
    assert time.monotonic() - started >= 0.25
    assert thrift.peek("auto").open_transactions == 0
    assert thrift.confirm("auto", {1}) == 0
    assert thrift.get("auto", 1, 0, 60000) == items((b"job", 2))


def test_open_reads_outlive_the_connection(kestrel, thrift):
    opener = kestrel.thrift_client()
    opener.put("outlive", [b"job"])
    assert opener.get("outlive", 1, 0, 60000) == items((b"job", 1))
    opener.close()
    time.sleep(0.2)
    assert thrift.peek("outlive").open_transactions == 1
    assert thrift.confirm("outlive", {1}) == 1
    info = thrift.peek("outlive")
    assert (info.head_item, info.items, info.open_transactions) == (None, 0, 0)


def test_peek_info(kestrel, thrift):
    thrift.put("info", [b"first", b"second!"])
    info = thrift.peek("info")
    stats = kestrel.client().stats()
    assert info.head_item == b"first"
    assert (info.items, info.bytes, info.open_transactions, info.waiters) == (2, 12, 0, 0)
    assert info.journal_bytes == int(stats["queue_info_logsize"]) > 0
    assert thrift.peek("info").items == 2
    empty = thrift.peek("brand_new")
    assert (empty.head_item, empty.items) == (None, 0)
    assert "queue_brand_new_items" in kestrel.client().stats()


def test_flush_delete_and_flush_all(kestrel, thrift):
    thrift.put("f1", [b"a", b"b"])
    thrift.put("f2", [b"c"])
    thrift.flush_queue("f1")
    assert thrift.peek("f1").items == 0
    thrift.put("f1", [b"d"])
    thrift.flush_all_queues()
    assert (thrift.peek("f1").items, thrift.peek("f2").items) == (0, 0)
    thrift.delete_queue("f2")
    assert "queue_f2_items" not in kestrel.client().stats()


def test_status_and_version(thrift):
    assert thrift.get_version() == PROTOCOL_VERSION
    assert thrift.current_status() == ThriftStatus.UP
    thrift.set_status(ThriftStatus.READ_ONLY)
    assert thrift.current_status() == ThriftStatus.READ_ONLY
    with pytest.raises(TApplicationException) as refused:
        thrift.put("status", [b"x"])
    assert refused.value.message == "Server not available for operation set"
    thrift.set_status(ThriftStatus.QUIESCENT)
    with pytest.raises(TApplicationException) as refused:
        thrift.get("status", 1)
    assert refused.value.message == "Server not available for operation get"
    thrift.set_status(ThriftStatus.UP)
    assert thrift.put("status", [b"x"]) == 1


def test_status_without_a_status_file(make_server):
    thrift = make_server(status_file=False).thrift_client()
    assert thrift.current_status() == ThriftStatus.NOT_CONFIGURED
    with pytest.raises(TApplicationException):
        thrift.set_status(ThriftStatus.UP)
    assert thrift.get_version() == PROTOCOL_VERSION


# Frames a well-behaved client does not send


class RawThrift:
    """Frames over a plain socket."""

    def __init__(self, port: int):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def reply(self) -> Reply:
        while len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack_from("!I", self.buffer)[0]:
            chunk = self.socket.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        (length,) = struct.unpack_from("!I", self.buffer)
        body, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
        return Reply(body)


def test_an_oversized_frame_is_refused_and_the_connection_goes_on(make_server):
    kestrel = make_server(server='max_value_size = "1KB"')
    raw = RawThrift(kestrel.thrift_port)
    raw.send(call_frame("put", "big", [b"x" * 5000], seqid=4) + call_frame("get_version", seqid=5))
    refused, version = raw.reply(), raw.reply()
    assert (refused.seqid, refused.error.type) == (4, TApplicationException.PROTOCOL_ERROR)
    assert "larger than the limit of 1024" in refused.error.message
    assert (version.seqid, version.value) == (5, PROTOCOL_VERSION)
    assert kestrel.thrift_client().peek("big").items == 0


def test_a_hostile_container_count_is_refused_at_once(kestrel):
    raw = RawThrift(kestrel.thrift_port)
    header = message("put")[:-1]
    started = time.monotonic()
    raw.send(framed(header + b"\x0b\x00\x01\x00\x00\x00\x01q\x0f\x00\x02\x0b\x7f\xff\xff\xff\x00"))
    reply = raw.reply()
    assert time.monotonic() - started < 2
    assert reply.error.type == TApplicationException.PROTOCOL_ERROR
    assert kestrel.thrift_client().get_version() == PROTOCOL_VERSION


def test_garbage_closes_only_that_connection(kestrel):
    raw = RawThrift(kestrel.thrift_port)
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    with pytest.raises(ConnectionError):
        raw.reply()
    assert kestrel.thrift_client().get_version() == PROTOCOL_VERSION
