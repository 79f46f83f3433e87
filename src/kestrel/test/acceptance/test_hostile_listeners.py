"""
Hostile clients against a real `twistd kestrel`: garbage on every listener at once, an
over-long line, a huge declared frame, more connections than the cap, and clients that
send one byte a second. Each is refused with a clear error or closed; the server and the
other clients go on.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

from thriftpy2.thrift import TApplicationException

from kestrel import PROTOCOL_VERSION
from kestrel.load.process import KestrelProcess, RawClient, TextClient, wait_until
from kestrel.test.acceptance.test_thrift_server import RawThrift
from kestrel.test.test_hostile_admin import (
    HEADERS,
    METHODS,
    PATHS,
    QUERIES,
    VERSIONS,
    http_request,
)
from kestrel.test.test_hostile_memcache import REQUESTS as MEMCACHE_REQUESTS
from kestrel.test.test_hostile_text import REQUESTS as TEXT_REQUESTS
from kestrel.test.test_hostile_thrift import CALLS, HUGE_DECLARATIONS, PUT_HEADER
from kestrel.test.test_thrift import call_frame, framed, message

CLIENTS = {"memcache": RawClient, "text": TextClient, "thrift": RawThrift}
# The answer to a `version` request, on the line protocols.
VERSION_LINES = {"memcache": b"VERSION " + PROTOCOL_VERSION.encode(), "text": b":" + PROTOCOL_VERSION.encode()}
# What a connection over the cap reads before the server closes it (Thrift has no way to say it).
REFUSALS = {"memcache": b"SERVER_ERROR too many connections\r\n", "text": b"-Too many connections.\n", "thrift": b""}


def assert_every_listener_serves(kestrel: KestrelProcess) -> None:
    """A well-behaved client of each protocol is served, and nothing was logged as a crash."""
    assert kestrel.process.poll() is None
    for client, protocol in ((kestrel.client(), "memcache"), (kestrel.text_client(), "text")):
        assert client.request("version") == VERSION_LINES[protocol]
        client.close()
    thrift = kestrel.thrift_client()
    assert thrift.get_version() == PROTOCOL_VERSION
    thrift.close()
    assert kestrel.admin("GET", "/ping").body == b"pong\n"
    log = kestrel.log()
    crash = min((log.find(word) for word in ("Traceback", "Unhandled") if word in log), default=None)
    assert crash is None, log[crash:]


# Garbage


def memcache_garbage(rng: random.Random) -> bytes:
    return rng.choice(MEMCACHE_REQUESTS)


def text_garbage(rng: random.Random) -> bytes:
    return rng.choice(TEXT_REQUESTS)


def thrift_garbage(rng: random.Random) -> bytes:
    body = rng.choice(CALLS)
    return rng.choice([
        framed(body),
        framed(body[:rng.randrange(len(body))]),
        framed(PUT_HEADER + rng.choice(HUGE_DECLARATIONS)),
        struct.pack("!I", rng.randrange(2**20, 2**32)) + body,
    ])


def admin_garbage(rng: random.Random) -> bytes:
    # Nothing that stops the server or ends the bystanders' reads (quiescent).
    paths = [path for path in PATHS if path not in (b"/shutdown", b"/quiesce", b"/status")]
    headers = rng.sample(HEADERS, rng.randrange(4))
    return http_request(rng.choice(METHODS), rng.choice(paths), rng.choice(QUERIES), rng.choice(VERSIONS), headers, rng.randbytes(rng.randrange(30)))


GARBAGE = {"memcache": memcache_garbage, "text": text_garbage, "thrift": thrift_garbage, "admin": admin_garbage}


def garbage(protocol: str, rng: random.Random, size: int = 8192) -> bytes:
    """About `size` bytes of the protocol's requests, good and bad, and random bytes between them."""
    parts, length = [], 0
    while length < size:
        part = GARBAGE[protocol](rng) if rng.random() < 0.7 else rng.randbytes(rng.randrange(1, 64))
        parts.append(part)
        length += len(part)
    return b"".join(parts)


def throw(port: int, payload: bytes, seed: int) -> None:
    """Send `payload` in random pieces, read what comes back for a moment, and hang up."""
    step = random.Random(seed).randint(1, 700)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for start in range(0, len(payload), step):
                sock.sendall(payload[start:start + step])
            sock.settimeout(0.5)
            while sock.recv(65536):
                pass
        # Closed by the server, or it waits for more of a request: both are fine here.
        except (TimeoutError, ConnectionError):
            pass


def test_garbage_on_every_listener_at_once_harms_no_other_client(make_server):
    kestrel = make_server(server='max_line_length = "1KB"\nmax_value_size = "64KB"')
    # Bystanders, each waiting in a blocking read when the garbage arrives.
    memcache = kestrel.client()
    memcache.send(b"get calm_m/t=30000\r\n")
    text = kestrel.text_client()
    text.send(b"get calm_t 30000\n")
    thrift = RawThrift(kestrel.thrift_port)
    thrift.send(call_frame("get", "calm_h", 1, 30000, seqid=5))

    rng = random.Random(20240607)
    throws = [(kestrel.ports[protocol], garbage(protocol, rng), rng.random()) for protocol in GARBAGE for _ in range(4)]
    with ThreadPoolExecutor(len(throws)) as pool:
        list(pool.map(lambda args: throw(*args), throws))

    writer = kestrel.client()
    # The garbage may have made the server read-only; that is its right.
    assert writer.request("status up") == b"END"
    for queue in ("calm_m", "calm_t", "calm_h"):
        assert writer.set(queue, b"fresh") == b"STORED"
    assert memcache.read_value("calm_m/t=30000") == b"fresh"
    assert text.line() == b":fresh"
    reply = thrift.reply()
    assert (reply.seqid, [item.data for item in reply.value]) == (5, [b"fresh"])
    assert_every_listener_serves(kestrel)


# Limits


def test_an_over_long_text_line_is_refused_with_an_error_and_closed(kestrel):
    text = kestrel.text_client()
    # No line feed: the server must refuse the line before it ends.
    text.send(b"get " + b"x" * 10000)
    assert text.line() == b"-Line longer than 8192 bytes."
    assert text.closed_by_server()
    assert_every_listener_serves(kestrel)


def test_a_huge_declared_thrift_frame_is_refused_at_once(kestrel):
    raw = RawThrift(kestrel.thrift_port)
    # Two gigabytes declared, one call sent: the answer must not wait for the rest.
    raw.send(struct.pack("!I", 2**31) + message("put", "q", [b"x"], seqid=3))
    reply = raw.reply()
    assert (reply.name, reply.seqid, reply.error.type) == ("put", 3, TApplicationException.PROTOCOL_ERROR)
    assert "larger than the limit" in reply.error.message
    assert kestrel.thrift_client().peek("q").items == 0
    assert_every_listener_serves(kestrel)


class Peer:
    """One connection of many, read without blocking."""

    def __init__(self, kestrel: KestrelProcess, protocol: str):
        self.protocol = protocol
        self.client = CLIENTS[protocol](kestrel.ports[protocol])
        self.socket = self.client.socket
        self.received = b""
        self.closed = False

    def poll(self) -> bool:
        """Read what has come; True once the server has closed the connection."""
        self.socket.setblocking(False)
        try:
            while not self.closed:
                data = self.socket.recv(65536)
                self.received += data
                self.closed = not data
        except BlockingIOError:
            pass
        except ConnectionError:
            self.closed = True
        return self.closed

    def served(self) -> bool:
        """Whether a whole request gets its answer."""
        self.socket.settimeout(10)
        if self.protocol == "thrift":
            self.client.send(call_frame("get_version"))
            return self.client.reply().value == PROTOCOL_VERSION
        return self.client.request("version") == VERSION_LINES[self.protocol]


def test_connections_beyond_max_connections_get_an_error_and_are_closed(make_server):
    kestrel = make_server(server="max_connections = 100")
    peers = [Peer(kestrel, ("memcache", "text", "thrift")[number % 3]) for number in range(200)]
    assert wait_until(lambda: sum(peer.poll() for peer in peers) >= 100)
    refused = [peer for peer in peers if peer.poll()]
    assert len(refused) == 100
    for peer in refused:
        assert peer.received == REFUSALS[peer.protocol], (peer.protocol, peer.received)
    assert all(peer.served() for peer in peers if peer not in refused)
    for peer in peers:
        peer.socket.close()
    # The cap counts open connections: once these are gone, new ones are served again.
    observer = kestrel.client()
    assert wait_until(lambda: observer.stats()["curr_connections"] == "1")
    assert_every_listener_serves(kestrel)


def test_clients_that_send_a_byte_a_second_are_closed_and_busy_ones_are_not(make_server):
    kestrel = make_server(server='client_timeout = "2s"')
    requests = {"memcache": b"get calm/t=100\r\n", "text": b"get calm 100\n", "thrift": call_frame("get_version")}
    tricklers = {protocol: Peer(kestrel, protocol) for protocol in requests}
    busy = {protocol: Peer(kestrel, protocol) for protocol in requests}
    started = time.monotonic()
    closed_after: dict[str, float] = {}
    # A whole request a second keeps a connection; a byte a second of one does not.
    for second in range(5):
        for protocol, peer in tricklers.items():
            if protocol not in closed_after:
                if peer.poll():
                    closed_after[protocol] = time.monotonic() - started
                else:
                    peer.socket.sendall(requests[protocol][second:second + 1])
        assert all(peer.served() for peer in busy.values())
        time.sleep(max(0.0, started + second + 1 - time.monotonic()))
    for protocol, peer in tricklers.items():
        if protocol not in closed_after and peer.poll():
            closed_after[protocol] = time.monotonic() - started
    assert sorted(closed_after) == sorted(requests), closed_after
    assert all(2 <= seconds <= 4.5 for seconds in closed_after.values()), closed_after
    assert_every_listener_serves(kestrel)
