"""
Clients that pipeline requests and never read the replies, against a real `twistd kestrel`
(issue 10, defect 2): the server's resident memory stays where it was while the client does
not read and after it has gone.
"""

from __future__ import annotations

import socket
import time

from kestrel.load.process import KestrelProcess, wait_until
from kestrel.load.replay import resident_memory

MB = 2**20
# How far the server's resident memory may move (it grew by about 200 MB before the fix).
SLACK = 16 * MB


def server_stat(kestrel: KestrelProcess, key: str) -> int:
    client = kestrel.client()
    try:
        return int(client.stats()[key])
    finally:
        client.close()


def settled_peeks(kestrel: KestrelProcess, samples: list[int], timeout: float = 10.0) -> int:
    """The peeks handled once the count stops moving for half a second; samples RSS meanwhile."""
    deadline = time.monotonic() + timeout
    last, steady_since = server_stat(kestrel, "cmd_peek"), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - steady_since < 0.5:
        time.sleep(0.05)
        samples.append(resident_memory(kestrel.process.pid))
        count = server_stat(kestrel, "cmd_peek")
        if count != last:
            last, steady_since = count, time.monotonic()
    return last


def connections(kestrel: KestrelProcess) -> int:
    """Client connections open, less the one asking."""
    return server_stat(kestrel, "curr_connections") - 1


def test_unread_replies_to_pipelined_peeks_of_a_large_item_do_not_grow_the_server(kestrel):
    pid = kestrel.process.pid
    client = kestrel.client()
    assert client.set("big", b"x" * MB) == b"STORED"
    client.close()
    before = resident_memory(pid)

    reader = socket.create_connection(("127.0.0.1", kestrel.memcache_port))
    reader.sendall(b"get big/peek\r\n" * 200)
    samples: list[int] = []
    handled = settled_peeks(kestrel, samples)
    during = max(samples)

    reader.close()
    assert wait_until(lambda: connections(kestrel) == 0)
    after = resident_memory(pid)
    print(f"VmRSS before {before / MB:.1f} MB, while not reading {during / MB:.1f} MB ({handled} peeks handled), after {after / MB:.1f} MB")
    assert during - before < SLACK, (before, during)
    assert after - before < SLACK, (before, after)
    # The server stopped with most of the peeks unhandled: their replies would have nowhere to go.
    assert handled < 200

    client = kestrel.client()
    assert client.get("big") == b"x" * MB
    client.close()


def test_unread_responses_to_pipelined_admin_requests_do_not_grow_the_server(kestrel):
    pid = kestrel.process.pid
    client = kestrel.client()
    for n in range(200):
        assert client.set(f"queue{n}", b"x") == b"STORED"
    client.close()
    before = resident_memory(pid)

    reader = socket.create_connection(("127.0.0.1", kestrel.admin_port), timeout=1)
    burst = b"GET /stats.json HTTP/1.1\r\nHost: kestrel\r\n\r\n" * 100
    sent = 0
    samples = []
    try:
        # Until the server stops reading (the socket buffers fill) or 30,000 requests are out.
        for _ in range(300):
            reader.sendall(burst)
            sent += 1
    except TimeoutError:
        pass
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        samples.append(resident_memory(pid))
        time.sleep(0.05)
    during = max(samples)
    reader.close()
    assert kestrel.admin("GET", "/ping").body == b"pong\n"
    after = resident_memory(pid)
    print(f"VmRSS before {before / MB:.1f} MB, while not reading {during / MB:.1f} MB ({sent * 100} requests sent), after {after / MB:.1f} MB")
    assert during - before < SLACK, (before, during)
    assert after - before < SLACK, (before, after)
