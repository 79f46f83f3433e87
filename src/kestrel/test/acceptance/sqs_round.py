"""
The full round every real SQS client goes through against a real server (test_sqs_clients.py):
queues and their attributes, sends (single, batch, delayed), long-poll receives, visibility
expiry and redelivery, visibility changes, deletes, dead letters, FIFO deduplication and
groups, purge and queue deletion; and the refusals: an unknown key, a wrong secret, a
missing grant.

The client is boto3's interface (acceptance/sqs.py gives the AWS CLI the same one). Queue names
end in ``suffix`` so that the clients' rounds on one server do not meet. The round waits on
real time twice, a second each: a delayed message, and a visibility timeout running out.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kestrel.sqs.digests import md5_of_message_attributes
from kestrel.test.acceptance.sqs import ACCOUNT, REGION

BODY = "one \u2603 <&> \U0001f600"
ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "single"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"bin\x01ary"},
}


def full_round(sqs: Any, base_url: str, suffix: str) -> None:
    jobs = queues_and_attributes(sqs, base_url, suffix)
    send_receive_delete(sqs, jobs)
    dead_letters(sqs, suffix)
    fifo(sqs, suffix)
    purge_and_delete(sqs, jobs)


def refusals(sqs: Any, stranger: Any, wrong_secret: Any, reader: Any, suffix: str) -> None:
    """``stranger`` signs with a key no app has, ``wrong_secret`` with the wrong secret, ``reader`` may only read jobs*."""
    assert code_of(stranger.list_queues) == "InvalidClientTokenId"
    assert code_of(wrong_secret.list_queues) == "SignatureDoesNotMatch"
    url = sqs.create_queue(QueueName=f"jobs-{suffix}-refusals")["QueueUrl"]
    assert code_of(reader.send_message, QueueUrl=url, MessageBody="no") == "AccessDenied"
    assert code_of(reader.create_queue, QueueName=f"jobs-{suffix}-mine") == "AccessDenied"
    assert code_of(reader.purge_queue, QueueUrl=url) == "AccessDenied"
    assert reader.receive_message(QueueUrl=url).get("Messages", []) == []
    other = sqs.create_queue(QueueName=f"audit-{suffix}")["QueueUrl"]
    shown = reader.list_queues().get("QueueUrls", [])
    assert url in shown and other not in shown
    assert code_of(reader.receive_message, QueueUrl=other) == "AccessDenied"
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=other)


def code_of(call: Any, **params: Any) -> str:
    """The SQS error code of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    return caught.value.response["Error"]["Code"]


def receive(sqs: Any, url: str, count: int = 10, wait: int = 0, visibility: int | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = dict(
        QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=wait, AttributeNames=["All"], MessageAttributeNames=["All"]
    )
    if visibility is not None:
        params["VisibilityTimeout"] = visibility
    return sqs.receive_message(**params).get("Messages", [])


def queues_and_attributes(sqs: Any, base_url: str, suffix: str) -> str:
    name = f"jobs-{suffix}"
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": "1", "MessageRetentionPeriod": "3600", "DelaySeconds": "0"},
    )["QueueUrl"]
    assert url == f"{base_url}/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["VisibilityTimeout"], attributes["MessageRetentionPeriod"]) == ("1", "3600")
    assert attributes["QueueArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "4096", "ReceiveMessageWaitTimeSeconds": "0"})
    changed = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize", "VisibilityTimeout"])
    assert changed["Attributes"] == {"MaximumMessageSize": "4096", "VisibilityTimeout": "1"}
    assert code_of(sqs.send_message, QueueUrl=url, MessageBody="x" * 4097) == "InvalidParameterValue"
    assert url in sqs.list_queues(QueueNamePrefix="jobs-")["QueueUrls"]
    sqs.tag_queue(QueueUrl=url, Tags={"team": "billing"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "billing"}
    return url


def send_receive_delete(sqs: Any, url: str) -> None:
    sent = sqs.send_message(QueueUrl=url, MessageBody=BODY, MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageBody"] == hashlib.md5(BODY.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_message_attributes(ATTRIBUTES)
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"b{i}", "MessageBody": f"batch {i}"} for i in range(3)])
    assert sorted(entry["Id"] for entry in batch["Successful"]) == ["b0", "b1", "b2"] and not batch.get("Failed")
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=1)
    delayed_at = time.time()

    # Everything but the delayed message, at once.
    first = {message["Body"]: message for message in receive(sqs, url)}
    assert sorted(first) == sorted([BODY, "batch 0", "batch 1", "batch 2"])
    single = first[BODY]
    assert single["MessageId"] == sent["MessageId"]
    assert single["MessageAttributes"] == ATTRIBUTES
    assert single["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert single["Attributes"]["ApproximateReceiveCount"] == "1"
    assert abs(int(single["Attributes"]["SentTimestamp"]) / 1000 - delayed_at) < 5
    first_receive = single["Attributes"]["ApproximateFirstReceiveTimestamp"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": first[f"batch {i}"]["ReceiptHandle"]} for i in range(3)],
    )
    assert len(deleted["Successful"]) == 3 and not deleted.get("Failed")

    # Long polls: the delayed message once its delay is over, and the single one again once its
    # visibility timeout (the queue's, 1 s) has run out, received a second time.
    later: dict[str, dict[str, Any]] = {}
    while len(later) < 2 and time.time() - delayed_at < 10:
        later.update((message["Body"], message) for message in receive(sqs, url, wait=2, visibility=30))
    assert sorted(later) == sorted([BODY, "delayed"])
    assert time.time() - delayed_at >= 0.9
    again = later[BODY]["Attributes"]
    assert (again["ApproximateReceiveCount"], again["ApproximateFirstReceiveTimestamp"]) == ("2", first_receive)
    assert later[BODY]["ReceiptHandle"] != single["ReceiptHandle"]
    # The first receive's handle is stale now: deleting with it succeeds and deletes nothing, as
    # in SQS (the message is received a third time below). A handle that is none is refused.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=single["ReceiptHandle"])
    assert code_of(sqs.delete_message, QueueUrl=url, ReceiptHandle="not-a-handle") == "ReceiptHandleIsInvalid"

    # A visibility timeout of 0 makes a message visible at once; each makes it one receive older.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=later["delayed"]["ReceiptHandle"], VisibilityTimeout=0)
    (delayed,) = receive(sqs, url, wait=1, visibility=30)
    assert (delayed["Body"], delayed["Attributes"]["ApproximateReceiveCount"]) == ("delayed", "2")
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "s", "ReceiptHandle": later[BODY]["ReceiptHandle"], "VisibilityTimeout": 0}]
    )
    assert [entry["Id"] for entry in changed["Successful"]] == ["s"]
    (single,) = receive(sqs, url, wait=1, visibility=30)
    assert (single["Body"], single["Attributes"]["ApproximateReceiveCount"]) == (BODY, "3")
    assert receive(sqs, url) == []
    for message in (delayed, single):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    counts = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def dead_letters(sqs: Any, suffix: str) -> None:
    dead = sqs.create_queue(QueueName=f"dead-{suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"deadLetterTargetArn": arn, "maxReceiveCount": 2}
    poison = sqs.create_queue(QueueName=f"poison-{suffix}", Attributes={"RedrivePolicy": json.dumps(policy)})["QueueUrl"]
    shown = sqs.get_queue_attributes(QueueUrl=poison, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    assert {key: str(value) for key, value in json.loads(shown).items()} == {"deadLetterTargetArn": arn, "maxReceiveCount": "2"}
    sqs.send_message(QueueUrl=poison, MessageBody="poison")
    for count in ("1", "2"):
        (message,) = receive(sqs, poison, visibility=30)
        assert message["Attributes"]["ApproximateReceiveCount"] == count
        sqs.change_message_visibility(QueueUrl=poison, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    # Received maxReceiveCount times and never deleted: the next receive moves it instead.
    assert receive(sqs, poison) == []
    assert [message["Body"] for message in receive(sqs, dead, wait=1)] == ["poison"]
    for url in (poison, dead):
        sqs.delete_queue(QueueUrl=url)


def fifo(sqs: Any, suffix: str) -> None:
    orders = sqs.create_queue(QueueName=f"orders-{suffix}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    a1 = sqs.send_message(QueueUrl=orders, MessageBody="a1", MessageGroupId="a", MessageDeduplicationId="a1")
    # A duplicate within the deduplication window is acknowledged, and not added again.
    duplicate = sqs.send_message(QueueUrl=orders, MessageBody="a1 again", MessageGroupId="a", MessageDeduplicationId="a1")
    assert duplicate["MessageId"] == a1["MessageId"]
    sqs.send_message(QueueUrl=orders, MessageBody="a2", MessageGroupId="a", MessageDeduplicationId="a2")
    sqs.send_message(QueueUrl=orders, MessageBody="b1", MessageGroupId="b", MessageDeduplicationId="b1")
    (first,) = receive(sqs, orders, count=1, visibility=30)
    assert first["Body"] == "a1" and first["Attributes"]["MessageGroupId"] == "a"
    # While a1 is in flight, nothing more of group a is delivered; group b goes on.
    (other,) = receive(sqs, orders, visibility=30)
    assert other["Body"] == "b1"
    assert receive(sqs, orders) == []
    sqs.delete_message(QueueUrl=orders, ReceiptHandle=first["ReceiptHandle"])
    assert [message["Body"] for message in receive(sqs, orders)] == ["a2"]

    events = sqs.create_queue(
        QueueName=f"events-{suffix}.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for _ in range(2):
        sqs.send_message(QueueUrl=events, MessageBody="same body", MessageGroupId="g")
    assert [message["Body"] for message in receive(sqs, events)] == ["same body"]
    for url in (orders, events):
        sqs.delete_queue(QueueUrl=url)


def purge_and_delete(sqs: Any, url: str) -> None:
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"purged {i}"} for i in range(2)])
    sqs.purge_queue(QueueUrl=url)
    assert receive(sqs, url) == []
    sqs.delete_queue(QueueUrl=url)
    name = url.rsplit("/", 1)[1]
    assert code_of(sqs.get_queue_url, QueueName=name) == "AWS.SimpleQueueService.NonExistentQueue"
