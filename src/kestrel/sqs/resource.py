"""
The SQS listener's one twisted.web resource (doc/sqs.md): every request to the SQS API, from
its method and path to the reply in the wire it speaks. It holds no SQS semantics (those are
the service's) and no I/O of its own beyond the request it answers.

A request goes: route (POST or GET to `/` or to a queue's URL `/<account>/<queue>`, where the
query protocol may send the calls on one queue; OPTIONS is a CORS preflight), authenticate
(SigV4 on the reactor's clock, apps.py), decode (wire.py), handle (the service), encode. Each
reply carries a request id of its own in `x-amzn-RequestId` and in its body, as SQS's do; a
refusal is SQS's error in the request's wire.

`GET /history/<queue>` (history.py) is the one path outside the API: a queue's retained
history, authenticated the same way and granted as ReceiveMessage is, answered in JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from kestrel.sqs import history
from kestrel.sqs.apps import App, Applications, Grant, check, visible
from kestrel.sqs.errors import SqsError, sqs_error
from kestrel.sqs.service import SqsService
from kestrel.sqs.sigv4 import SignedRequest
from kestrel.sqs.wire import QUEUE_URL_PATH, decode_request, encode_error, encode_result, request_wire

# A reply's status, headers and body.
Reply = tuple[int, dict[str, str], bytes]

CALL_METHODS = (b"POST", b"GET")
ALLOW = "GET, POST, OPTIONS"
# What a browser page may send: SigV4's headers and the JSON protocol's, and those the AWS SDK
# for JavaScript adds to each request.
CORS_ALLOWED_HEADERS = ", ".join(
    (
        "authorization", "content-type", "x-amz-date", "x-amz-target", "x-amz-content-sha256",
        "x-amz-security-token", "x-amz-user-agent", "amz-sdk-invocation-id", "amz-sdk-request",
    )
)
# What its script may read of a reply: the request id, and the query error code that the JSON
# protocol's SDKs read (errors.py).
CORS_EXPOSED_HEADERS = "x-amzn-RequestId, x-amzn-query-error"
# How long a browser may keep a preflight's answer, in seconds.
CORS_MAX_AGE = "600"


@dataclass(frozen=True)
class Authorization:
    """The grants of the application that signed one request, as the service asks for them (its Authorize)."""

    app: App
    # `<base_url>/<account>/`: the URL of a queue the message of a refusal names.
    queue_url_prefix: str

    def __call__(self, kind: str, queue_name: str) -> None:
        """Raise SQS's AccessDenied unless the app has the ``kind`` ('read', 'write', 'admin') grant on the queue."""
        check(self.app, Grant(kind), queue_name, self.queue_url_prefix + queue_name)

    def visible(self, queue_name: str) -> bool:
        return visible(self.app, queue_name)


@dataclass
class _Exchange:
    """One request and what is known of it so far, for its reply and its log line."""

    request: Request
    request_id: str
    headers: Mapping[str, str]
    access_key: str | None = None
    action: str | None = None

    def error_reply(self, error: SqsError) -> Reply:
        """SQS's error in the request's wire; on the history route, the route's JSON error."""
        if history.is_history_path(self.request.path):
            return history.encode_error(error, self.request_id)
        return encode_error(request_wire(self.headers), error, self.request_id)


class SqsResource(Resource):
    """Every path of the SQS listener."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        service: SqsService,
        reads: history.HistoryReads,
        applications: Applications,
        clock: IReactorTime,
        account: str,
        cors_origins: tuple[str, ...] = (),
    ):
        super().__init__()
        self.service = service
        self.history = reads
        self.applications = applications
        self.clock = clock
        self.cors_origins = frozenset(cors_origins)
        self.account = account

    def render(self, request: Request) -> bytes | int:
        signed = _signed_request(request, request.content.read())
        exchange = _Exchange(request, str(uuid.uuid4()), signed.headers)
        for name, value in self._cors_headers(signed.headers).items():
            request.setHeader(name, value)
        try:
            if request.method == b"OPTIONS":
                return self._preflight(exchange)
            if history.is_history_path(request.path):
                return self._history(exchange, signed)
            return self._call(exchange, signed)
        except SqsError as error:
            return self._write_headers(request, self._refusal(exchange, error))
        except Exception:
            return self._write_headers(request, self._internal_error(exchange, Failure()))

    def refusal(self, request: Request, error: SqsError) -> Reply:
        """The reply to a request refused before its body was read (site.py: too large), with its CORS headers."""
        headers = _signed_request(request, b"").headers
        status, reply_headers, body = self._refusal(_Exchange(request, str(uuid.uuid4()), headers), error)
        return status, {**self._cors_headers(headers), **reply_headers}, body

    def _call(self, exchange: _Exchange, signed: SignedRequest) -> bytes | int:
        request = exchange.request
        path = _route(request)
        app = self._authenticate(exchange, signed)
        call = decode_request(signed.method, path, signed.query, signed.headers, signed.body)
        exchange.action = call.action
        base_url = _base_url(request)
        result = self.service.handle(call, base_url, Authorization(app, f"{base_url}/{self.account}/"))
        if isinstance(result, Deferred):
            self._answer_later(exchange, result, lambda answer: encode_result(call, answer, exchange.request_id))
            return NOT_DONE_YET
        return self._write_headers(request, encode_result(call, result, exchange.request_id))

    def _history(self, exchange: _Exchange, signed: SignedRequest) -> int:
        """`GET /history/<queue>`: authenticated as every call is, then the `read` grant on the queue."""
        request = exchange.request
        exchange.action = "history"
        if request.method != history.METHOD:
            request.setHeader("Allow", history.METHOD.decode())
            raise history.method_not_allowed(request.method)
        app = self._authenticate(exchange, signed)
        query = history.parse_query(request.path, signed.query)
        Authorization(app, _base_url(request) + history.PATH_PREFIX.decode())("read", query.queue)
        pending = self.history.read(query)
        self._answer_later(exchange, pending, partial(history.encode_page, request_id=exchange.request_id))
        return NOT_DONE_YET

    def _authenticate(self, exchange: _Exchange, signed: SignedRequest) -> App:
        """The app that signed the request (SqsError if none did), on the reactor's clock."""
        app = self.applications.authenticate(signed, self.clock.seconds())
        exchange.access_key = app.access_key
        return app

    def _answer_later(self, exchange: _Exchange, pending: Deferred, encode: Callable[[Any], Reply]) -> None:
        """
        Answer with ``encode`` of what ``pending`` (a long poll, a history read) gives. A client
        that goes away first cancels it, which makes the service give back what it held for the call.
        """
        request = exchange.request
        gone = False

        def client_left(_: Failure) -> None:
            nonlocal gone
            gone = True
            pending.cancel()

        def answered(result: Any) -> None:
            if not gone:
                self._finish(request, encode(result))

        def failed(failure: Failure) -> None:
            if gone and failure.check(CancelledError):
                return
            if failure.check(SqsError):
                reply = self._refusal(exchange, failure.value)
            else:
                reply = self._internal_error(exchange, failure)
            if not gone:
                self._finish(request, reply)

        request.notifyFinish().addErrback(client_left)
        pending.addCallback(answered).addErrback(failed)

    def _preflight(self, exchange: _Exchange) -> bytes:
        """A CORS preflight: what a page from an allowed origin may send (sqs_cors_origins)."""
        request = exchange.request
        if "Access-Control-Allow-Origin" not in self._cors_headers(exchange.headers):
            origin = exchange.headers.get("origin")
            raise sqs_error("AccessDenied", f"Pages from the origin {origin!r} may not call this API (sqs_cors_origins).")
        request.setHeader("Access-Control-Allow-Methods", "GET, POST")
        request.setHeader("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS)
        request.setHeader("Access-Control-Max-Age", CORS_MAX_AGE)
        request.setHeader("x-amzn-RequestId", exchange.request_id)
        return b""

    def _cors_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The CORS headers of a reply to a request from ``headers``' Origin: none unless it is allowed."""
        if not self.cors_origins:
            return {}
        origin = headers.get("origin", "").lower()
        cors = {"Vary": "Origin"}
        if origin and ("*" in self.cors_origins or origin in self.cors_origins):
            cors["Access-Control-Allow-Origin"] = origin
            cors["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
        return cors

    def _refusal(self, exchange: _Exchange, error: SqsError) -> Reply:
        request = exchange.request
        self.log.debug(
            "SQS request {request_id} refused: {status} {code}: {message} "
            "({method} {path} from {client}, key {access_key}, action {action})",
            request_id=exchange.request_id, status=error.status, code=error.code, message=error.message,
            method=request.method.decode("latin-1"), path=request.path.decode("latin-1"), client=_client(request),
            access_key=exchange.access_key, action=exchange.action,
        )
        return exchange.error_reply(error)

    def _internal_error(self, exchange: _Exchange, failure: Failure) -> Reply:
        request = exchange.request
        self.log.failure(
            "SQS request {request_id} failed ({method} {path} from {client}, key {access_key}, action {action})",
            failure, request_id=exchange.request_id, method=request.method.decode("latin-1"),
            path=request.path.decode("latin-1"), client=_client(request), access_key=exchange.access_key,
            action=exchange.action,
        )
        error = sqs_error("InternalError", f"The server failed; see its log for request {exchange.request_id}.")
        return exchange.error_reply(error)

    @staticmethod
    def _write_headers(request: Request, reply: Reply) -> bytes:
        """Set the reply's status and headers; returns its body, for render or write."""
        status, headers, body = reply
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body

    def _finish(self, request: Request, reply: Reply) -> None:
        body = self._write_headers(request, reply)
        # Written after render returned, the body would otherwise go out chunked.
        request.setHeader("Content-Length", str(len(body)))
        request.write(body)
        request.finish()


def _signed_request(request: Request, body: bytes) -> SignedRequest:
    """The request as SigV4 reads it: its target as sent, its header names in lower case, ``body`` (site.py bounds it)."""
    return SignedRequest.from_wire(request.method, request.uri, request.requestHeaders.getAllRawHeaders(), body)


def _route(request: Request) -> str:
    """The path of a request the API serves: a call to `/` or to a queue's URL."""
    if request.method not in CALL_METHODS:
        request.setHeader("Allow", ALLOW)
        method = request.method.decode("latin-1")
        raise SqsError("InvalidAction", f"The HTTP method {method!r} is not valid for this endpoint; use POST.", 405)
    # twisted.web takes only printable ASCII in a request target.
    path = request.path.decode("ascii")
    if path != "/" and not QUEUE_URL_PATH.fullmatch(path):
        raise sqs_error("InvalidAddress", f"The address {path!r} is not valid for this endpoint.")
    return path


def _base_url(request: Request) -> str:
    """
    `<scheme>://<host>:<port>` as the client reached this listener: its scheme, and the Host
    it sent, which SigV4 requires and signs (so it is there once a request is authenticated).
    """
    scheme = "https" if request.isSecure() else "http"
    host = request.getHeader(b"host") or b""
    return f"{scheme}://{host.decode('latin-1')}"


def _client(request: Request) -> str:
    return getattr(request.getClientAddress(), "host", "a local socket")
