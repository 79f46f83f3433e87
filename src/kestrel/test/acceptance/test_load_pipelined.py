"""The pipelined client of the benchmark beside Darner, against a real server, with tiny counts."""

import pytest

from kestrel.load.pipelined import pipelined_gets, pipelined_sets

HOST = "127.0.0.1"


def test_pipelined_sets_then_gets_drain_the_queue(kestrel):
    assert pipelined_sets(HOST, kestrel.memcache_port, "piped", 1000, 5, 20) > 0
    assert pipelined_sets(HOST, kestrel.memcache_port, "piped", 64, 1, 3) > 0
    assert kestrel.client().stats()["queue_piped_items"] == "23"
    assert pipelined_gets(HOST, kestrel.memcache_port, "piped", 4, 20) > 0
    assert pipelined_gets(HOST, kestrel.memcache_port, "piped", 3, 3) > 0
    assert kestrel.client().stats()["queue_piped_items"] == "0"


def test_a_get_that_finds_the_queue_empty_raises(kestrel):
    pipelined_sets(HOST, kestrel.memcache_port, "short", 64, 3, 3)
    with pytest.raises(RuntimeError, match="1 of 4 gets found short empty"):
        pipelined_gets(HOST, kestrel.memcache_port, "short", 4, 4)


def test_a_set_that_is_not_stored_raises(make_server):
    server = make_server(queues="[queues.full]\nmax_items = 2\n")
    with pytest.raises(RuntimeError, match="were not all STORED: b'STORED\\\\r\\\\nSTORED\\\\r\\\\nNOT_STORED"):
        pipelined_sets(HOST, server.memcache_port, "full", 64, 3, 3)
