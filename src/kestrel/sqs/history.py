"""
The history route of the SQS listener (doc/history.md):

    GET /history/<queue>?since=T[&until=T][&limit=N][&cursor=C]

the items added to a retained queue from ``since`` up to (not including) ``until`` (default:
now), in the order they were added, whether or not they were consumed, ``limit`` (1 to 1000,
default 100) to a page; ``next`` is the cursor of the next page, null after the last. Times
are epoch milliseconds or RFC 3339 (kestrel.timestamps). The reply is JSON:

    {"items": [{"added": ms, "consumed": ms|null, "outcome": "read"|...|null, "rewound": bool, "body": base64}],
     "next": C|null}

where ``rewound`` says a rewind added the item (a copy of an earlier one), and ``body`` is the
message as a client got it: an SQS message's body without its envelope.

The resource (resource.py) signs and grants it like ReceiveMessage: the same SigV4 check (a
header or a presigned query string), the same applications, the `read` grant on the queue.
The queue is named as the SQS API names it (`orders.fifo` for the engine's `orders:fifo`).

Errors are JSON, ``{"error": code, "message": text}``: 400 for a bad or missing parameter or
cursor, 403 (400 for a malformed signature) with the SQS API's codes for authentication and
grants, 404 for no such queue, 405 for a method other than GET, 409 ``QueueNotRetained`` for
a queue that keeps no history (it exists, and the request is well formed; what it asks for
is not kept, which a config change can alter).

This module parses (pure) and renders; it reads the collection through ``HistoryReads``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, unquote

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from kestrel.collection import QueueCollection
from kestrel.config import validate_queue_name
from kestrel.envelope import body_of
from kestrel.history import BadCursor, HistoryPage, NoSuchQueue, NotRetained
from kestrel.sqs.errors import SqsError
from kestrel.sqs.names import engine_name, sqs_name
from kestrel.timestamps import parse_timestamp

PATH_PREFIX: Final = b"/history/"
METHOD: Final = b"GET"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
CONTENT_TYPE: Final = "application/json"
# The query parameters of a presigned URL (sigv4.py reads them) are not the route's.
_SIGNING_PREFIX: Final = "X-Amz-"
_PARAMETERS: Final = frozenset({"since", "until", "limit", "cursor"})

# A reply's status, headers and body (as resource.Reply).
Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class HistoryQuery:
    """One read: the queue by its SQS name, the window in epoch milliseconds, the page."""

    queue: str
    since_ms: int
    until_ms: int | None
    limit: int
    cursor: str | None


def is_history_path(path: bytes) -> bool:
    return path.startswith(PATH_PREFIX)


def bad_parameter(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message, 400)


def no_such_queue(name: str) -> SqsError:
    return SqsError("QueueDoesNotExist", f"The queue {name!r} does not exist.", 404)


def method_not_allowed(method: bytes) -> SqsError:
    return SqsError("MethodNotAllowed", f"The history takes GET, not {method.decode('latin-1')!r}.", 405)


def parse_query(path: bytes, query: bytes) -> HistoryQuery:
    """The read a request asks for, from its path and raw query string; SqsError (400, 404) for a bad one."""
    name = _queue_name(path)
    values: dict[str, str] = {}
    try:
        pairs = parse_qsl(query.decode("utf-8"), keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise bad_parameter("The query string is not UTF-8.") from None
    for key, value in pairs:
        if key.startswith(_SIGNING_PREFIX):
            continue
        if key not in _PARAMETERS:
            raise bad_parameter(f"Unknown parameter {key!r}: the history takes since, until, limit and cursor.")
        if key in values:
            raise bad_parameter(f"The parameter {key!r} is given twice.")
        values[key] = value
    if "since" not in values:
        raise SqsError("MissingParameter", "The parameter 'since' is required (epoch milliseconds or RFC 3339).", 400)
    since_ms = _time("since", values["since"])
    until_ms = _time("until", values["until"]) if "until" in values else None
    if until_ms is not None and until_ms < since_ms:
        raise bad_parameter(f"until ({values['until']}) is before since ({values['since']}).")
    limit = _limit(values.get("limit"))
    cursor = values.get("cursor")
    if cursor == "":
        raise bad_parameter("The parameter 'cursor' is empty: leave it out for the first page.")
    return HistoryQuery(name, since_ms, until_ms, limit, cursor)


def _queue_name(path: bytes) -> str:
    """The SQS name of the queue in ``/history/<queue>`` (percent-decoded); 404 for a name no queue can have."""
    encoded = path[len(PATH_PREFIX):].decode("ascii", "replace")
    name = sqs_name(unquote(encoded, errors="replace"))
    try:
        if "/" in encoded:
            raise ValueError("a queue name is one path segment")
        validate_queue_name(engine_name(name))
    except ValueError:
        raise no_such_queue(name) from None
    return name


def _time(key: str, text: str) -> int:
    try:
        return parse_timestamp(text)
    except ValueError as error:
        raise bad_parameter(f"{key}: {error}") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        raise bad_parameter(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {text!r}.")
    return int(text)


class HistoryReads:
    """The route's reads of the collection's history."""

    def __init__(self, collection: QueueCollection):
        self.collection = collection

    def read(self, query: HistoryQuery) -> Deferred[HistoryPage]:
        """One page, or the route's SqsError as the Deferred's failure; the caller has checked the grant."""
        pending = self.collection.history(engine_name(query.queue), query.since_ms, query.until_ms, query.limit, query.cursor)
        return pending.addErrback(_refusal, query.queue)


def _refusal(failure: Failure, queue: str) -> Failure:
    """The engine's refusals as the route's errors; anything else stays a failure of the server."""
    error = failure.value
    if isinstance(error, NotRetained):
        raise SqsError("QueueNotRetained", f"The queue {queue!r} keeps no history (its `retain` is not set).", 409)
    if isinstance(error, NoSuchQueue):  # or an alias: it has no history of its own
        raise no_such_queue(queue)
    if isinstance(error, BadCursor):
        raise SqsError("InvalidCursor", str(error), 400)
    return failure


def encode_page(page: HistoryPage, request_id: str) -> Reply:
    items = [
        {
            "added": entry.added,
            "consumed": entry.consumed,
            "outcome": entry.outcome,
            "rewound": entry.rewound,
            "body": base64.b64encode(body_of(entry.data)).decode("ascii"),
        }
        for entry in page.entries
    ]
    return _json_reply(200, {"items": items, "next": page.next}, request_id)


def encode_error(error: SqsError, request_id: str) -> Reply:
    return _json_reply(error.status, {"error": error.code, "message": error.message}, request_id)


def _json_reply(status: int, document: object, request_id: str) -> Reply:
    body = json.dumps(document, separators=(",", ":")).encode() + b"\n"
    return status, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}, body
