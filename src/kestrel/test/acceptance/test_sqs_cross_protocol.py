"""
One queue, every protocol (doc/sqs.md): what boto3 sends over SQS, memcache, Thrift and text
read as the body's bytes; what they write, SQS receives, text as text and binary data as its
base64 with the `kestrel.encoding` attribute.
"""

from __future__ import annotations

import base64

from kestrel.test.acceptance.sqs import boto3_client, endpoint, sqs_server
from kestrel.test.acceptance.sqs_round import receive

SNOWMAN = "\u2603"
ATTRIBUTES = {"kind": {"DataType": "String", "StringValue": "left behind"}}


def test_what_sqs_sends_memcache_thrift_and_text_read_as_the_body(make_server):
    server = sqs_server(make_server)
    sqs = boto3_client(endpoint(server))
    url = sqs.create_queue(QueueName="outbound")["QueueUrl"]
    for reader in ("memcache", "thrift", "text"):
        sqs.send_message(QueueUrl=url, MessageBody=f"to {reader} {SNOWMAN}", MessageAttributes=ATTRIBUTES)

    assert server.client().get("outbound") == f"to memcache {SNOWMAN}".encode()
    thrift = server.thrift_client()
    assert [item.data for item in thrift.get("outbound", 1)] == [f"to thrift {SNOWMAN}".encode()]
    thrift.close()
    text = server.text_client()
    assert text.request("get outbound") == f":to text {SNOWMAN}".encode()
    assert text.request("get outbound") == b"*"  # confirms the read before it: the queue is empty
    text.close()
    assert receive(sqs, url) == []

    # A FIFO queue `orders.fifo` is `orders:fifo` to the other protocols.
    orders = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=orders, MessageBody="first order", MessageGroupId="g", MessageDeduplicationId="1")
    assert server.client().get("orders:fifo") == b"first order"


def test_what_memcache_thrift_and_text_write_sqs_receives(make_server):
    server = sqs_server(make_server)
    memcache = server.client()
    assert memcache.set("inbound", f"from memcache {SNOWMAN}".encode()) == b"STORED"
    assert memcache.set("inbound", b"\x00\xff binary") == b"STORED"
    thrift = server.thrift_client()
    assert thrift.put("inbound", [f"from thrift {SNOWMAN}".encode()]) == 1
    thrift.close()
    text = server.text_client()
    assert text.request(f"put inbound:\nfrom text {SNOWMAN}\n".encode()) == b"+1"
    text.close()

    sqs = boto3_client(endpoint(server))
    url = sqs.get_queue_url(QueueName="inbound")["QueueUrl"]
    messages = receive(sqs, url)
    bodies = [message["Body"] for message in messages]
    binary = base64.b64encode(b"\x00\xff binary").decode()
    assert bodies == [f"from memcache {SNOWMAN}", binary, f"from thrift {SNOWMAN}", f"from text {SNOWMAN}"]
    assert messages[1]["MessageAttributes"] == {"kestrel.encoding": {"DataType": "String", "StringValue": "base64"}}
    assert "MessageAttributes" not in messages[0]
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert memcache.get("inbound") is None
