"""`kestrel put`, `get`, `peek`, `tail` and `fleet` against real servers: their output and exit codes."""

import signal
import subprocess
import sys

from kestrel.load.process import free_port, wait_until
from kestrel.test.acceptance.test_tools import kestrel_command


def test_put_get_and_peek_on_the_configured_server(make_server):
    # A port of its own in the config: the command reads memcache_listen from it.
    kestrel = make_server(server=f'memcache_listen = "tcp:{free_port()}:interface=127.0.0.1"')

    def tool(*args: str, **options) -> subprocess.CompletedProcess:
        return kestrel_command(*args, config=kestrel.config, **options)

    assert tool("put", "jobs", "one", "two").returncode == 0
    put = tool("put", "jobs", stdin="three\nfour\n")
    assert put.returncode == 0, put.stderr
    assert tool("peek", "jobs").stdout == "one\n"
    assert tool("get", "jobs").stdout == "one\n"
    reserved = tool("get", "jobs", "-n", "5", "--reserve", "--timeout", "100ms")
    assert (reserved.returncode, reserved.stdout) == (0, "two\nthree\nfour\n")
    empty = tool("get", "jobs", "--timeout", "50ms")
    assert (empty.returncode, empty.stdout) == (3, "")
    assert tool("peek", "jobs").returncode == 3
    stats = kestrel.admin("GET", "/stats.json?queue=jobs").json()["queues"]["jobs"]
    assert (stats["items"], stats["open_transactions"], stats["total_items"]) == (0, 0, 4)


def test_fleet_lists_each_server_and_the_ones_down(make_server):
    kestrel = make_server()
    kestrel.client().set("jobs", b"x")
    down = f"127.0.0.1:{free_port()}"
    up = f"127.0.0.1:{kestrel.memcache_port}"
    fleet = kestrel_command("fleet", "--servers", f"{up},{down}")
    assert fleet.returncode == 0, fleet.stderr
    lines = fleet.stdout.splitlines()
    assert lines[0] == f"{up}  write,read  up  1 items in 1 queues"
    assert lines[1] == "  jobs  1 items  0 open"
    assert lines[2].startswith(f"{down}  write,read  down  ")
    assert kestrel_command("fleet", "--servers", down).returncode == 2


def test_refusals_and_bad_usage_exit_as_documented(make_server):
    kestrel = make_server()
    server = f"127.0.0.1:{kestrel.memcache_port}"
    assert kestrel.admin("POST", "/status?set=readonly").status == 200
    refused = kestrel_command("put", "jobs", "x", "--servers", server)
    assert refused.returncode == 1 and "SERVER_ERROR" not in refused.stdout and "no server available" in refused.stderr
    unreachable = kestrel_command("get", "jobs", "--servers", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2 and unreachable.stderr.count("\n") == 1
    bad_name = kestrel_command("get", "no/such", "--servers", server)
    assert bad_name.returncode == 2 and bad_name.stderr.startswith("kestrel: bad queue name")
    zookeeper = kestrel_command("fleet", "--zookeeper", "zk:2181")
    assert zookeeper.returncode == 2 and zookeeper.stderr.startswith("kestrel: bad zookeeper 'zk:2181': expected")


def test_fleet_from_zookeeper_server_sets_shows_each_server_sets(make_server, zookeeper):
    announce = f'[zookeeper]\nhosts = "{zookeeper.hosts}"\npath_prefix = "/kestrel/cli"\nadvertise_host = "127.0.0.1"\n'
    kestrel = make_server(queues=announce)
    server = f"127.0.0.1:{kestrel.memcache_port}"
    spec = f"{zookeeper.hosts}/kestrel/cli"
    assert wait_until(lambda: kestrel_command("fleet", "--zookeeper", spec).stdout.startswith(f"{server}  write,read  up"))
    assert kestrel_command("put", "jobs", "one", "--zookeeper", spec).returncode == 0
    assert kestrel.admin("POST", "/status?set=readonly").status == 200
    assert wait_until(lambda: kestrel_command("fleet", "--zookeeper", spec).stdout.startswith(f"{server}  read  up"))
    assert kestrel_command("get", "jobs", "--zookeeper", spec).stdout == "one\n"


def test_tail_prints_items_as_they_come_and_ends_cleanly_on_ctrl_c(make_server):
    kestrel = make_server()
    server = f"127.0.0.1:{kestrel.memcache_port}"
    tail = subprocess.Popen(
        [sys.executable, "-m", "kestrel.command", "tail", "jobs", "--servers", server],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        client = kestrel.client()
        for item in (b"one", b"two"):
            assert client.set("jobs", item) == b"STORED"
            assert tail.stdout.readline() == item.decode() + "\n"
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0
        assert tail.stderr.read() == ""
    finally:
        tail.kill()
    stats = kestrel.admin("GET", "/stats.json?queue=jobs").json()["queues"]["jobs"]
    assert (stats["items"], stats["open_transactions"]) == (0, 0)  # both confirmed
