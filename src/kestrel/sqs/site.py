"""
The SQS listener's HTTP side (twisted.web): its connections, and the bound on what one
request may send, which is checked before the body is read.

twisted.web reads a request's whole body before any resource sees it. SQS takes at most
256 KiB of message per call (a batch's ten entries together), and the JSON and form
encodings of it can triple its size (botocore escapes non-ASCII text as `\\uXXXX`, a
surrogate pair for each 4-byte character; a form encodes each byte as `%XX`); with the
parameters around it, a call of SQS's never needs more than MAX_BODY. A request that declares
more (Content-Length) is refused as soon as its headers are in, and a chunked one as soon as
it passes the bound: the refusal goes out at once, and what the client still sends of its
body is read and dropped for at most LINGER seconds, so that it gets to read the reply
rather than a reset connection, before the connection closes.
"""

from __future__ import annotations

import io

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.http import RESPONSES
from twisted.web.server import Request, Site

from kestrel.protocols.http_channel import PacedChannel
from kestrel.sqs.errors import sqs_error
from kestrel.sqs.resource import SqsResource

MAX_BODY = 1536 * 1024
LINGER = 5.0
# A connection idle this long is closed, unless the config's client_timeout says otherwise. A
# long poll (at most 20 s) is not idle: twisted.web times out only between requests.
IDLE_TIMEOUT = 60.0


class SqsRequest(Request):
    """A request whose body is kept in memory (it is bounded), and refused once it passes MAX_BODY."""

    refused = False
    _body_size = 0

    def gotLength(self, length: int | None) -> None:
        # Twisted spools a body over 100 kB to a temporary file: a disk write on the reactor thread.
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self._body_size += len(data)
        if self._body_size > MAX_BODY:
            self.channel.refuse_body(self)
            return
        self.content.write(data)

    def _handleStar(self) -> None:
        # twisted.web answers a request for `*` itself (405 to all but OPTIONS); here it gets
        # SQS's answer like any other path: InvalidAddress, or a CORS preflight's.
        self.render(self.site.resource)


class SqsChannel(PacedChannel):
    """An HTTP connection of the SQS listener: refuses a body over MAX_BODY without reading it."""

    site: SqsSite
    _refusing = False
    _linger: IDelayedCall | None = None

    def allHeadersReceived(self) -> None:
        if self.length is not None and self.length > MAX_BODY:
            # Before Twisted would tell an `Expect: 100-continue` client to send the body.
            self.refuse_body(self.requests[-1])
            return
        super().allHeadersReceived()

    def refuse_body(self, request: SqsRequest) -> None:
        """Answer ``request`` with SQS's error now, then drop the rest of its body and close."""
        request.refused = True
        self._refusing = True
        request.method, request.uri = self._command, self._path
        request.path = self._path.split(b"?", 1)[0]
        error = sqs_error(
            "InvalidParameterValue", f"The request body is larger than this API takes ({MAX_BODY} bytes)."
        )
        status, headers, body = self.site.resource.refusal(request, error)
        head = [b"HTTP/1.1 %d %s" % (status, RESPONSES.get(status, b"Error"))]
        head += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
        head += [b"Content-Length: %d" % len(body), b"Connection: close"]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self._linger = self.callLater(LINGER, self.transport.abortConnection)

    def allContentReceived(self) -> None:
        if self._refusing:  # the body refused has all arrived: nothing more will be read
            self.transport.loseConnection()
            return
        super().allContentReceived()

    def connectionLost(self, reason) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)


class SqsSite(Site):
    noisy = False
    protocol = SqsChannel
    requestFactory = SqsRequest
    resource: SqsResource

    def log(self, request: Request) -> None:
        # The resource logs what it refuses (at debug) and what fails; a line per call would drown the log.
        pass


def sqs_site(resource: SqsResource, clock: IReactorTime, client_timeout: float | None = None) -> SqsSite:
    """The listener's site; ``client_timeout`` is the config's (None: IDLE_TIMEOUT)."""
    # Forms are read by the query wire, not by twisted.web into request.args as well.
    return SqsSite(resource, timeout=client_timeout or IDLE_TIMEOUT, reactor=clock, parsePOSTFormSubmission=False)
