"""Spec 2.1 and 6.8 (text): raw sockets against a real `twistd kestrel` process."""

import time

import pytest

from kestrel import PROTOCOL_VERSION
from kestrel.load.process import wait_until


@pytest.fixture
def text(kestrel):
    client = kestrel.text_client()
    yield client
    client.close()


def queue_stat(kestrel, queue: str, key: str) -> int:
    return int(kestrel.client().stats()[f"queue_{queue}_{key}"])


# The codec vectors of 2.1, over the wire


def test_get_line_with_crlf(text):
    text.send(b"get foo\r\n")
    assert text.line() == b"*"


def test_a_request_split_across_packets(text):
    text.send(b"get f")
    time.sleep(0.05)
    text.send(b"oo\r\n")
    assert text.line() == b"*"


def test_a_timeout_argument_then_its_line_feed(text):
    started = time.monotonic()
    text.send(b"get foo 100")
    time.sleep(0.05)
    text.send(b"\n")
    assert text.line() == b"*"
    assert time.monotonic() - started >= 0.1


def test_a_put_in_three_packets(text):
    for part in (b"put foo:\n", b"hello\n", b"\n"):
        text.send(part)
        time.sleep(0.02)
    assert text.line() == b"+1"
    assert text.request("get foo") == b":hello"


def test_quit_in_capitals_closes(text):
    text.send(b"QUIT\r\n")
    assert text.closed_by_server()


# Commands (6.8)


def test_get_confirms_the_previous_read_then_opens_the_next(kestrel, text):
    text.send(b"put test:\none\ntwo\n\n")
    assert text.line() == b"+2"
    assert text.request("get test") == b":one"
    assert queue_stat(kestrel, "test", "open_transactions") == 1
    assert text.request("get test") == b":two"
    assert (queue_stat(kestrel, "test", "items"), queue_stat(kestrel, "test", "open_transactions")) == (0, 1)
    assert text.request("get test") == b"*"
    assert queue_stat(kestrel, "test", "open_transactions") == 0


def test_get_with_a_timeout_takes_an_item_that_arrives(kestrel, text):
    text.send(b"get late 5000\n")
    time.sleep(0.2)
    producer = kestrel.text_client()
    producer.send(b"put late:\nfinally\n\n")
    assert producer.line() == b"+1"
    assert text.line() == b":finally"


def test_get_times_out(text):
    started = time.monotonic()
    assert text.request("get empty 300") == b"*"
    assert time.monotonic() - started >= 0.25


def test_peek_monitor_and_confirm(kestrel, text):
    text.send(b"put m:\na\nb\nc\n\n")
    assert text.line() == b"+3"
    assert text.request("peek m") == b":a"
    text.send(b"monitor m 200\n")
    assert [text.line() for _ in range(4)] == [b":a", b":b", b":c", b"*"]
    assert text.request("confirm m 5") == b"-Not that many transactions open."
    assert text.request("confirm m 2") == b"+2"
    assert queue_stat(kestrel, "m", "open_transactions") == 1


def test_put_with_an_expiry(text):
    text.send(b"put brief 100:\ngone\n\nput brief:\nstays\n\n")
    assert (text.line(), text.line()) == (b"+1", b"+1")
    time.sleep(0.2)
    assert text.request("get brief") == b":stays"


def test_put_to_a_full_queue_counts_what_it_took(make_server):
    text = make_server(queues="[queues.small]\nmax_items = 2").text_client()
    text.send(b"put small:\n1\n2\n3\n\n")
    assert text.line() == b"+2"


def test_flush_delete_version_and_errors(kestrel, text):
    text.send(b"put gone:\nx\n\n")
    assert text.line() == b"+1"
    assert text.request("flush gone") == b"+0"
    assert text.request("delete gone") == b"+0"
    assert "queue_gone_items" not in kestrel.client().stats()
    assert text.request("version") == b":" + PROTOCOL_VERSION.encode()
    assert text.request("juggle") == b"-Unknown command: juggle"
    assert text.request("get") == b"-Queue name required."
    assert text.request("get q soon") == b"-Error parsing timeout."
    text.send(b"put q soon:\nx\n\n")
    assert text.line() == b"-Error parsing expiration time."
    assert text.request("confirm q") == b"-Queue name & count required."
    assert text.request("monitor q") == b"-Queue name & timeout required."
    assert text.request("get a.b").startswith(b"-queue name contains illegal characters")
    assert text.request("version") == b":" + PROTOCOL_VERSION.encode()


def test_status_and_refusals_keep_the_connection(kestrel, text):
    assert text.request("status") == b":UP"
    assert text.request("status readonly") == b"+0"
    text.send(b"put ro:\nx\n\n")
    assert text.line() == b"-Server not available for operation put"
    assert text.request("status quiescent") == b"+0"
    assert text.request("get ro") == b"-Server not available for operation get"
    assert text.request("status spongebob") == b"-unknown status: spongebob"
    assert text.request("status up") == b"+0"
    assert text.request("status") == b":UP"


def test_item_bytes_round_trip_exactly(text):
    data = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"") + b" caf\xc3\xa9 \xff"
    text.send(b"put bytes:\n%s\n\n" % data)
    assert text.line() == b"+1"
    assert text.request("get bytes") == b":" + data


def test_disconnect_aborts_open_reads(kestrel, text):
    text.send(b"put dc:\nfirst\nsecond\n\n")
    assert text.line() == b"+2"
    text.send(b"monitor dc 0\n")
    assert [text.line() for _ in range(3)] == [b":first", b":second", b"*"]
    text.close()
    assert wait_until(lambda: queue_stat(kestrel, "dc", "items") == 2)
    other = kestrel.text_client()
    assert other.request("get dc") == b":first"


def test_shutdown_replies_then_the_server_exits(kestrel, text):
    assert text.request("shutdown") == b"+0"
    assert kestrel.process.wait(30) == 0
    kestrel.process = None
