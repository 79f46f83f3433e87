"""
ZooKeeper server sets, with a real ZooKeeper and a real server: membership and its JSON read
straight from ZooKeeper with kazoo after each status change, after ZooKeeper restarts, and
after a clean shutdown.
"""

import json
import signal
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from kestrel.client import Client, ZooKeeperUnreachable
from kestrel.load.process import free_port

PREFIX = "/kestrel/test"
SESSION_TIMEOUT = 1.5
WAIT = 20.0


def zookeeper_table(zookeeper) -> str:
    return (
        f'[zookeeper]\nhosts = "{zookeeper.hosts}"\npath_prefix = "{PREFIX}"\n'
        f'session_timeout = "{SESSION_TIMEOUT}s"\nadvertise_host = "127.0.0.1"\n'
    )


@pytest.fixture
def reader(zookeeper):
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


def members(reader, set_name: str) -> list[dict]:
    path = f"{PREFIX}/{set_name}"
    if not reader.exists(path):
        return []
    records = []
    for child in sorted(reader.get_children(path)):
        try:
            records.append(json.loads(reader.get(f"{path}/{child}")[0]))
        except NoNodeError:  # left between the listing and the read
            pass
    return records


def eventually(check, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.05)


def sets_are(reader, write: int, read: int):
    return lambda: (len(members(reader, "write")), len(members(reader, "read"))) == (write, read)


def test_a_server_joins_both_sets_with_its_endpoints(make_server, zookeeper, reader):
    server = make_server(queues=zookeeper_table(zookeeper))
    eventually(sets_are(reader, 1, 1), "the server in both sets")
    record = members(reader, "write")[0]
    assert members(reader, "read") == [record]
    assert record == {
        "serviceEndpoint": {"host": "127.0.0.1", "port": server.memcache_port},
        "additionalEndpoints": {
            protocol: {"host": "127.0.0.1", "port": server.ports[protocol]} for protocol in ("memcache", "text", "thrift")
        },
        "status": "ALIVE",
    }
    children = reader.get_children(f"{PREFIX}/write")
    assert [child.startswith("member_") for child in children] == [True]
    assert reader.exists(f"{PREFIX}/write/{children[0]}").ephemeralOwner != 0


def test_the_status_moves_the_server_between_sets(make_server, zookeeper, reader):
    server = make_server(queues=zookeeper_table(zookeeper))
    eventually(sets_are(reader, 1, 1), "up: both sets")
    for status, write, read in [("writeavoid", 0, 1), ("up", 1, 1), ("readonly", 0, 1), ("quiescent", 0, 0), ("up", 1, 1)]:
        assert server.admin("POST", f"/status?set={status}").status == 200
        eventually(sets_are(reader, write, read), f"{status}: {write} in write, {read} in read")


def test_a_lost_session_joins_again_when_zookeeper_is_back(make_server, zookeeper, reader):
    server = make_server(queues=zookeeper_table(zookeeper))
    eventually(sets_are(reader, 1, 1), "both sets")
    reader.stop()
    zookeeper.stop()
    # Down for longer than the session lasts: ZooKeeper ends the session, and its nodes.
    client = server.client()
    assert client.set("jobs", b"hi") == b"STORED"  # ZooKeeper down stops nothing
    assert client.get("jobs") == b"hi"
    client.close()
    time.sleep(SESSION_TIMEOUT * 2)
    zookeeper.start()
    reader.start(timeout=10)
    eventually(sets_are(reader, 1, 1), "back in both sets after the session was lost")
    assert "ZooKeeper session lost" in server.log() or "connection to ZooKeeper suspended" in server.log()


def test_a_clean_shutdown_leaves_both_sets_before_the_listeners_close(make_server, zookeeper, reader):
    server = make_server(queues=zookeeper_table(zookeeper))
    eventually(sets_are(reader, 1, 1), "both sets")
    assert server.stop() == -signal.SIGTERM  # twistd ends by its signal, after a clean stop
    assert (members(reader, "write"), members(reader, "read")) == ([], [])
    log = server.log()
    left = log.index("left the ZooKeeper server sets")
    assert left < log.index(f"Port {server.memcache_port} Closed")




def test_a_client_whose_zookeeper_does_not_answer_says_so():
    with pytest.raises(ZooKeeperUnreachable, match=r"no answer from ZooKeeper at 127.0.0.1:\d+ within 0.5 s"):
        Client(zookeeper=f"127.0.0.1:{free_port()}/kestrel", zookeeper_timeout=0.5)
