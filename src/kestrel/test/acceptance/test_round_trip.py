"""
The three protocols on one real server: an item put through any of them reads back
through each of the others with the same bytes; each listener can be turned off.
"""

import pytest

# Every byte value but the line feed (a text item is one line) and the carriage return
# (a text line may end in one, which is dropped); a carriage return inside is kept.
PAYLOAD = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"") + b" caf\xc3\xa9 a\rb \xff\x00"


class Protocols:
    """One client per protocol, each with `put(queue, data)` and `get(queue)`."""

    def __init__(self, kestrel):
        self.memcache = kestrel.client()
        self.thrift = kestrel.thrift_client()
        self.text = kestrel.text_client()

    def put(self, protocol: str, queue: str, data: bytes) -> None:
        if protocol == "memcache":
            assert self.memcache.set(queue, data) == b"STORED"
        elif protocol == "thrift":
            assert self.thrift.put(queue, [data]) == 1
        else:
            self.text.send(b"put %s:\n%s\n\n" % (queue.encode(), data))
            assert self.text.line() == b"+1"

    def get(self, protocol: str, queue: str) -> bytes | None:
        if protocol == "memcache":
            return self.memcache.get(queue)
        if protocol == "thrift":
            (item,) = self.thrift.get(queue, 1, 0, 0)
            return item.data
        reply = self.text.request(f"get {queue}")
        # The text get leaves its item open until the next read on the queue: confirm it.
        assert self.text.request(f"confirm {queue} 1") == b"+1"
        return reply[1:] if reply.startswith(b":") else None


@pytest.fixture
def protocols(kestrel) -> Protocols:
    return Protocols(kestrel)


PAIRS = [(source, reader) for source in ("memcache", "thrift", "text") for reader in ("memcache", "thrift", "text") if source != reader]


@pytest.mark.parametrize("source, reader", PAIRS)
def test_an_item_reads_back_with_the_same_bytes(protocols, source, reader):
    queue = f"{source}_to_{reader}"
    protocols.put(source, queue, PAYLOAD)
    assert protocols.get(reader, queue) == PAYLOAD


def test_memcache_to_thrift_to_text_and_round(kestrel, protocols):
    protocols.put("memcache", "leg1", PAYLOAD)
    data = protocols.get("thrift", "leg1")
    protocols.put("thrift", "leg2", data)
    data = protocols.get("text", "leg2")
    protocols.put("text", "leg3", data)
    assert protocols.get("memcache", "leg3") == PAYLOAD
    stats = kestrel.client().stats()
    assert [stats[f"queue_leg{n}_items"] for n in (1, 2, 3)] == ["0", "0", "0"]


def test_the_listeners_are_in_the_stats(kestrel):
    stats = kestrel.client().stats()
    for protocol in ("memcache", "text", "thrift"):
        assert stats[f"listener_{protocol}"] == f"127.0.0.1:{kestrel.ports[protocol]}"


@pytest.mark.parametrize("off", ["text", "thrift"])
def test_a_listener_can_be_turned_off(make_server, off):
    kestrel = make_server(server=f'{off}_listen = ""')
    assert off not in kestrel.ports
    stats = kestrel.client().stats()
    assert f"listener_{off}" not in stats
    on = "thrift" if off == "text" else "text"
    assert stats[f"listener_{on}"] == f"127.0.0.1:{kestrel.ports[on]}"


def test_both_off_leaves_memcache(make_server):
    kestrel = make_server(server='text_listen = ""\nthrift_listen = ""')
    assert sorted(kestrel.ports) == ["admin", "memcache"]
    stats = kestrel.client().stats()
    assert sorted(key for key in stats if key.startswith("listener_")) == ["listener_admin", "listener_memcache"]
