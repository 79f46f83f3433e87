"""FIFO queues over SQS (kestrel.sqs.fifo, kestrel.sqs.receipts): deduplication, sequence numbers, message group ordering."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from kestrel.sqs.fifo import DeduplicationWindow, FirstSend, SequenceNumbers, content_deduplication_id
from kestrel.test.sqs_service_support import Sqs, url
from kestrel.test.support import START, ServerHarness


@pytest.fixture
def sqs(harness) -> Sqs:
    sqs = Sqs(ServerHarness(harness))
    sqs.create("orders.fifo", FifoQueue="true")
    return sqs


def send(sqs: Sqs, body: str, group: str = "g", dedup: str | None = None, queue: str = "orders.fifo") -> dict:
    return sqs.send(queue, body, MessageGroupId=group, MessageDeduplicationId=dedup or body)


def restarted(sqs: Sqs, harness) -> Sqs:
    sqs.collection.close()
    harness.settle()
    return Sqs(ServerHarness(harness))


# Sending


def test_a_fifo_send_answers_a_sequence_number_of_twenty_digits_that_grows(sqs):
    first = send(sqs, "one")["SequenceNumber"]
    second = send(sqs, "two")["SequenceNumber"]
    assert len(first) == len(second) == 20
    assert int(second) > int(first)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"MessageDeduplicationId": "d"}, "MissingParameter"),
        ({"MessageGroupId": "g"}, "InvalidParameterValue"),
        ({"MessageGroupId": "g", "MessageDeduplicationId": "d", "DelaySeconds": 5}, "InvalidParameterValue"),
        ({"MessageGroupId": "é", "MessageDeduplicationId": "d"}, "InvalidParameterValue"),
        ({"MessageGroupId": "g", "MessageDeduplicationId": "x" * 129}, "InvalidParameterValue"),
    ],
)
def test_a_fifo_send_needs_its_ids(sqs, params, code):
    assert sqs.error("SendMessage", QueueUrl=url("orders.fifo"), MessageBody="x", **params).code == code


def test_a_duplicate_within_five_minutes_is_answered_as_the_first_and_not_added(sqs):
    first = send(sqs, "one", dedup="d")
    sqs.advance(299)
    again = send(sqs, "one", dedup="d")
    assert (again["MessageId"], again["SequenceNumber"]) == (first["MessageId"], first["SequenceNumber"])
    assert sqs.collection.queue("orders:fifo").items == 1


def test_a_duplicate_after_five_minutes_is_a_new_message(sqs):
    first = send(sqs, "one", dedup="d")
    sqs.advance(300)
    again = send(sqs, "one", dedup="d")
    assert again["MessageId"] != first["MessageId"]
    assert sqs.collection.queue("orders:fifo").items == 2


def test_a_duplicate_is_caught_after_the_message_is_deleted(sqs):
    first = send(sqs, "one", dedup="d")
    [message] = sqs.receive("orders.fifo")
    sqs.delete("orders.fifo", message["ReceiptHandle"])
    assert send(sqs, "one", dedup="d")["MessageId"] == first["MessageId"]
    assert sqs.receive("orders.fifo") == []


def test_content_based_deduplication_takes_the_body(harness):
    sqs = Sqs(ServerHarness(harness))
    sqs.create("cbd.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    first = sqs.send("cbd.fifo", "same", MessageGroupId="g")
    assert sqs.send("cbd.fifo", "same", MessageGroupId="g")["MessageId"] == first["MessageId"]
    assert sqs.send("cbd.fifo", "other", MessageGroupId="g")["MessageId"] != first["MessageId"]
    [message] = sqs.receive("cbd.fifo", AttributeNames=["MessageDeduplicationId"])
    assert message["Attributes"]["MessageDeduplicationId"] == content_deduplication_id("same")


def test_a_restart_rebuilds_the_window_from_the_queued_messages(sqs, harness):
    first = send(sqs, "one", dedup="d")
    sqs = restarted(sqs, harness)
    assert send(sqs, "one", dedup="d")["MessageId"] == first["MessageId"]
    assert sqs.collection.queue("orders:fifo").items == 1


def test_a_batch_deduplicates_within_itself(sqs):
    entries = [{"Id": str(index), "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d"} for index in range(2)]
    result = sqs.call("SendMessageBatch", QueueUrl=url("orders.fifo"), Entries=entries)
    assert result["Successful"][0]["MessageId"] == result["Successful"][1]["MessageId"]
    assert sqs.collection.queue("orders:fifo").items == 1


def test_the_queue_delay_holds_a_group_back_in_order(harness):
    sqs = Sqs(ServerHarness(harness))
    sqs.create("slow.fifo", FifoQueue="true", DelaySeconds=10)
    send(sqs, "one", queue="slow.fifo")
    sqs.set_attributes("slow.fifo", DelaySeconds=0)
    send(sqs, "two", queue="slow.fifo")
    assert sqs.bodies("slow.fifo") == []
    sqs.advance(10)
    assert sqs.bodies("slow.fifo") == ["one", "two"]


# Groups


def test_one_receive_takes_several_messages_of_a_group_in_order(sqs):
    for body in ("a1", "a2", "b1", "a3"):
        send(sqs, body, group=body[0])
    messages = sqs.receive("orders.fifo", MaxNumberOfMessages=10, AttributeNames=["All"])
    assert [(message["Body"], message["Attributes"]["MessageGroupId"]) for message in messages] == [
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("a3", "a"),
    ]


def test_a_group_with_a_message_in_flight_gives_nothing_more(sqs):
    for body in ("a1", "a2", "b1"):
        send(sqs, body, group=body[0])
    [first] = sqs.receive("orders.fifo")
    assert first["Body"] == "a1"
    assert sqs.bodies("orders.fifo") == ["b1"]
    assert sqs.attributes("orders.fifo", "ApproximateNumberOfMessages") == {"ApproximateNumberOfMessages": "1"}
    sqs.delete("orders.fifo", first["ReceiptHandle"])
    assert sqs.bodies("orders.fifo") == ["a2"]


def test_a_group_comes_back_in_the_order_it_was_sent(sqs):
    for body in ("a1", "a2", "a3", "b1"):
        send(sqs, body, group=body[0])
    [first] = sqs.receive("orders.fifo")
    [other] = sqs.receive("orders.fifo", MaxNumberOfMessages=10)  # parks a2 and a3
    assert other["Body"] == "b1"
    sqs.change_visibility("orders.fifo", first["ReceiptHandle"], 0)
    messages = sqs.receive("orders.fifo", MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"])
    assert [(message["Body"], message["Attributes"]["ApproximateReceiveCount"]) for message in messages] == [
        ("a1", "2"),
        ("a2", "1"),
        ("a3", "1"),
    ]


def test_a_message_back_while_its_group_has_others_out_waits_for_them(sqs):
    for body in ("a1", "a2", "a3"):
        send(sqs, body, group="a")
    first, second = sqs.receive("orders.fifo", MaxNumberOfMessages=2, VisibilityTimeout=10)
    assert sqs.bodies("orders.fifo") == []  # parks a3
    sqs.change_visibility("orders.fifo", second["ReceiptHandle"], 0)
    assert sqs.bodies("orders.fifo") == []
    sqs.change_visibility("orders.fifo", first["ReceiptHandle"], 0)
    assert sqs.bodies("orders.fifo") == ["a1", "a2", "a3"]


def test_a_purge_frees_the_groups(sqs):
    send(sqs, "a1", group="a")
    send(sqs, "a2", group="a")
    sqs.receive("orders.fifo")
    sqs.receive("orders.fifo")
    sqs.call("PurgeQueue", QueueUrl=url("orders.fifo"))
    send(sqs, "a3", group="a")
    assert sqs.bodies("orders.fifo") == ["a3"]


def test_an_item_without_a_group_orders_nothing(sqs):
    sqs.kestrel.add("orders:fifo", b"plain")
    send(sqs, "a1", group="a")
    assert sqs.bodies("orders.fifo") == ["plain", "a1"]


# The parts


def test_the_window_forgets_what_is_five_minutes_old():
    clock = Clock()
    clock.advance(START)
    window = DeduplicationWindow(clock)
    window.remember("old", FirstSend("1", "01"), START - 200)
    window.remember("new", FirstSend("2", "02"))
    assert window.first_send("old") == FirstSend("1", "01")
    clock.advance(100)
    assert window.first_send("old") is None
    assert window.first_send("new") == FirstSend("2", "02")
    clock.advance(200)
    assert len(window) == 0


def test_sequence_numbers_grow_even_when_the_clock_stands_still():
    clock = Clock()
    clock.advance(START)
    numbers = SequenceNumbers(clock)
    first, second = numbers.next(), numbers.next()
    assert int(second) == int(first) + 1
    assert int(first) == int(START * 1000) * 1_000_000
