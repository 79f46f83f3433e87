"""
Memcache clients that found a reply they could not take (issue 12), each against a real
`twistd kestrel`: libmemcached 1.1's tools (Debian's libmemcached-tools, which .ci/run
installs) ask for the version first and refuse a major version of 0; pymemcache sends
`noreply` on delete and reads an unasked-for reply as the answer to its next request; most
clients insist on memcached's `OK` for flush_all, which the memcache listener gives with
`memcache_flush_all_reply = "memcached"`.
"""

import asyncio
import shutil
import subprocess

import aiomcache
import emcache
import pylibmc
import pytest
from pymemcache.client.base import Client as PymemcacheClient

from kestrel import PROTOCOL_VERSION

MEMCACHED_FLUSH_ALL = 'memcache_flush_all_reply = "memcached"'


def servers(kestrel) -> str:
    return f"127.0.0.1:{kestrel.memcache_port}"


@pytest.mark.skipif(shutil.which("memcstat") is None, reason="libmemcached-tools is not installed (.ci/run installs it)")
def test_memcstat_and_memcflush_of_libmemcached_1_1_work(make_server):
    kestrel = make_server(server=MEMCACHED_FLUSH_ALL)
    kestrel.client().set("jobs", b"one")
    stat = subprocess.run(["memcstat", f"--servers={servers(kestrel)}"], capture_output=True, text=True, timeout=30)
    assert stat.returncode == 0, stat.stdout + stat.stderr
    assert "queue_jobs_items: 1" in stat.stdout
    flush = subprocess.run(["memcflush", f"--servers={servers(kestrel)}"], capture_output=True, text=True, timeout=30)
    assert flush.returncode == 0, flush.stdout + flush.stderr
    assert kestrel.client().get("jobs") is None


def test_pymemcache_deletes_with_noreply_and_its_next_request_gets_its_own_reply(kestrel):
    client = PymemcacheClient(("127.0.0.1", kestrel.memcache_port), default_noreply=True)
    client.set("jobs", b"one", noreply=False)
    assert client.delete("jobs") is True  # noreply: the client assumes it went through
    assert client.get("jobs") is None
    client.set("jobs", b"two", noreply=False)
    client.flush_all()
    assert client.get("jobs") is None
    assert client.version() == PROTOCOL_VERSION.encode()
    client.close()


def test_pylibmc_reads_stats_and_flushes_all(make_server):
    kestrel = make_server(server=MEMCACHED_FLUSH_ALL)
    client = pylibmc.Client([servers(kestrel)])
    client.set("jobs", b"one")
    [(_, stats)] = client.get_stats()  # the stats this libmemcached knows of
    assert stats["curr_items"] == b"1"
    assert client.flush_all()
    assert client.get("jobs") is None


def test_aiomcache_and_emcache_flush_all(make_server):
    kestrel = make_server(server=MEMCACHED_FLUSH_ALL)
    kestrel.client().set("jobs", b"one")

    async def flush() -> None:
        aio = aiomcache.Client("127.0.0.1", kestrel.memcache_port)
        await aio.flush_all()
        assert await aio.version() == PROTOCOL_VERSION.encode()
        await aio.close()
        address = emcache.MemcachedHostAddress("127.0.0.1", kestrel.memcache_port)
        client = await emcache.create_client([address])
        await client.flush_all(address)
        assert await client.version(address) == PROTOCOL_VERSION
        await client.close()

    asyncio.run(flush())
    assert kestrel.client().get("jobs") is None


def test_kestrels_flush_all_reply_stays_the_default(kestrel):
    client = kestrel.client()
    client.send(b"flush_all\r\n")
    assert client.line() == b"Flushed all queues."
