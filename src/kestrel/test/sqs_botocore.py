"""
botocore clients of SQS whose HTTP goes to kestrel.sqs.wire instead of a socket: botocore
serializes each call as an SDK sends it, our decoder reads it, our encoder answers, and
botocore parses the answer as an SDK would (its handlers and exception classes included).
One client speaks the JSON protocol (botocore's current SQS model); the other the query
protocol, from SQS's query-era model, kept in data/sqs-query (SDKs of that time sent exactly
what it describes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from kestrel.sqs.errors import SqsError
from kestrel.sqs.wire import SqsCall, decode_request, encode_error, encode_result, request_wire

QUERY_MODEL = Path(__file__).parent / "data" / "sqs-query"
ENDPOINT = "http://127.0.0.1:9324"
QUEUE_URL = ENDPOINT + "/000000000000/jobs"
REQUEST_ID = "a4ab0b7f-5a49-5a4c-9e5a-3e6dd5ab8b3b"


class _Body:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class WireServer:
    """What answers the client: the calls it decoded, and the result or error it is told to give."""

    def __init__(self) -> None:
        self.calls: list[SqsCall] = []
        self.result: dict[str, Any] = {}
        self.error: SqsError | None = None

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        headers = {name.lower(): _text(value) for name, value in request.headers.items()}
        body = request.body or b""
        body = body.encode("utf-8") if isinstance(body, str) else body
        try:
            call = decode_request(request.method, url.path or "/", url.query.encode(), headers, body)
            self.calls.append(call)
            if self.error is not None:
                raise self.error
            status, reply_headers, reply = encode_result(call, self.result, REQUEST_ID)
        except SqsError as error:
            status, reply_headers, reply = encode_error(request_wire(headers), error, REQUEST_ID)
        return AWSResponse(request.url, status, reply_headers, _Body(reply))


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def sqs_client(wire: str, server: WireServer, validate: bool = True) -> Any:
    """A botocore SQS client speaking ``wire`` to ``server``; ``validate`` off sends what botocore would refuse."""
    session = botocore.session.get_session()
    if wire == "query":
        session.get_component("data_loader").search_paths.insert(0, str(QUERY_MODEL))
    client = session.create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=validate),
    )
    assert client.meta.service_model.protocol == wire
    client.meta.events.register("before-send.sqs", server)
    return client
