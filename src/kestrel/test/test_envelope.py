"""The envelope (kestrel.envelope): a header beside an item's body, and what the protocols without headers deliver."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.envelope import HEADER_START, MAGIC, body_of, unwrap, wrap
from kestrel.test.support import ServerHarness
from kestrel.test.test_memcache import Connection
from kestrel.test.test_text import TextConnection
from kestrel.test.test_thrift import ThriftServer


def test_an_envelope_gives_back_its_header_and_body():
    data = wrap({"id": "7", "attrs": {"é": {"t": "String", "s": "ü"}}}, b"hello")
    assert data.startswith(MAGIC)
    assert unwrap(data) == ({"id": "7", "attrs": {"é": {"t": "String", "s": "ü"}}}, b"hello")
    assert body_of(data) == b"hello"


@given(st.binary())
def test_an_item_without_the_magic_is_delivered_as_it_is(data):
    if not data.startswith(MAGIC):
        assert unwrap(data) is None
        assert body_of(data) == data


@pytest.mark.parametrize(
    "data",
    [
        MAGIC,  # no length
        MAGIC + b"\x00\x00\x00\x09{}",  # a header longer than the item
        MAGIC + b"\x00\x00\x00\x02[]body",  # a header that is no JSON object
        MAGIC + b"\x00\x00\x00\x02\xff\xfebody",  # nor UTF-8
    ],
)
def test_an_item_that_starts_like_an_envelope_but_is_none_is_no_envelope(data):
    assert unwrap(data) is None


def test_a_header_length_past_the_end_leaves_the_item_whole_for_every_protocol():
    data = MAGIC + b"\x00\x00\x00\x09{}"
    assert body_of(data) == data


def test_the_body_starts_after_the_header():
    data = wrap({}, b"body")
    assert data[HEADER_START:] == b"{}body"


# The protocols without headers deliver the body only


def test_memcache_delivers_the_body_of_a_get_and_of_a_monitor(harness):
    kestrel = ServerHarness(harness, max_open_transactions=10)
    kestrel.add("jobs", wrap({"id": "1"}, b"one"), wrap({"id": "2"}, b"two"), b"plain")
    client = Connection(kestrel.server)
    assert client.send(b"get jobs\r\n") == b"VALUE jobs 0 3\r\none\r\nEND\r\n"
    monitored = client.send(b"monitor jobs 1\r\n")
    assert monitored == b"VALUE jobs 0 3\r\ntwo\r\nEND\r\nVALUE jobs 0 5\r\nplain\r\nEND\r\n"


def test_text_delivers_the_body(harness):
    kestrel = ServerHarness(harness)
    kestrel.add("jobs", wrap({"id": "1"}, b"one"))
    client = TextConnection(kestrel.server)
    assert client.send(b"get jobs\n") == b":one\n"


def test_thrift_delivers_the_body_of_a_get_and_of_a_peek(harness):
    kestrel = ThriftServer(ServerHarness(harness))
    kestrel.add("jobs", wrap({"id": "1"}, b"one"), wrap({"id": "2"}, b"two"), wrap({"id": "3"}, b"three"))
    client = kestrel.connect()
    assert client.call("peek", b"jobs").head_item == b"one"
    assert [item.data for item in client.call("get", b"jobs", 2, 0, 0)] == [b"one", b"two"]
    assert [item.data for item in client.call("get", b"jobs", 1, 0, 1000)] == [b"three"]
