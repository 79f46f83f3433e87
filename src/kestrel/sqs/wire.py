"""
SQS's two wire formats as one protocol core without I/O, in the spirit of h11: a request's
parts in, an `SqsCall` out; a result or an error in, a reply's status, headers and body out.

The JSON protocol (current SDKs) posts a JSON object with `X-Amz-Target: AmazonSQS.<Action>`;
the query protocol (older SDKs, other languages, curl) sends `Action=<Action>` with form
parameters, and may send them to the queue's URL instead of naming it in `QueueUrl`. Both
come out as the same call: the action's name and its parameters under the JSON protocol's
member names and types (shapes.py), checked against SQS's rules (rules.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from kestrel.sqs import json_wire, query_wire
from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.rules import check_call
from kestrel.sqs.shapes import ACTIONS, UNSUPPORTED_ACTIONS, Action

Wire = Literal["json", "query"]
TARGET_PREFIX = "AmazonSQS."
# A queue's URL is <scheme>://<host>:<port>/<account>/<queue> (issue 14; Amazon SQS Developer
# Guide, "Amazon SQS queue and message identifiers").
QUEUE_URL_PATH = re.compile(r"/[^/]+/[^/]+")


@dataclass(frozen=True)
class SqsCall:
    """
    One decoded request. ``params`` holds the members the client sent, under the JSON
    protocol's names: integers as int, blobs (a binary message attribute's `BinaryValue`) as
    bytes, lists as lists, maps (`Attributes`, `MessageAttributes`, `Tags`) as dicts, batch
    entries as a list of dicts. ``queue_url_path`` is the request's path (`/<account>/<queue>`)
    when the call was sent to a queue's URL, as older SDKs do for the actions on one queue.
    """

    action: str
    params: dict[str, Any]
    wire: Wire
    queue_url_path: str | None = None

    def queue_url(self, base_url: str) -> str | None:
        """
        The URL of the queue the call names: its `QueueUrl`, which SQS lets override the URL
        it was sent to, else ``base_url`` (`<scheme>://<host>:<port>`) and the path it was sent to.
        """
        if "QueueUrl" in self.params:
            return str(self.params["QueueUrl"])
        return base_url + self.queue_url_path if self.queue_url_path else None


def request_wire(headers: Mapping[str, str]) -> Wire:
    """The wire a request speaks, and so the one to answer its errors in, decoded or not."""
    if "x-amz-target" in headers or _media_type(headers) == json_wire.CONTENT_TYPE:
        return "json"
    return "query"


def decode_request(method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes) -> SqsCall:
    """
    The call a request makes (``headers`` with lower-case names), or SqsError: SQS's answer
    to a request it cannot read, an action it does not know, a parameter missing or out of range.
    """
    queue_url_path = path if QUEUE_URL_PATH.fullmatch(path) else None
    if request_wire(headers) == "json":
        name = _json_action(headers)
        action = _action(name)
        if _media_type(headers) != json_wire.CONTENT_TYPE:
            raise sqs_error(
                "SerializationException", f"The JSON protocol takes {json_wire.CONTENT_TYPE} bodies."
            )
        params = json_wire.decode_json(action.input, body)
        wire: Wire = "json"
    else:
        # A POST body is a form when its Content-Type says so (curl --data's does) or says nothing.
        form = (
            body if method == "POST" and _media_type(headers) in ("", query_wire.FORM_CONTENT_TYPE) else b""
        )
        parameters = query_wire.QueryForm(query, form)
        if parameters.action is None:
            raise sqs_error("MissingAction", "The request must contain the parameter Action.")
        name = parameters.action
        action = _action(name)
        if queue_url_path is not None and not action.names_a_queue:
            # What SQS answers a CreateQueue or ListQueues sent to a queue's URL.
            raise _invalid_action(name)
        params = parameters.read(action.input)
        wire = "query"
    queue_url_path = queue_url_path if action.names_a_queue else None
    check_call(action.input, params, queue_url_path)
    return SqsCall(name, params, wire, queue_url_path)


def encode_result(
    call: SqsCall, result: dict[str, Any], request_id: str
) -> tuple[int, dict[str, str], bytes]:
    """
    The reply to a call that succeeded. ``result`` uses the JSON protocol's output members,
    with the types ``params`` has (`{"Messages": [{"MessageId": ..., "Body": ...,
    "MessageAttributes": {...}}]}`, `{"Successful": [...], "Failed": [...]}`); members the
    action does not return are not sent.
    """
    output = ACTIONS[call.action].output
    if call.wire == "json":
        return 200, _headers(json_wire.CONTENT_TYPE, request_id), json_wire.encode_json_result(output, result)
    body = query_wire.encode_xml_result(call.action, output, result, request_id)
    return 200, _headers(query_wire.CONTENT_TYPE, request_id), body


def encode_error(wire: Wire, error: SqsError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """
    An error reply. Over JSON, `x-amzn-query-error` carries the query code, which botocore
    reports as the error's code, so an SDK sees the same code over either wire.
    """
    if wire == "json":
        headers = _headers(json_wire.CONTENT_TYPE, request_id)
        headers["x-amzn-query-error"] = f"{error.code};{'Sender' if error.sender else 'Receiver'}"
        return error.status, headers, json_wire.encode_json_error(error)
    return (
        error.status,
        _headers(query_wire.CONTENT_TYPE, request_id),
        query_wire.encode_xml_error(error, request_id),
    )


def _json_action(headers: Mapping[str, str]) -> str:
    target = headers.get("x-amz-target")
    if target is None:
        raise sqs_error("MissingAction", "The request must contain the header X-Amz-Target.")
    if not target.startswith(TARGET_PREFIX):
        raise _invalid_action(target)
    return target[len(TARGET_PREFIX) :]


def _action(name: str) -> Action:
    if name in ACTIONS:
        return ACTIONS[name]
    if name in UNSUPPORTED_ACTIONS:
        raise sqs_error("AWS.SimpleQueueService.UnsupportedOperation", f"The action {name} is not supported.")
    raise _invalid_action(name)


def _invalid_action(name: str) -> SqsError:
    return sqs_error("InvalidAction", f"The action {name} is not valid for this endpoint.")


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _headers(content_type: str, request_id: str) -> dict[str, str]:
    return {"Content-Type": content_type, "x-amzn-RequestId": request_id}
