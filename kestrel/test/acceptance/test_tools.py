"""The operator commands against a real server: kestrel-qdump on its journal, kestrel-admin on its admin port."""

import json
import subprocess
import sys

from kestrel.load.process import wait_until


def tool(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a console script the way its entry point does, without needing it installed."""
    return subprocess.run(
        [sys.executable, "-m", f"kestrel.tools.{module}", *args], check=False, capture_output=True, text=True, timeout=30
    )


def test_qdump_lists_exactly_the_operations_done(kestrel, tmp_path):
    client = kestrel.client()
    assert client.set("jobs", b"hello") == b"STORED"
    assert client.set("jobs", b"world!") == b"STORED"
    assert client.get("jobs") == b"hello"
    assert client.get("jobs/open") == b"world!"
    assert client.get("jobs/close") is None
    assert client.set("jobs", b"x", exptime=3600) == b"STORED"
    assert client.get("jobs/open") == b"x"
    client.close()

    def open_transactions() -> int:
        return kestrel.admin("GET", "/stats.json?queue=jobs").json()["queues"]["jobs"]["open_transactions"]

    assert wait_until(lambda: open_transactions() == 0)
    kestrel.stop()

    dump = tool("qdump", str(tmp_path / "spool" / "jobs"))
    assert dump.returncode == 0, dump.stderr
    lines = dump.stdout.splitlines()
    assert lines[5].startswith("00000040  ADD 1      exp=3")
    assert lines[:5] + lines[6:] == [
        "00000000  ADD 5",
        "0000001a  ADD 6",
        "00000035  REM",
        "00000036  RSV 1",
        "0000003b  ACK 1",
        "00000056  RSV 2",
        "0000005b  CAN 2",
        "Journal size: 96 bytes, with 8 operations.",
        "1 items totalling 1 bytes.",
        "Open transactions: 0.",
    ]


def test_kestrel_admin_commands(kestrel):
    port = ["--port", str(kestrel.admin_port)]
    kestrel.client().set("jobs", b"hello")
    assert tool("admin", *port, "ping").stdout == "pong\n"
    stats = tool("admin", *port, "stats", "--queue", "jobs")
    assert "queue_jobs_items 1" in stats.stdout.splitlines()
    assert json.loads(tool("admin", *port, "stats", "--json").stdout)["server"]["curr_items"] == 1
    assert json.loads(tool("admin", *port, "server-info").stdout)["listeners"]["admin"].endswith(f":{kestrel.admin_port}")
    assert "kestrel_queue_items{queue=\"jobs\"} 1.0" in tool("admin", *port, "metrics").stdout
    assert json.loads(tool("admin", *port, "status", "readonly").stdout) == {"status": "ReadOnly"}
    assert json.loads(tool("admin", *port, "status").stdout)["status"] == "ReadOnly"
    assert json.loads(tool("admin", *port, "reload").stdout)["response"] == "reloaded"

    refused = tool("admin", *port, "status", "sideways")
    assert refused.returncode == 1
    assert refused.stderr == "kestrel-admin: 400: unknown status: sideways\n"

    assert tool("admin", *port, "shutdown").returncode == 0
    assert kestrel.process.wait(10) == 0
    unreachable = tool("admin", *port, "ping")
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr
