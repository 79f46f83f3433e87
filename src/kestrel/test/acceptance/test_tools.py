"""The `kestrel` command against a real server: `dump` on its journal, the admin commands on its admin port."""

import json
import os
import subprocess
import sys

from kestrel.load.process import free_port, wait_until


def kestrel_command(*args: str, config=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `kestrel` the way its entry point does, without needing it installed; the config from $KESTREL_CONFIG."""
    env = os.environ | ({"KESTREL_CONFIG": str(config)} if config else {})
    return subprocess.run(
        [sys.executable, "-m", "kestrel.command", *args], check=False, capture_output=True, text=True, timeout=30, env=env,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
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

    dump = kestrel_command("dump", "jobs", config=kestrel.config)
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


def test_admin_commands_find_the_admin_port_in_the_config(make_server):
    # A port of its own in the config (the harness's tcp:0 is known only once bound).
    kestrel = make_server(server=f'admin_listen = "tcp:{free_port()}:interface=127.0.0.1"')

    def tool(*args: str) -> subprocess.CompletedProcess:
        return kestrel_command(*args, config=kestrel.config)

    kestrel.client().set("jobs", b"hello")
    assert tool("ping").stdout == "pong\n"
    stats = tool("stats", "jobs")
    assert "queue_jobs_items 1" in stats.stdout.splitlines()
    assert json.loads(tool("stats", "--json").stdout)["server"]["curr_items"] == 1
    assert json.loads(tool("server-info").stdout)["listeners"]["admin"].endswith(f":{kestrel.admin_port}")
    assert "kestrel_queue_items{queue=\"jobs\"} 1.0" in tool("metrics").stdout
    assert json.loads(tool("status", "readonly").stdout) == {"status": "ReadOnly"}
    assert json.loads(tool("status").stdout)["status"] == "ReadOnly"
    assert json.loads(tool("reload").stdout)["response"] == "reloaded"

    refused = tool("status", "sideways")
    assert refused.returncode == 1
    assert refused.stderr == "kestrel: 400: unknown status: sideways\n"

    assert tool("shutdown").returncode == 0
    assert kestrel.process.wait(10) == 0
    unreachable = tool("ping")
    assert unreachable.returncode == 2
    assert "cannot reach the admin port" in unreachable.stderr
