"""An SqsService over a real collection and server on a Clock, and calls to it as the HTTP resource makes them."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.service import SqsService
from kestrel.sqs.wire import SqsCall
from kestrel.test.support import ServerHarness, fired

BASE_URL = "http://127.0.0.1:9324"
ACCOUNT = "000000000000"


def url(name: str) -> str:
    return f"{BASE_URL}/{ACCOUNT}/{name}"


class Everything:
    """A caller with every grant on every queue."""

    def __call__(self, kind: str, queue_name: str) -> None:
        pass

    def visible(self, queue_name: str) -> bool:
        return True


class Grants:
    """A caller with the grants given, as {queue name: {kinds}}."""

    def __init__(self, grants: dict[str, set[str]]):
        self.grants = grants

    def __call__(self, kind: str, queue_name: str) -> None:
        if kind not in self.grants.get(queue_name, set()):
            raise sqs_error("AccessDenied", f"Access to the resource {url(queue_name)} is denied.")

    def visible(self, queue_name: str) -> bool:
        return bool(self.grants.get(queue_name))


class Sqs:
    """The service and the server under it; `call` settles the writer so that durable answers come."""

    def __init__(self, kestrel: ServerHarness):
        self.kestrel = kestrel
        self.clock = kestrel.clock
        self.collection = kestrel.collection
        self.service = SqsService(kestrel.server, kestrel.clock)
        self.service.start()

    def handle(self, action: str, authorize: Any = None, **params) -> dict | Deferred:
        call = SqsCall(action, params, "json")
        return self.service.handle(call, BASE_URL, authorize or Everything())

    def call(self, action: str, **params) -> dict:
        """The result of an action that answers at once or once the writer has run."""
        result = self.handle(action, **params)
        if isinstance(result, Deferred):
            self.kestrel.settle()
            [result] = fired(result)
            if isinstance(result, Exception) or hasattr(result, "raiseException"):
                result.raiseException()
        return result

    def error(self, action: str, **params) -> SqsError:
        with pytest.raises(SqsError) as raised:
            self.call(action, **params)
        return raised.value

    def create(self, name: str, **attributes: Any) -> str:
        params: dict[str, Any] = {"QueueName": name}
        if attributes:
            params["Attributes"] = {key: str(value) for key, value in attributes.items()}
        return self.call("CreateQueue", **params)["QueueUrl"]

    def send(self, name: str, body: str = "hello", **params) -> dict:
        return self.call("SendMessage", QueueUrl=url(name), MessageBody=body, **params)

    def receive(self, name: str, **params) -> list[dict]:
        return self.call("ReceiveMessage", QueueUrl=url(name), **params).get("Messages", [])

    def bodies(self, name: str, **params) -> list[str]:
        return [message["Body"] for message in self.receive(name, MaxNumberOfMessages=10, **params)]

    def delete(self, name: str, handle: str) -> dict:
        return self.call("DeleteMessage", QueueUrl=url(name), ReceiptHandle=handle)

    def change_visibility(self, name: str, handle: str, timeout: int) -> dict:
        return self.call("ChangeMessageVisibility", QueueUrl=url(name), ReceiptHandle=handle, VisibilityTimeout=timeout)

    def attributes(self, name: str, *names: str) -> dict[str, str]:
        result = self.call("GetQueueAttributes", QueueUrl=url(name), AttributeNames=list(names) or ["All"])
        return result.get("Attributes", {})

    def set_attributes(self, name: str, **attributes: Any) -> dict:
        return self.call("SetQueueAttributes", QueueUrl=url(name), Attributes={key: str(value) for key, value in attributes.items()})

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.kestrel.settle()
