"""
Hostile requests on the admin HTTP listener (the real site, over raw bytes): never a crash
or a 500, a well-formed response with a JSON error for each bad request, no harm to others.
"""

import json
import re
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from kestrel.admin import http as admin_http
from kestrel.admin.http import AdminResource, AdminSite
from kestrel.test.hostile import cuts, hostile_example, send_in_pieces
from kestrel.test.support import ServerHarness
from kestrel.test.test_memcache import Connection

CLIENT = IPv4Address("TCP", "127.0.0.1", 40000)

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"PATCH", b"get", b"BREW", b"G\x00T", b""]
PATHS = [
    b"/ping", b"/ping.json", b"/stats", b"/stats.json", b"/stats.txt", b"/server_info", b"/status", b"/status.json",
    b"/metrics", b"/reload", b"/shutdown", b"/quiesce", b"/rewind", b"/", b"", b"*", b"/nope", b"//ping", b"/ping/", b"/../etc/passwd",
    b"/%00", b"/%ff%fe", b"/\xff", b"/stats.json/x", b"http://host/ping", b"/" + b"a" * 300,
]
QUERIES = [
    b"", b"?", b"?queue=calm", b"?queue=nope", b"?queue=%ff", b"?queue=", b"?queue=a/b", b"?set=up", b"?set=readonly",
    b"?set=bogus", b"?set=up&set=down", b"?set", b"?%zz=%", b"?&&=&", b"?queue=calm&queue=nope", b"?queue=calm&since=0",
    b"?queue=calm&since=2026-12-02T22:30:00Z&until=1", b"?queue=nope&since=0",
]
VERSIONS = [b" HTTP/1.1", b" HTTP/1.0", b" HTTP/2.0", b" HTTP/0.9", b" FOO", b"", b" HTTP/1.1 extra"]
HEADERS = [
    b"Host: kestrel", b"Origin: http://evil.example", b"Content-Length: 5", b"Content-Length: 0", b"Content-Length: -1",
    b"Content-Length: 99999999999999999999", b"Content-Length: abc", b"Content-Length: 1, 2", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip", b"Connection: close", b"Connection: keep-alive", b"Expect: 100-continue",
    b"Content-Type: application/x-www-form-urlencoded", b"Cookie: \x00\xff", b"no colon", b": no name",
    b"X-Long: " + b"y" * 20000, b" folded", b"Host:",
]


def http_request(method: bytes, path: bytes, query: bytes, version: bytes, headers: list[bytes], body: bytes) -> bytes:
    return b"%s %s%s%s\r\n%s\r\n%s" % (method, path, query, version, b"".join(header + b"\r\n" for header in headers), body)


requests = st.builds(
    http_request, st.sampled_from(METHODS), st.sampled_from(PATHS), st.sampled_from(QUERIES),
    # Mostly HTTP/1.1, so that most requests get past the HTTP layer to the admin service.
    st.one_of(st.just(b" HTTP/1.1"), st.sampled_from(VERSIONS)),
    st.lists(st.sampled_from(HEADERS), max_size=4), st.binary(max_size=30),
)
streams = st.lists(st.one_of(requests, st.binary(max_size=40)), max_size=6).map(b"".join)

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*")


class Response(NamedTuple):
    code: int
    headers: dict[bytes, bytes]
    body: bytes


def responses(output: bytes) -> list[Response]:
    """
    The responses written, each well-formed. A response to a HEAD has a Content-Length
    and no body: one is told by the next response (or the end) standing where its body would.
    """
    parsed = []
    while output:
        head, separator, output = output.partition(b"\r\n\r\n")
        assert separator, head
        status, *lines = head.split(b"\r\n")
        match = STATUS_LINE.fullmatch(status)
        assert match, status
        headers = {name.lower(): value for name, value in (line.split(b": ", 1) for line in lines)}
        length = int(headers.get(b"content-length", b"0"))
        if output.startswith(b"HTTP/1.") or not output:
            length = 0
        assert len(output) >= length, (headers, output)
        parsed.append(Response(int(match[1]), headers, output[:length]))
        output = output[length:]
    return parsed


class HttpConnection(Connection):
    """The admin site's channel on a StringTransport: raw bytes in, raw bytes out."""

    def __init__(self, site: AdminSite):
        self.transport = StringTransport(peerAddress=CLIENT)
        self.protocol = site.buildProtocol(CLIENT)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        # A real transport stops reading once the server closes it; twisted.web relies on that.
        if not self.closed:
            self.protocol.dataReceived(data)
        return self.written()

    def get(self, path: str) -> Response:
        (response,) = responses(self.send(b"GET %s HTTP/1.1\r\nHost: kestrel\r\n\r\n" % path.encode()))
        return response


def admin_site(kestrel: ServerHarness) -> AdminSite:
    # The site's timers (the idle timeout) run on the test's clock.
    return AdminSite(AdminResource(kestrel.server), reactor=kestrel.clock)


def assert_answered(response: Response) -> None:
    """A success, or a refusal that says why: a 4xx with a JSON error (or, from the HTTP layer, no body)."""
    if response.code < 300:
        return
    assert 400 <= response.code < 500, (response.code, response.body)
    if response.body:
        assert response.headers[b"content-type"] == b"application/json"
        assert json.loads(response.body)["error"]


@settings(max_examples=500, deadline=None)
@given(stream=streams, offsets=cuts)
def test_any_byte_stream_gets_well_formed_responses_and_harms_nobody(stream, offsets):
    with hostile_example() as kestrel:
        kestrel.add("calm", b"kept")
        site = admin_site(kestrel)
        bystander = HttpConnection(site)
        assert bystander.get("/ping").body == b"pong\n"
        # A request half sent when the hostile stream begins.
        waiting = HttpConnection(site)
        assert waiting.send(b"GET /stats.json?queue=calm HTTP/1.1\r\nHost: kes") == b""

        hostile = HttpConnection(site)
        for response in responses(send_in_pieces(hostile, stream, offsets)):
            assert_answered(response)
        hostile.disconnect()

        assert not bystander.closed and not waiting.closed
        assert bystander.get("/ping").body == b"pong\n"
        (stats,) = responses(waiting.send(b"trel\r\n\r\n"))
        assert json.loads(stats.body)["queues"]["calm"]["items"] == 1


# Requests that HTTP can parse, to any path with any query: each must reach the admin service.
parsable_requests = st.builds(
    http_request,
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"BREW"]),
    st.sampled_from([path for path in PATHS if path not in (b"", b"*", b"/\xff")]), st.sampled_from(QUERIES),
    st.just(b" HTTP/1.1"), st.sampled_from([[b"Host: kestrel"], [b"Host: kestrel", b"Origin: http://evil.example"]]), st.just(b""),
)


@settings(max_examples=300, deadline=None)
@given(request=parsable_requests)
def test_each_request_gets_one_response_and_each_refusal_a_json_error(request):
    with hostile_example() as kestrel:
        client = HttpConnection(admin_site(kestrel))
        (response,) = responses(client.send(request))
        assert_answered(response)
        assert response.code < 400 or response.body, response.code
        assert not client.closed


def test_an_idle_admin_connection_is_closed(harness):
    kestrel = ServerHarness(harness)
    channel = admin_http.admin_site(kestrel.server).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # a request never finished
    kestrel.clock.advance(admin_http.ADMIN_IDLE_TIMEOUT - 1)
    assert not transport.disconnecting
    kestrel.clock.advance(2)
    assert transport.disconnecting
