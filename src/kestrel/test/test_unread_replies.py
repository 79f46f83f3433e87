"""
Clients that do not read their replies (issue 10, defect 2): every listener stops handling and
reading a connection's requests while its unsent output is over the bound, and goes on, in
order and losing nothing, when the output drains.

The transport (support.UnreadTransport) keeps what is written, as a socket whose client does
not read, and pauses and resumes its producer as Twisted's TCP transport does.
"""

import json

import pytest

from kestrel import PROTOCOL_VERSION
from kestrel.admin.http import AdminResource, AdminSite
from kestrel.config import parse_config
from kestrel.protocols.memcache import MemcacheProtocol
from kestrel.protocols.text import TextProtocol, item_reply
from kestrel.test.support import ServerHarness, UnreadClient
from kestrel.test.test_hostile_admin import CLIENT, responses
from kestrel.test.test_thrift import ThriftServer, call_frame, replies_in

BOUND = 100
BIG = b"x" * 200
VERSION = b"VERSION %s\r\n" % PROTOCOL_VERSION.encode()
PEEK = b"get big/peek\r\n"
PEEK_REPLY = b"VALUE big/peek 0 200\r\n" + BIG + b"\r\nEND\r\n"


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    kestrel = ServerHarness(harness, max_output_buffer=BOUND, max_line_length=64, max_value_size=256)
    kestrel.add("big", BIG)
    return kestrel


def test_the_bound_is_a_server_option(harness):
    assert ServerHarness(harness).server.config.max_output_buffer == 1024**2
    config = parse_config({"server": {"queue_path": "spool", "max_output_buffer": "64KB"}}, None, str(harness.directory))
    assert config.max_output_buffer == 64 * 1024


# memcache


def test_memcache_handles_no_request_while_its_replies_are_unread(kestrel):
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    client.send(PEEK * 5 + b"version\r\n")
    # A reply larger than the bound goes out whole, and the pass stops behind it.
    assert client.unread() == PEEK_REPLY
    assert not client.transport.reading
    assert kestrel.stats.cmd_peek == 1
    client.send(b"version\r\n")
    assert client.unread() == PEEK_REPLY
    assert kestrel.stats.cmd_peek == 1
    assert client.transport.drain() == PEEK_REPLY
    # Each drain lets one more reply out.
    assert client.unread() == PEEK_REPLY
    assert kestrel.stats.cmd_peek == 2
    assert client.read_all() == PEEK_REPLY * 4 + VERSION * 2
    assert client.transport.reading


def test_one_pass_writes_its_replies_once_they_pass_the_bound(kestrel):
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    # A transport that is never full: the pass writes at the bound and goes on.
    client.transport.bufferSize = 10**6
    client.send(b"version\r\n" * 20)
    assert client.unread() == VERSION * 20
    per_write = BOUND // len(VERSION) + 1
    assert client.transport.writes == -(-20 // per_write)
    assert client.transport.reading


def test_reading_resumes_only_when_neither_a_wait_nor_unsent_output_holds_it(kestrel):
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    client.send(b"get q/t=1000\r\n")
    # More than a request's worth of input behind the waiting get: reading pauses.
    client.send(b"version\r\n" * 40)
    assert not client.transport.reading
    # The get is answered with more than the transport buffers: reading stays paused.
    kestrel.add("q", BIG)
    assert client.unread() == b"VALUE q/t=1000 0 200\r\n" + BIG + b"\r\nEND\r\n"
    assert not client.transport.reading
    client.transport.drain()
    assert client.read_all() == VERSION * 40
    assert client.transport.reading


def test_a_disconnected_client_drops_its_buffered_requests(kestrel):
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    client.send(PEEK * 50)
    assert kestrel.stats.cmd_peek == 1
    client.protocol.stopProducing()
    client.protocol.connectionLost(None)
    assert client.protocol._buffer == b""
    client.transport.drain()
    assert kestrel.stats.cmd_peek == 1


def test_an_idle_client_that_reads_nothing_is_aborted(harness):
    kestrel = ServerHarness(harness, max_output_buffer=BOUND, client_timeout=30.0)
    kestrel.add("big", BIG)
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    client.send(PEEK * 2)
    kestrel.clock.advance(30)
    # Closing would wait for the unread replies to go out, which they never do.
    assert client.transport.disconnected


def test_a_connection_that_closes_is_no_longer_the_producer_of_its_transport(kestrel):
    client = UnreadClient(MemcacheProtocol(kestrel.server))
    client.transport.bufferSize = 10
    client.send(b"version\r\nquit\r\n")
    assert client.transport.producer_paused
    # Twisted resumes a paused producer when the buffer drains, and closes only without one.
    assert client.transport.disconnecting
    assert client.transport.producer is None


# text


def test_text_handles_no_request_while_its_replies_are_unread(kestrel):
    client = UnreadClient(TextProtocol(kestrel.server))
    client.send(b"peek big\n" * 5 + b"version\n")
    assert client.unread() == item_reply(BIG)
    assert not client.transport.reading
    assert kestrel.stats.cmd_peek == 1
    assert client.transport.drain() == item_reply(BIG)
    assert client.unread() == item_reply(BIG)
    assert client.read_all() == item_reply(BIG) * 4 + item_reply(PROTOCOL_VERSION.encode())
    assert client.transport.reading
    assert kestrel.queue_stat("big", "items") == 1


# Thrift


def test_thrift_handles_no_call_while_its_replies_are_unread(kestrel):
    client = UnreadClient(ThriftServer(kestrel).factory.buildProtocol(None))
    client.send(b"".join(call_frame("peek", "big", seqid=seqid) for seqid in range(5)) + call_frame("get_version", seqid=5))
    (first,) = replies_in(client.unread())
    assert (first.seqid, first.value.head_item) == (0, BIG)
    assert not client.transport.reading
    assert kestrel.stats.cmd_peek == 1
    client.transport.drain()
    assert [reply.seqid for reply in replies_in(client.unread())] == [1]
    rest = replies_in(client.read_all())
    assert [reply.seqid for reply in rest] == [1, 2, 3, 4, 5]
    assert [reply.value.head_item for reply in rest[:4]] == [BIG] * 4
    assert rest[4].value == PROTOCOL_VERSION
    assert client.transport.reading


# admin HTTP


def stats_request() -> bytes:
    return b"GET /stats.json HTTP/1.1\r\nHost: kestrel\r\n\r\n"


def test_admin_http_answers_no_pipelined_request_while_its_responses_are_unread(kestrel):
    site = AdminSite(AdminResource(kestrel.server), reactor=kestrel.clock)
    client = UnreadClient(site.buildProtocol(CLIENT), peerAddress=CLIENT)
    client.send(stats_request() * 10)
    assert len(responses(client.unread())) == 1
    assert not client.transport.reading
    client.send(stats_request())
    assert len(responses(client.unread())) == 1
    answered = responses(client.read_all())
    assert len(answered) == 11
    assert all(json.loads(response.body)["queues"]["big"]["items"] == 1 for response in answered)
    assert client.transport.reading
