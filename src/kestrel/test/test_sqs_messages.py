"""SQS messages as items (kestrel.sqs.messages) and queue names as SQS spells them (kestrel.sqs.names)."""

from __future__ import annotations

import base64

import pytest

from kestrel.envelope import MAGIC, body_of, wrap
from kestrel.queue import Item
from kestrel.sqs.errors import SqsError
from kestrel.sqs.messages import ENCODING_ATTRIBUTE, Message, message_of, stored
from kestrel.sqs.names import check_new_name, engine_name, name_in_url, sqs_name


def item(data: bytes, add_time: int = 1_700_000_000_000, seq: int = 1) -> Item:
    return Item(data, add_time, 0, seq)


def test_a_message_goes_into_an_item_and_comes_back():
    message = Message(
        "id-1",
        "héllo",
        {"s": {"DataType": "String", "StringValue": "v"}, "b": {"DataType": "Binary.raw", "BinaryValue": b"\x00\xff"}},
        {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1"}},
        group_id="g",
        dedup_id="d",
        sequence="00000000000000000001",
        visible_at=1_700_000_005_000,
    )
    data = stored(message)
    assert body_of(data) == "héllo".encode()
    assert message_of("jobs", item(data)) == message


def test_a_plain_message_stores_only_its_id():
    data = stored(Message("id-1", "x"))
    assert data.endswith(b'{"id":"id-1"}x')


@pytest.mark.parametrize("data", [b"plain text", "tab\tand ünïcode \U0001f600".encode()])
def test_an_item_of_allowed_text_is_its_own_body(data):
    message = message_of("jobs", item(data))
    assert message.body == data.decode()
    assert message.attributes == {}


@pytest.mark.parametrize("data", [b"\xff\xfe", b"nul \x00", b"\xed\xa0\x80", MAGIC + b"\x00\x00\x00\x02[]x"])
def test_any_other_item_is_base64_and_says_so(data):
    message = message_of("jobs", item(data))
    assert base64.b64decode(message.body) == data
    assert message.attributes == {ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}}


def test_an_envelope_this_module_did_not_write_is_read_as_a_plain_item():
    data = wrap({"no": "id"}, b"body")
    assert base64.b64decode(message_of("jobs", item(data)).body) == data


def test_a_plain_item_has_a_message_id_of_its_queue_add_time_and_number():
    same = message_of("jobs", item(b"x")).message_id
    assert message_of("jobs", item(b"y")).message_id == same
    assert message_of("other", item(b"x")).message_id != same
    assert message_of("jobs", item(b"x", seq=2)).message_id != same
    assert message_of("jobs", item(b"x", add_time=1)).message_id != same


def test_a_fifo_name_is_spelled_with_a_colon_for_the_engine():
    assert engine_name("orders.fifo") == "orders:fifo"
    assert sqs_name("orders:fifo") == "orders.fifo"
    assert engine_name("jobs") == sqs_name("jobs") == "jobs"


@pytest.mark.parametrize("name, fifo", [("a" * 80, False), ("a-b_C9", False), ("a" * 75 + ".fifo", True)])
def test_sqs_names(name, fifo):
    check_new_name(name, fifo)


@pytest.mark.parametrize("name, fifo", [("a" * 81, False), ("a.b", False), ("a" * 76 + ".fifo", True), ("a", True)])
def test_not_sqs_names(name, fifo):
    with pytest.raises(SqsError):
        check_new_name(name, fifo)


def test_a_url_names_its_queue_percent_encoded():
    assert name_in_url("http://h:1/000000000000/a%2Bb", "000000000000") == "a+b"
    with pytest.raises(SqsError) as raised:
        name_in_url("http://h:1/000000000000/a%2Fb", "000000000000")
    assert raised.value.code == "AWS.SimpleQueueService.NonExistentQueue"
