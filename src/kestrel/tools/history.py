"""
`kestrel history`: a client of the SQS listener's history route (kestrel.sqs.history), which
signs its requests with kestrel.sqs.sigv4 (the server takes nothing unsigned, even without
applications), and the lines it prints.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from kestrel.sqs.names import sqs_name
from kestrel.sqs.sigv4 import SignedRequest, sign
from kestrel.timestamps import format_timestamp

TIMEOUT: Final = 30.0
# Whoever signs without credentials: a server without [apps] takes any key and signature.
ANONYMOUS_KEY: Final = "kestrel-cli"
# `--all` gives up after this many pages (a billion items at the largest page): a cursor that
# never ends would be the server's bug, not a reason to run forever.
MAX_PAGES: Final = 1_000_000


class HistoryRefused(Exception):
    """The server's error reply: its status, code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")


@dataclass(frozen=True)
class Credentials:
    access_key: str = ANONYMOUS_KEY
    secret: bytes = b""


class HistoryClient:
    """GETs of /history/<queue> on one SQS listener, each signed as the time it goes."""

    def __init__(self, host: str, port: int, credentials: Credentials, timeout: float = TIMEOUT):
        self.host = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        self.credentials = credentials
        self.timeout = timeout

    def page(self, queue: str, since: int, until: int | None, limit: int | None, cursor: str | None) -> dict[str, Any]:
        """One reply, ``{"items": [...], "next": ...}``; HistoryRefused, or OSError when the server cannot be reached."""
        # The route names queues as SQS does: orders:fifo is orders.fifo there.
        path = "/history/" + urllib.parse.quote(sqs_name(queue), safe="")
        parameters = {"since": since, "until": until, "limit": limit, "cursor": cursor}
        query = urllib.parse.urlencode({key: value for key, value in parameters.items() if value is not None})
        unsigned = SignedRequest("GET", path.encode(), query.encode(), {"host": self.host}, b"")
        headers = sign(unsigned, self.credentials.access_key, self.credentials.secret, time.time())
        request = urllib.request.Request(f"http://{self.host}{path}?{query}", headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _refusal(error) from None

    def pages(self, queue: str, since: int, until: int | None, limit: int | None, cursor: str | None) -> Iterator[dict[str, Any]]:
        """Every page from ``cursor`` on, following each reply's ``next``."""
        for _ in range(MAX_PAGES):
            reply = self.page(queue, since, until, limit, cursor)
            yield reply
            cursor = reply.get("next")
            if cursor is None:
                return
        raise HistoryRefused(0, "TooManyPages", f"the history did not end after {MAX_PAGES} pages")


def _refusal(error: urllib.error.HTTPError) -> HistoryRefused:
    body = error.read()
    try:
        document = json.loads(body)
        return HistoryRefused(error.code, document["error"], document["message"])
    except (ValueError, KeyError, TypeError):
        return HistoryRefused(error.code, "HTTPError", body.decode("utf-8", "replace").strip() or str(error.reason))


def item_line(item: dict[str, Any]) -> str:
    """
    An item as a row: when it was added, how and when it left (`queued` while it has not),
    `rewound` for a rewind's copy (`-` otherwise), its body.
    """
    consumed = item.get("consumed")
    outcome = item.get("outcome") or ("queued" if consumed is None else "consumed")
    left = "-" if consumed is None else format_timestamp(consumed)
    added_by = "rewound" if item.get("rewound") else "-"
    body = printable(base64.b64decode(item["body"]))
    return f"{format_timestamp(item['added'])}  {outcome:<13}  {left:<24}  {added_by:<7}  {body}"


def item_json(item: dict[str, Any]) -> str:
    """An item as the server sent it, one JSON object a line (the body in base64)."""
    return json.dumps(item, separators=(",", ":"))


def printable(data: bytes) -> str:
    """A body on one line: UTF-8 text as it is, escapes for control characters and bytes that are not UTF-8."""
    text = data.decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
