"""
Each load tool, briefly, against a real server (and put-many and flood against memcached
when it is installed): exit code 0 and the counts of the JSON result. A queue that silently
drops items shows that a loss makes a tool fail.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from kestrel.load.process import KestrelProcess, wait_until, write_config

LISTENERS = """
text_listen = "tcp:0:interface=127.0.0.1"
thrift_listen = "tcp:0:interface=127.0.0.1"
"""
LOSSY = """
[queues.lossy]
max_items = 10
discard_old_when_full = true
"""
TIMEOUT = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("load")
    process = KestrelProcess(directory, write_config(directory, server=LISTENERS, queues=LOSSY)).start()
    yield process
    process.kill()


def load(*argv: str, flush: bool = True) -> tuple[int, dict]:
    """Run a tool; it flushes its queues first unless told otherwise (the tests share one server)."""
    run = subprocess.run(
        [sys.executable, "-m", "kestrel.load.cli", *argv, "--json", *(["--flush"] if flush else [])],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    return run.returncode, json.loads(run.stdout)


def memcache(server, tool: str, *argv: str) -> tuple[int, dict]:
    return load(tool, "-p", str(server.memcache_port), *argv)


def test_put_many_with_get_phase(server):
    code, result = memcache(server, "put-many", "-n", "600", "-c", "6", "-Q", "2", "-r", "4", "-g", "--procs", "2")
    assert code == 0, result
    assert (result["counts"]["stored"], result["counts"]["read"]) == (600, 600)
    assert result["phases"]["put"]["latency_us"]["put"]["count"] == 150
    assert [check["status"] for check in result["checks"]] == ["ok", "ok", "ok"]


def test_a_tool_leaves_the_items_already_queued_unless_told_to_flush(server):
    """Issue 12: flushing the target queue was the default, against a shared server too."""
    server.client().set("kept", b"someone's job")
    code, result = load("put-many", "-p", str(server.memcache_port), "-q", "kept", "-n", "10", "-c", "1", flush=False)
    assert code == 0, result
    assert server.client().get("kept") == b"someone's job"
    assert [check["status"] for check in result["checks"]] == ["ok"]


def test_flood_with_prefill_roll_up_and_two_processes(server):
    code, result = memcache(server, "flood", "-n", "1000", "-P", "100", "-R", "2", "-C", "2", "-r", "5", "--procs", "2")
    assert code == 0, result
    assert result["counts"]["received"] == 1100
    assert result["checks"][1] == {"name": "exactly once", "status": "ok", "detail": "all 1100 items delivered once"}


def test_flood_over_text_and_thrift(server):
    code, result = load("flood", "--protocol", "text", "-p", str(server.ports["text"]), "-n", "300", "-B")
    assert code == 0, result
    assert result["counts"]["received"] == 300
    code, result = load("flood", "--thrift", "-p", str(server.ports["thrift"]), "-n", "300", "-r", "10")
    assert code == 0, result
    assert result["counts"]["received"] == 300


def test_many_clients_with_kills(server):
    code, result = memcache(server, "many-clients", "-n", "40", "-s", "5", "-c", "10", "-k", "30", "--procs", "2")
    assert code == 0, result
    assert result["counts"]["received"] == 40
    assert result["counts"]["kills"] > 0
    assert result["checks"][1]["status"] == "ok"


def test_packing_reads_in_order(server):
    code, result = memcache(server, "packing", "-n", "200", "-c", "2", "-t", "0")
    assert code == 0, result
    assert (result["counts"]["written"], result["counts"]["read"]) == (600, 600)
    assert result["checks"][2] == {"name": "in order", "status": "ok", "detail": "600 items read in the order written"}


def test_leaky_reader_confirms_every_item_once(server):
    code, result = load(
        "leaky-reader", "-p", str(server.ports["thrift"]), "-n", "200", "-d", "0.05", "-t", "3", "--auto-abort", "300"
    )
    assert code == 0, result
    assert result["counts"]["confirmed"] == 200
    assert result["checks"][1]["status"] == "ok"


def test_a_lost_item_fails_the_run(server):
    # The queue keeps 10 items and silently drops older ones: items 1 to 90 of the prefill never arrive.
    code, result = memcache(server, "flood", "-q", "lossy", "-n", "1", "-P", "100", "-B", "--stall", "0.5")
    assert code == 1
    assert not result["ok"]
    assert result["checks"][1]["status"] == "failed"
    assert "never delivered: 00000001 00000002" in result["checks"][1]["detail"]
    assert result["errors"] == ["stalled: no progress for 0.5 s, run stopped"]


@pytest.fixture(scope="module")
def memcached():
    if shutil.which("memcached") is None:
        pytest.skip("memcached is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", *as_root])

    def listening() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    assert wait_until(listening, timeout=5)
    yield port
    process.kill()
    process.wait()


def test_memcached_runs_without_delivery_checks(memcached):
    code, result = load("put-many", "-p", str(memcached), "-n", "300", "-c", "3", "-g")
    assert code == 0, result
    assert result["server"]["kind"] == "memcached"
    assert (result["counts"]["stored"], result["counts"]["read"]) == (300, 300)
    assert [check["status"] for check in result["checks"]] == ["ok", "skipped"]
    code, result = load("flood", "-p", str(memcached), "-n", "300", "-B", "-r", "3")
    assert code == 0, result
    assert [check["status"] for check in result["checks"]] == ["ok", "skipped"]
