"""
The SQS API's actions (kestrel.sqs.service, issue 14) over a real collection and server on a
Clock: queues, attributes, sends, receives, receipt handles and visibility, delays, long
polling, dead letters, purges and deletes, and what crosses to the other protocols.
"""

from __future__ import annotations

import base64
import json

import pytest
from twisted.internet.defer import CancelledError

from kestrel.config import QueueConfig
from kestrel.envelope import unwrap
from kestrel.journal.writer import JournalWriter
from kestrel.sqs.digests import md5_of_body, md5_of_message_attributes
from kestrel.sqs.sending import message_size
from kestrel.test.sqs_service_support import BASE_URL, Everything, Grants, Sqs, url
from kestrel.test.support import RecordingRunner, ServerHarness, drain, fired, pending_calls
from kestrel.test.test_memcache import Connection


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    return ServerHarness(harness)


@pytest.fixture
def sqs(kestrel) -> Sqs:
    return Sqs(kestrel)


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:000000000000:{name}"


def redrive_policy(target: str, count: int) -> str:
    return json.dumps({"deadLetterTargetArn": queue_arn(target), "maxReceiveCount": count})


def restarted(sqs: Sqs, harness) -> Sqs:
    """The server stopped (its held reads still open, as after a crash) and started again on the same spool."""
    sqs.collection.close()
    harness.settle()
    return Sqs(ServerHarness(harness))


def timers(sqs: Sqs) -> list:
    sqs.kestrel.settle()
    return pending_calls(sqs.clock)


# Queues


def test_create_queue_answers_its_url_and_makes_the_queue(sqs):
    assert sqs.create("jobs") == url("jobs")
    assert "jobs" in sqs.collection
    assert sqs.call("GetQueueUrl", QueueName="jobs") == {"QueueUrl": url("jobs")}


def test_a_fifo_queue_is_named_for_the_engine_with_a_colon(sqs):
    assert sqs.create("orders.fifo", FifoQueue="true") == url("orders.fifo")
    assert "orders:fifo" in sqs.collection
    assert sqs.call("ListQueues") == {"QueueUrls": [url("orders.fifo")]}


@pytest.mark.parametrize(
    "name, attributes",
    [("", {}), ("a" * 81, {}), ("bad name", {}), ("orders.fifo", {}), ("orders", {"FifoQueue": "true"})],
)
def test_create_queue_takes_sqs_names_only(sqs, name, attributes):
    error = sqs.error("CreateQueue", QueueName=name, Attributes=attributes)
    assert error.code == "InvalidParameterValue"


def test_create_queue_of_an_existing_queue_with_the_same_attributes_answers_its_url(sqs):
    sqs.create("jobs", VisibilityTimeout=60)
    assert sqs.create("jobs", VisibilityTimeout=60) == url("jobs")
    assert sqs.create("jobs") == url("jobs")


def test_create_queue_of_an_existing_queue_with_other_attributes_is_refused(sqs):
    sqs.create("jobs", VisibilityTimeout=60)
    error = sqs.error("CreateQueue", QueueName="jobs", Attributes={"VisibilityTimeout": "61"})
    assert error.code == "QueueAlreadyExists"
    assert "VisibilityTimeout" in error.message


def test_a_queue_another_protocol_made_exists_for_sqs(sqs, kestrel):
    kestrel.add("legacy", b"x")
    assert sqs.call("GetQueueUrl", QueueName="legacy") == {"QueueUrl": url("legacy")}
    assert sqs.create("legacy") == url("legacy")


def test_sqs_actions_on_a_missing_queue_create_nothing(sqs):
    assert sqs.error("GetQueueUrl", QueueName="nope").code == "AWS.SimpleQueueService.NonExistentQueue"
    assert sqs.error("SendMessage", QueueUrl=url("nope"), MessageBody="x").code == "AWS.SimpleQueueService.NonExistentQueue"
    assert sqs.error("ReceiveMessage", QueueUrl=url("nope")).code == "AWS.SimpleQueueService.NonExistentQueue"
    assert "nope" not in sqs.collection


def test_a_queue_url_of_another_account_names_no_queue_and_one_without_a_queue_is_invalid(sqs):
    sqs.create("jobs")
    other = f"{BASE_URL}/123456789012/jobs"
    assert sqs.error("SendMessage", QueueUrl=other, MessageBody="x").code == "AWS.SimpleQueueService.NonExistentQueue"
    assert sqs.error("SendMessage", QueueUrl=BASE_URL, MessageBody="x").code == "InvalidAddress"


def test_the_queue_url_host_is_the_one_the_client_used(sqs):
    sqs.create("jobs")
    assert sqs.call("SendMessage", QueueUrl="https://elsewhere:443/000000000000/jobs", MessageBody="x")["MessageId"]


def test_list_queues_filters_by_prefix_and_pages(sqs):
    for name in ("b", "a1", "a2", "a3"):
        sqs.create(name)
    assert sqs.call("ListQueues", QueueNamePrefix="a") == {"QueueUrls": [url("a1"), url("a2"), url("a3")]}
    first = sqs.call("ListQueues", MaxResults=2)
    assert first["QueueUrls"] == [url("a1"), url("a2")]
    second = sqs.call("ListQueues", MaxResults=2, NextToken=first["NextToken"])
    assert second == {"QueueUrls": [url("a3"), url("b")]}
    assert sqs.error("ListQueues", NextToken="%%%").code == "InvalidParameterValue"


def test_list_queues_sees_queues_made_and_deleted_since_the_page_before(sqs):
    # The sorted names are kept between pages (a million queues are sorted once): a change must show.
    for name in ("a1", "a3", "b"):
        sqs.create(name)
    first = sqs.call("ListQueues", QueueNamePrefix="a", MaxResults=1)
    assert first["QueueUrls"] == [url("a1")]
    sqs.create("a2")
    sqs.call("DeleteQueue", QueueUrl=url("a3"))
    second = sqs.call("ListQueues", QueueNamePrefix="a", MaxResults=1, NextToken=first["NextToken"])
    assert second == {"QueueUrls": [url("a2")]}
    assert sqs.call("ListQueues") == {"QueueUrls": [url("a1"), url("a2"), url("b")]}


def test_list_queues_shows_only_the_queues_the_caller_has_a_grant_on(sqs):
    sqs.create("mine")
    sqs.create("theirs")
    result = sqs.handle("ListQueues", authorize=Grants({"mine": {"read"}}))
    assert result == {"QueueUrls": [url("mine")]}


def test_every_action_asks_for_its_grant(sqs):
    sqs.create("jobs")
    reader = Grants({"jobs": {"read"}})
    with pytest.raises(Exception) as raised:
        sqs.handle("SendMessage", authorize=reader, QueueUrl=url("jobs"), MessageBody="x")
    assert raised.value.code == "AccessDenied"
    with pytest.raises(Exception) as raised:
        sqs.handle("PurgeQueue", authorize=reader, QueueUrl=url("jobs"))
    assert raised.value.code == "AccessDenied"
    with pytest.raises(Exception) as raised:
        sqs.handle("GetQueueAttributes", authorize=Grants({}), QueueUrl=url("jobs"))
    assert raised.value.code == "AccessDenied"
    assert sqs.handle("ReceiveMessage", authorize=reader, QueueUrl=url("jobs")) == {}


def test_delete_queue_deletes_it_with_the_reads_it_holds(sqs):
    sqs.create("jobs")
    sqs.send("jobs")
    [message] = sqs.receive("jobs")
    assert timers(sqs)
    assert sqs.call("DeleteQueue", QueueUrl=url("jobs")) == {}
    assert "jobs" not in sqs.collection
    assert not timers(sqs)
    assert sqs.error("DeleteMessage", QueueUrl=url("jobs"), ReceiptHandle=message["ReceiptHandle"]).code == (
        "AWS.SimpleQueueService.NonExistentQueue"
    )


def test_a_queue_deleted_and_made_again_does_not_take_the_old_handles(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "old")
    [old] = sqs.receive("jobs")
    sqs.call("DeleteQueue", QueueUrl=url("jobs"))
    sqs.create("jobs")
    sqs.send("jobs", "new")
    [new] = sqs.receive("jobs")
    sqs.delete("jobs", old["ReceiptHandle"])
    sqs.change_visibility("jobs", new["ReceiptHandle"], 0)
    assert sqs.bodies("jobs") == ["new"]


def test_purge_empties_the_queue_and_drops_the_reads_it_holds(sqs):
    sqs.create("jobs")
    for body in ("one", "two", "three"):
        sqs.send("jobs", body)
    sqs.send("jobs", "later", DelaySeconds=60)
    [message] = sqs.receive("jobs")
    assert sqs.call("PurgeQueue", QueueUrl=url("jobs")) == {}
    assert not timers(sqs)
    assert sqs.attributes("jobs", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible") == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    assert sqs.collection.queue("jobs").open_transactions == 0
    assert sqs.delete("jobs", message["ReceiptHandle"]) == {}
    sqs.advance(120)
    assert sqs.receive("jobs") == []


def test_a_second_purge_within_a_minute_is_refused(sqs):
    sqs.create("jobs")
    sqs.call("PurgeQueue", QueueUrl=url("jobs"))
    sqs.advance(59)
    assert sqs.error("PurgeQueue", QueueUrl=url("jobs")).code == "AWS.SimpleQueueService.PurgeQueueInProgress"
    sqs.advance(1)
    assert sqs.call("PurgeQueue", QueueUrl=url("jobs")) == {}


def test_tags_are_added_removed_and_listed(sqs):
    sqs.call("CreateQueue", QueueName="jobs", tags={"team": "a"})
    sqs.call("TagQueue", QueueUrl=url("jobs"), Tags={"env": "prod", "team": "b"})
    assert sqs.call("ListQueueTags", QueueUrl=url("jobs")) == {"Tags": {"team": "b", "env": "prod"}}
    sqs.call("UntagQueue", QueueUrl=url("jobs"), TagKeys=["team", "absent"])
    assert sqs.call("ListQueueTags", QueueUrl=url("jobs")) == {"Tags": {"env": "prod"}}
    sqs.call("UntagQueue", QueueUrl=url("jobs"), TagKeys=["env"])
    assert sqs.call("ListQueueTags", QueueUrl=url("jobs")) == {}


def test_a_queue_takes_at_most_fifty_tags(sqs):
    sqs.create("jobs")
    sqs.call("TagQueue", QueueUrl=url("jobs"), Tags={f"k{index}": "v" for index in range(50)})
    assert sqs.error("TagQueue", QueueUrl=url("jobs"), Tags={"one": "more"}).code == "InvalidParameterValue"


# Attributes


def test_a_new_queue_has_sqs_defaults(sqs):
    sqs.create("jobs")
    attributes = sqs.attributes("jobs")
    assert attributes == {
        "VisibilityTimeout": "30",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "0",
        "SqsManagedSseEnabled": "false",
        "MessageRetentionPeriod": "345600",
        "MaximumMessageSize": "262144",
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
        "ApproximateNumberOfMessagesDelayed": "0",
        "CreatedTimestamp": str(int(sqs.clock.seconds())),
        "LastModifiedTimestamp": str(int(sqs.clock.seconds())),
        "QueueArn": "arn:aws:sqs:us-east-1:000000000000:jobs",
    }
    assert sqs.collection.queue_config("jobs").max_age == 345600


def test_a_fifo_queue_has_its_attributes(sqs):
    sqs.create("orders.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    attributes = sqs.attributes("orders.fifo")
    assert attributes["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "true"
    assert attributes["DeduplicationScope"] == "queue"
    assert attributes["FifoThroughputLimit"] == "perQueue"


def test_a_queue_another_protocol_made_reports_the_longest_retention(sqs, kestrel):
    kestrel.add("legacy", b"x")
    assert sqs.attributes("legacy", "MessageRetentionPeriod", "ApproximateNumberOfMessages") == {
        "MessageRetentionPeriod": "1209600",
        "ApproximateNumberOfMessages": "1",
    }


def test_engine_attributes_are_the_queue_settings(sqs):
    sqs.create("jobs", MessageRetentionPeriod=60, MaximumMessageSize=1024)
    config = sqs.collection.queue_config("jobs")
    assert config.max_age == 60
    assert config.max_item_size == 2 * 1024 + 1024
    sqs.set_attributes("jobs", MessageRetentionPeriod=120)
    assert sqs.collection.queue_config("jobs").max_age == 120
    assert sqs.attributes("jobs", "MessageRetentionPeriod", "MaximumMessageSize") == {
        "MessageRetentionPeriod": "120",
        "MaximumMessageSize": "1024",
    }


def test_set_queue_attributes_changes_them_and_the_last_modified_time(sqs):
    sqs.create("jobs")
    sqs.advance(10)
    sqs.set_attributes("jobs", VisibilityTimeout=5, DelaySeconds=3, ReceiveMessageWaitTimeSeconds=20)
    attributes = sqs.attributes("jobs")
    assert (attributes["VisibilityTimeout"], attributes["DelaySeconds"], attributes["ReceiveMessageWaitTimeSeconds"]) == ("5", "3", "20")
    assert int(attributes["LastModifiedTimestamp"]) == int(attributes["CreatedTimestamp"]) + 10


@pytest.mark.parametrize(
    "attributes, code",
    [
        ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
        ({"VisibilityTimeout": "soon"}, "InvalidAttributeValue"),
        ({"DelaySeconds": "901"}, "InvalidAttributeValue"),
        ({"MaximumMessageSize": "1023"}, "InvalidAttributeValue"),
        ({"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"),
        ({"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue"),
        ({"SqsManagedSseEnabled": "maybe"}, "InvalidAttributeValue"),
        ({"Policy": "[]"}, "InvalidAttributeValue"),
        ({"Colour": "blue"}, "InvalidAttributeName"),
        ({"ContentBasedDeduplication": "true"}, "InvalidAttributeName"),
        ({"QueueArn": "arn:aws:sqs:us-east-1:000000000000:other"}, "InvalidAttributeName"),
        ({"FifoQueue": "true"}, "InvalidAttributeValue"),
        ({"RedrivePolicy": "{}"}, "InvalidParameterValue"),
        ({"RedrivePolicy": redrive_policy("none", 2)}, "InvalidParameterValue"),
        ({"RedrivePolicy": redrive_policy("dead", 0)}, "InvalidParameterValue"),
        ({"RedrivePolicy": redrive_policy("jobs", 2)}, "InvalidParameterValue"),
    ],
)
def test_bad_attributes_are_refused_with_sqs_errors_and_change_nothing(sqs, attributes, code):
    sqs.create("jobs")
    sqs.create("dead")
    before = sqs.attributes("jobs")
    assert sqs.error("SetQueueAttributes", QueueUrl=url("jobs"), Attributes=attributes).code == code
    assert sqs.attributes("jobs") == before


def test_fifo_only_values_are_the_queue_wide_ones(sqs):
    sqs.create("orders.fifo", FifoQueue="true")
    sqs.set_attributes("orders.fifo", DeduplicationScope="queue", FifoThroughputLimit="perQueue")
    error = sqs.error("SetQueueAttributes", QueueUrl=url("orders.fifo"), Attributes={"DeduplicationScope": "messageGroup"})
    assert error.code == "InvalidAttributeValue"


def test_get_queue_attributes_of_an_unknown_name_is_refused(sqs):
    sqs.create("jobs")
    assert sqs.error("GetQueueAttributes", QueueUrl=url("jobs"), AttributeNames=["Colour"]).code == "InvalidAttributeName"
    assert sqs.call("GetQueueAttributes", QueueUrl=url("jobs")) == {}


def test_attributes_and_tags_survive_a_restart(sqs, harness):
    sqs.create("dead")
    redrive = redrive_policy("dead", 3)
    sqs.call(
        "CreateQueue",
        QueueName="jobs",
        Attributes={"VisibilityTimeout": "7", "MessageRetentionPeriod": "600", "RedrivePolicy": redrive, "Policy": "{}"},
        tags={"team": "a"},
    )
    before = sqs.attributes("jobs")
    sqs = restarted(sqs, harness)
    assert sqs.attributes("jobs") == before
    assert before["RedrivePolicy"] == '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dead","maxReceiveCount":3}'
    assert sqs.call("ListQueueTags", QueueUrl=url("jobs")) == {"Tags": {"team": "a"}}


# Sending and receiving


def test_a_message_goes_round(sqs):
    sqs.create("jobs")
    attributes = {"colour": {"DataType": "String", "StringValue": "blue"}, "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}
    sent = sqs.send("jobs", "héllo", MessageAttributes=attributes)
    assert sent == {
        "MessageId": sent["MessageId"],
        "MD5OfMessageBody": md5_of_body("héllo"),
        "MD5OfMessageAttributes": md5_of_message_attributes(attributes),
    }
    [message] = sqs.receive("jobs", MessageAttributeNames=["All"], AttributeNames=["All"])
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "héllo"
    assert message["MD5OfBody"] == md5_of_body("héllo")
    assert message["MessageAttributes"] == attributes
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"] == {
        "SentTimestamp": str(int(sqs.clock.seconds() * 1000)),
        "ApproximateReceiveCount": "1",
        "ApproximateFirstReceiveTimestamp": str(int(sqs.clock.seconds() * 1000)),
    }
    assert sqs.receive("jobs") == []
    assert sqs.delete("jobs", message["ReceiptHandle"]) == {}
    assert sqs.collection.queue("jobs").open_transactions == 0
    assert not timers(sqs)


def test_a_receive_gives_the_attributes_asked_for_and_their_digest(sqs):
    sqs.create("jobs")
    attributes = {
        "a.one": {"DataType": "String", "StringValue": "1"},
        "a.two": {"DataType": "Number", "StringValue": "2"},
        "b": {"DataType": "String", "StringValue": "3"},
    }
    sqs.send("jobs", MessageAttributes=attributes)
    [message] = sqs.receive("jobs", MessageAttributeNames=["a.*"], AttributeNames=["SentTimestamp"])
    assert set(message["MessageAttributes"]) == {"a.one", "a.two"}
    assert message["MD5OfMessageAttributes"] == md5_of_message_attributes(message["MessageAttributes"])
    assert set(message["Attributes"]) == {"SentTimestamp"}


def test_a_receive_takes_up_to_max_number_of_messages_in_order(sqs):
    sqs.create("jobs")
    for index in range(12):
        sqs.send("jobs", str(index))
    assert sqs.bodies("jobs") == [str(index) for index in range(10)]
    assert sqs.bodies("jobs") == ["10", "11"]


@pytest.mark.parametrize(
    "params, code",
    [
        ({"MessageBody": ""}, "MissingParameter"),
        ({"MessageBody": "bell \x07"}, "InvalidMessageContents"),
        ({"MessageBody": "x" * 262_145}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}}}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageAttributes": {"a..b": {"DataType": "String", "StringValue": "v"}}}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "ten"}}}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageAttributes": {"s": {"DataType": "String", "StringValue": "\x00"}}}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageSystemAttributes": {"Other": {"DataType": "String", "StringValue": "v"}}}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageDeduplicationId": "d"}, "InvalidParameterValue"),
    ],
)
def test_bad_messages_are_refused(sqs, params, code):
    sqs.create("jobs")
    assert sqs.error("SendMessage", QueueUrl=url("jobs"), **params).code == code
    assert sqs.collection.queue("jobs").items == 0


def test_the_size_limit_counts_attributes_and_follows_maximum_message_size(sqs):
    sqs.create("jobs", MaximumMessageSize=1024)
    attributes = {"name": {"DataType": "String", "StringValue": "v" * 10}}
    body = "x" * (1024 - message_size({"MessageBody": "", "MessageAttributes": attributes}))
    assert sqs.send("jobs", body, MessageAttributes=attributes)["MessageId"]
    assert sqs.error("SendMessage", QueueUrl=url("jobs"), MessageBody=body + "x", MessageAttributes=attributes).code == (
        "InvalidParameterValue"
    )


def test_a_trace_header_is_kept_and_given_back(sqs):
    sqs.create("jobs")
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}}
    sent = sqs.send("jobs", MessageSystemAttributes=trace)
    assert sent["MD5OfMessageSystemAttributes"] == md5_of_message_attributes(trace)
    [message] = sqs.receive("jobs", MessageSystemAttributeNames=["AWSTraceHeader"])
    assert message["Attributes"] == {"AWSTraceHeader": trace["AWSTraceHeader"]["StringValue"]}


def test_a_batch_reports_each_entry(sqs):
    sqs.create("jobs")
    result = sqs.call(
        "SendMessageBatch",
        QueueUrl=url("jobs"),
        Entries=[
            {"Id": "a", "MessageBody": "one"},
            {"Id": "b", "MessageBody": "bad \x01"},
            {"Id": "c", "MessageBody": "three", "DelaySeconds": 5},
        ],
    )
    assert [entry["Id"] for entry in result["Successful"]] == ["a", "c"]
    assert result["Successful"][0]["MD5OfMessageBody"] == md5_of_body("one")
    [failed] = result["Failed"]
    assert (failed["Id"], failed["Code"], failed["SenderFault"]) == ("b", "InvalidMessageContents", True)
    assert sqs.bodies("jobs") == ["one"]


def test_a_batch_longer_than_the_limit_is_refused_whole(sqs):
    sqs.create("jobs")
    entries = [{"Id": str(index), "MessageBody": "x" * 30_000} for index in range(9)]
    error = sqs.error("SendMessageBatch", QueueUrl=url("jobs"), Entries=entries)
    assert error.code == "AWS.SimpleQueueService.BatchRequestTooLong"
    assert sqs.collection.queue("jobs").items == 0


def test_sends_and_deletes_on_a_queue_that_fsyncs_every_write_answer_once_on_disk(harness):
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    sqs = Sqs(ServerHarness(harness, writer=writer, default_queue=QueueConfig(sync_journal=0.0)))
    created = sqs.handle("CreateQueue", QueueName="jobs")
    writer.flush()
    runner.run_all()
    assert fired(created) == [{"QueueUrl": url("jobs")}]
    sent = fired(sqs.handle("SendMessage", QueueUrl=url("jobs"), MessageBody="x"))
    writer.flush()
    assert sent == []
    runner.run_all()
    [answer] = sent
    assert answer["MD5OfMessageBody"] == md5_of_body("x")
    received = fired(sqs.handle("ReceiveMessage", QueueUrl=url("jobs")))
    writer.flush()
    runner.run_all()
    [message] = received[0]["Messages"]
    deleted = fired(sqs.handle("DeleteMessage", QueueUrl=url("jobs"), ReceiptHandle=message["ReceiptHandle"]))
    writer.flush()
    assert deleted == []
    runner.run_all()
    assert deleted == [{}]


# Receipt handles and visibility


def test_an_unanswered_message_comes_back_after_its_visibility_timeout(sqs):
    sqs.create("jobs", VisibilityTimeout=30)
    sqs.send("jobs")
    [first] = sqs.receive("jobs")
    sqs.advance(29)
    assert sqs.receive("jobs") == []
    sqs.advance(1)
    [second] = sqs.receive("jobs", AttributeNames=["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"])
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["Attributes"]["ApproximateFirstReceiveTimestamp"] == str(int((sqs.clock.seconds() - 30) * 1000))


def test_the_visibility_timeout_of_a_receive_wins(sqs):
    sqs.create("jobs")
    sqs.send("jobs")
    sqs.receive("jobs", VisibilityTimeout=5)
    sqs.advance(5)
    assert sqs.bodies("jobs") == ["hello"]


def test_a_stale_handle_deletes_nothing_and_succeeds(sqs):
    sqs.create("jobs", VisibilityTimeout=1)
    sqs.send("jobs")
    [first] = sqs.receive("jobs")
    sqs.advance(1)
    [second] = sqs.receive("jobs")
    assert sqs.delete("jobs", first["ReceiptHandle"]) == {}
    assert sqs.change_visibility("jobs", first["ReceiptHandle"], 100) == {}
    assert sqs.collection.queue("jobs").open_transactions == 1
    sqs.delete("jobs", second["ReceiptHandle"])
    assert sqs.collection.queue("jobs").open_transactions == 0


@pytest.mark.parametrize("handle", ["", "not a handle", base64.b64encode(b"short").decode(), "A" * 60])
def test_a_malformed_handle_is_invalid(sqs, handle):
    sqs.create("jobs")
    assert sqs.error("DeleteMessage", QueueUrl=url("jobs"), ReceiptHandle=handle).code == "ReceiptHandleIsInvalid"


def test_a_handle_of_another_queue_is_invalid(sqs):
    sqs.create("jobs")
    sqs.create("other")
    sqs.send("jobs")
    [message] = sqs.receive("jobs")
    error = sqs.error("DeleteMessage", QueueUrl=url("other"), ReceiptHandle=message["ReceiptHandle"])
    assert error.code == "ReceiptHandleIsInvalid"


def test_change_visibility_zero_makes_the_message_visible_at_once(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "one")
    sqs.send("jobs", "two")
    [message] = sqs.receive("jobs")
    sqs.change_visibility("jobs", message["ReceiptHandle"], 0)
    assert sqs.bodies("jobs") == ["one", "two"]


def test_change_visibility_starts_the_timeout_again(sqs):
    sqs.create("jobs", VisibilityTimeout=10)
    sqs.send("jobs")
    [message] = sqs.receive("jobs")
    sqs.advance(9)
    sqs.change_visibility("jobs", message["ReceiptHandle"], 10)
    sqs.advance(9)
    assert sqs.receive("jobs") == []
    sqs.advance(1)
    assert sqs.bodies("jobs") == ["hello"]


def test_visibility_cannot_reach_beyond_twelve_hours_from_the_receive(sqs):
    sqs.create("jobs")
    sqs.send("jobs")
    [message] = sqs.receive("jobs", VisibilityTimeout=43_200)
    sqs.advance(100)
    error = sqs.error("ChangeMessageVisibility", QueueUrl=url("jobs"), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=43_101)
    assert error.code == "InvalidParameterValue"
    assert sqs.change_visibility("jobs", message["ReceiptHandle"], 43_100) == {}


def test_batches_of_deletes_and_visibility_changes_report_each_entry(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "one")
    sqs.send("jobs", "two")
    first, second = sqs.receive("jobs", MaxNumberOfMessages=2)
    changed = sqs.call(
        "ChangeMessageVisibilityBatch",
        QueueUrl=url("jobs"),
        Entries=[
            {"Id": "a", "ReceiptHandle": second["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": "junk", "VisibilityTimeout": 0},
        ],
    )
    assert changed["Successful"] == [{"Id": "a"}]
    assert changed["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    entries = [{"Id": "a", "ReceiptHandle": first["ReceiptHandle"]}, {"Id": "b", "ReceiptHandle": "junk"}]
    deleted = sqs.call("DeleteMessageBatch", QueueUrl=url("jobs"), Entries=entries)
    assert deleted["Successful"] == [{"Id": "a"}]
    assert [entry["Id"] for entry in deleted["Failed"]] == ["b"]
    assert sqs.bodies("jobs") == ["two"]


def test_held_messages_come_back_after_a_restart_and_old_handles_are_stale(sqs, harness):
    sqs.create("jobs")
    sqs.send("jobs", "old")
    [old] = sqs.receive("jobs")
    sqs = restarted(sqs, harness)
    assert sqs.delete("jobs", old["ReceiptHandle"]) == {}
    assert sqs.collection.queue("jobs").items == 1
    # Not even a new read of the same queue name, xid and delivery number answers to it.
    sqs.call("DeleteQueue", QueueUrl=url("jobs"))
    sqs.create("jobs")
    sqs.send("jobs", "new")
    sqs.receive("jobs", VisibilityTimeout=5)
    sqs.delete("jobs", old["ReceiptHandle"])
    sqs.advance(5)
    assert sqs.bodies("jobs") == ["new"]


def test_stop_gives_every_held_message_back_and_stops_the_timers(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "one")
    sqs.send("jobs", "later", DelaySeconds=10)
    sqs.receive("jobs", MaxNumberOfMessages=10)
    waiting = sqs.handle("ReceiveMessage", QueueUrl=url("jobs"), WaitTimeSeconds=20)
    sqs.service.stop()
    assert not timers(sqs)
    assert fired(waiting)[0].check(CancelledError)
    assert [unwrap(data)[1] for data in drain(sqs.collection.queue("jobs"))] == [b"one", b"later"]


# Delays


def test_a_delayed_message_is_not_received_before_its_time(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "late", DelaySeconds=10)
    sqs.send("jobs", "now")
    assert sqs.bodies("jobs") == ["now"]
    assert sqs.attributes("jobs", "ApproximateNumberOfMessagesDelayed") == {"ApproximateNumberOfMessagesDelayed": "1"}
    sqs.advance(9)
    assert sqs.receive("jobs") == []
    sqs.advance(1)
    [message] = sqs.receive("jobs", AttributeNames=["ApproximateReceiveCount"])
    assert message["Body"] == "late"
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"


def test_the_queue_delay_applies_when_a_message_has_none(sqs):
    sqs.create("jobs", DelaySeconds=5)
    sqs.send("jobs", "queue's")
    sqs.send("jobs", "own", DelaySeconds=0)
    assert sqs.bodies("jobs") == ["own"]
    sqs.advance(5)
    assert sqs.bodies("jobs") == ["queue's"]


def test_a_delayed_message_wakes_a_waiting_receive_when_it_is_due(sqs):
    sqs.create("jobs")
    sqs.send("jobs", "late", DelaySeconds=5)
    waiting = fired(sqs.handle("ReceiveMessage", QueueUrl=url("jobs"), WaitTimeSeconds=20))
    assert waiting == []
    sqs.advance(5)
    [result] = waiting
    assert [message["Body"] for message in result["Messages"]] == ["late"]


def test_a_receive_looks_at_a_bounded_number_of_items(sqs):
    sqs.create("jobs")
    for index in range(30):
        sqs.send("jobs", str(index), DelaySeconds=60)
    sqs.send("jobs", "ready")
    assert sqs.receive("jobs") == []
    assert sqs.attributes("jobs", "ApproximateNumberOfMessagesDelayed") == {"ApproximateNumberOfMessagesDelayed": "10"}
    sqs.receive("jobs")
    sqs.receive("jobs")
    assert sqs.bodies("jobs") == ["ready"]


# Long polling


def test_a_long_poll_answers_when_a_message_arrives(sqs):
    sqs.create("jobs")
    waiting = fired(sqs.handle("ReceiveMessage", QueueUrl=url("jobs"), WaitTimeSeconds=20, MaxNumberOfMessages=10))
    sqs.advance(3)
    assert waiting == []
    sqs.send("jobs", "one")
    [result] = waiting
    assert [message["Body"] for message in result["Messages"]] == ["one"]


def test_a_long_poll_answers_nothing_at_its_deadline(sqs):
    sqs.create("jobs", ReceiveMessageWaitTimeSeconds=10)
    waiting = fired(sqs.handle("ReceiveMessage", QueueUrl=url("jobs")))
    sqs.advance(9.9)
    assert waiting == []
    sqs.advance(0.1)
    assert waiting == [{}]


def test_a_cancelled_long_poll_takes_nothing(sqs):
    sqs.create("jobs")
    waiting = sqs.handle("ReceiveMessage", QueueUrl=url("jobs"), WaitTimeSeconds=20)
    waiting.cancel()
    assert fired(waiting)[0].check(CancelledError)
    sqs.send("jobs", "one")
    assert sqs.bodies("jobs") == ["one"]


def test_a_cancelled_long_poll_gives_back_what_it_had_taken(harness):
    # Read-behind makes the second read of a receive wait: the first message is taken then.
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    sqs = Sqs(ServerHarness(harness, writer=writer, default_queue=QueueConfig(max_memory_size=1)))
    sqs.handle("CreateQueue", QueueName="jobs")
    sqs.handle("SendMessage", QueueUrl=url("jobs"), MessageBody="one")
    sqs.handle("SendMessage", QueueUrl=url("jobs"), MessageBody="two")
    writer.flush()
    runner.run_all()
    waiting = sqs.handle("ReceiveMessage", QueueUrl=url("jobs"), MaxNumberOfMessages=2)
    outcome = fired(waiting)
    assert outcome == []
    queue = sqs.collection.queue("jobs")
    assert queue.open_transactions == 1
    waiting.cancel()
    assert outcome[0].check(CancelledError)
    assert queue.open_transactions == 0
    assert not timers(sqs)
    writer.flush()
    runner.run_all()
    assert [unwrap(data)[1] for data in drain(queue)] == [b"one", b"two"]


# Dead letters


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(sqs):
    sqs.create("dead")
    sqs.create("jobs", RedrivePolicy=json.dumps({"deadLetterTargetArn": queue_arn("dead"), "maxReceiveCount": "2"}))
    assert sqs.collection.queue_config("jobs").max_deliveries == 2
    sent = sqs.send("jobs", "poison")
    for _ in range(2):
        [message] = sqs.receive("jobs")
        sqs.change_visibility("jobs", message["ReceiptHandle"], 0)
    assert sqs.receive("jobs") == []
    [dead] = sqs.receive("dead", AttributeNames=["ApproximateReceiveCount"])
    assert (dead["Body"], dead["MessageId"]) == ("poison", sent["MessageId"])
    assert sqs.call("ListDeadLetterSourceQueues", QueueUrl=url("dead")) == {"queueUrls": [url("jobs")]}


def test_an_empty_redrive_policy_takes_the_dead_letter_queue_away(sqs):
    sqs.create("dead")
    sqs.create("jobs", RedrivePolicy=redrive_policy("dead", 2))
    sqs.set_attributes("jobs", RedrivePolicy="")
    assert "RedrivePolicy" not in sqs.attributes("jobs")
    assert sqs.collection.queue_config("jobs").dead_letter_queue is None


def test_a_dead_letter_queue_must_be_of_the_same_type(sqs):
    sqs.create("dead")
    attributes = {"FifoQueue": "true", "RedrivePolicy": redrive_policy("dead", 2)}
    error = sqs.error("CreateQueue", QueueName="orders.fifo", Attributes=attributes)
    assert error.code == "InvalidParameterValue"


# One queue, every protocol


def test_an_item_written_by_memcache_reads_as_a_message_over_sqs(sqs, kestrel):
    kestrel.add("legacy", b"plain text", b"\xff\x00binary")
    first, second = sqs.receive("legacy", MaxNumberOfMessages=2, MessageAttributeNames=["All"])
    assert first["Body"] == "plain text"
    assert "MessageAttributes" not in first
    assert second["Body"] == base64.b64encode(b"\xff\x00binary").decode()
    assert second["MessageAttributes"] == {"kestrel.encoding": {"DataType": "String", "StringValue": "base64"}}
    sqs.change_visibility("legacy", first["ReceiptHandle"], 0)
    [again] = sqs.receive("legacy")
    assert again["MessageId"] == first["MessageId"]


def test_a_message_sent_over_sqs_reads_as_its_body_over_memcache(sqs, kestrel):
    sqs.create("jobs")
    sqs.send("jobs", "héllo", MessageAttributes={"a": {"DataType": "String", "StringValue": "b"}})
    client = Connection(kestrel.server)
    assert client.send(b"get jobs\r\n") == b"VALUE jobs 0 6\r\nh\xc3\xa9llo\r\nEND\r\n"


def test_a_queue_made_by_memcache_takes_sqs_and_memcache_writes_in_order(sqs, kestrel):
    client = Connection(kestrel.server)
    client.send(b"set mixed 0 0 3\r\nold\r\n")
    sqs.send("mixed", "new")
    assert sqs.bodies("mixed") == ["old", "new"]


def test_calls_as_the_wire_decodes_them_and_results_as_it_encodes_them(sqs):
    from kestrel.sqs.wire import decode_request, encode_result

    def through_the_wire(action: str, params: dict) -> dict:
        headers = {"x-amz-target": f"AmazonSQS.{action}", "content-type": "application/x-amz-json-1.0"}
        call = decode_request("POST", "/", b"", headers, json.dumps(params).encode())
        result = sqs.service.handle(call, BASE_URL, Everything())
        if not isinstance(result, dict):
            sqs.kestrel.settle()
            [result] = fired(result)
        return json.loads(encode_result(call, result, "request-1")[2])

    assert through_the_wire("CreateQueue", {"QueueName": "jobs", "Attributes": {"DelaySeconds": "0"}, "tags": {"a": "b"}}) == {
        "QueueUrl": url("jobs")
    }
    blob = {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\x01").decode()}
    through_the_wire("SendMessage", {"QueueUrl": url("jobs"), "MessageBody": "x", "MessageAttributes": {"blob": blob}})
    received = through_the_wire("ReceiveMessage", {"QueueUrl": url("jobs"), "MessageAttributeNames": ["All"]})
    [message] = received["Messages"]
    assert message["MessageAttributes"] == {"blob": blob}
    assert through_the_wire("ListQueueTags", {"QueueUrl": url("jobs")}) == {"Tags": {"a": "b"}}
