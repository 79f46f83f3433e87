"""
A real server killed with SIGKILL during a boto3 send loop (acceptance/crash.py does the same
over memcache): on a queue with `sync_journal = "0"`, every send SQS acknowledged is there
after the restart, and so is every message received but not deleted at the kill.
"""

from __future__ import annotations

import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

from kestrel.test.acceptance.sqs import boto3_client, endpoint, sqs_server
from kestrel.test.acceptance.sqs_round import receive

DURABLE = '[queues.durable]\nsync_journal = "0"\n'
# Sends acknowledged before the kill: enough for the loop to be well under way.
ACKNOWLEDGED_BEFORE_KILL = 150


class SendLoop(threading.Thread):
    """Sends numbered messages, one call at a time, noting each acknowledged, until a call fails."""

    def __init__(self, url: str, queue_url: str):
        super().__init__(daemon=True)
        self.sqs = boto3_client(url)
        self.queue_url = queue_url
        self.acknowledged: list[str] = []
        self.sent: list[str] = []

    def run(self) -> None:
        while True:
            body = f"sent {len(self.sent)}"
            self.sent.append(body)
            try:
                self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
            except (BotoCoreError, ClientError):  # the server is gone
                return
            self.acknowledged.append(body)


def test_a_killed_server_keeps_every_acknowledged_send_and_gives_back_what_was_received(make_server):
    server = sqs_server(make_server, DURABLE)
    sqs = boto3_client(endpoint(server))
    queue_url = sqs.create_queue(QueueName="durable")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"held {i}"} for i in range(3)])
    held = {message["Body"] for message in receive(sqs, queue_url, visibility=600)}
    assert held == {"held 0", "held 1", "held 2"}

    loop = SendLoop(endpoint(server), queue_url)
    loop.start()
    deadline = time.monotonic() + 30
    while len(loop.acknowledged) < ACKNOWLEDGED_BEFORE_KILL and loop.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    loop.join(30)
    assert len(loop.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    server.start()
    sqs = boto3_client(endpoint(server))
    queue_url = sqs.get_queue_url(QueueName="durable")["QueueUrl"]
    found: list[str] = []
    while batch := receive(sqs, queue_url, visibility=600):
        found += [message["Body"] for message in batch]
    # The held messages come back at once: their receive ended with the process that held it.
    assert held <= set(found)
    missing = [body for body in loop.acknowledged if body not in found]
    assert not missing, f"{len(missing)} acknowledged sends lost, first {missing[:5]}"
    # Nothing invented, nothing twice; only the send in flight at the kill may be there or not.
    assert len(found) == len(set(found))
    assert set(found) <= held | set(loop.sent)
