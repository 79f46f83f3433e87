"""
The systemd units of etc/systemd (issue 12): the server starts with exactly each unit's
command line (only the install paths differ), and the socket-activated variant serves on the
sockets that systemd passes, as `systemd-socket-activate` (systemd's own tool) passes them.
"""

import os
import shlex
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from kestrel.load.process import TWISTD, KestrelProcess, RawClient, free_port, wait_until, write_config

UNITS = Path(__file__).resolve().parents[4] / "etc" / "systemd"
INSTALLED_TWISTD = "/opt/txkestrel/bin/twistd"


def exec_start(unit: str) -> list[str]:
    [line] = [line for line in (UNITS / unit).read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def here(command: list[str], config: Path) -> list[str]:
    """The unit's command line with this checkout's twistd and a test config in place of the installed ones."""
    installed_config = command[command.index("--config") + 1]
    return [TWISTD if part == INSTALLED_TWISTD else str(config) if part == installed_config else part for part in command]


def test_the_service_unit_starts_a_server_that_serves_and_stops_cleanly(tmp_path):
    config = write_config(tmp_path)
    server = KestrelProcess(tmp_path, config, command=here(exec_start("txkestrel.service"), config)).start()
    client = server.client()
    client.set("jobs", b"from the unit")
    client.set("jobs", b"kept")
    assert client.get("jobs") == b"from the unit"
    # What systemctl stop sends. twistd exits by the signal that stopped it, after a clean stop.
    assert server.stop() == -signal.SIGTERM
    assert "txkestrel stopping" in server.log() and "Traceback" not in server.log()
    assert server.start().client().get("jobs") == b"kept"
    server.stop()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd is not installed (.ci/run installs it)")
def test_the_socket_activated_unit_serves_on_the_sockets_systemd_passes(tmp_path):
    shipped = (UNITS / "kestrel-activated.conf").read_text()
    config = tmp_path / "kestrel-activated.conf"
    config.write_text(shipped.replace("/var/lib/txkestrel", str(tmp_path)))
    ports = [free_port() for _ in range(4)]  # memcache, text, Thrift, admin: the order of the .socket unit
    listens = [argument for port in ports for argument in ("-l", f"127.0.0.1:{port}")]
    # Names as systemd (227 and later) always passes them, and Twisted requires them.
    names = "--fdname=" + ":".join(["txkestrel-activated.socket"] * len(ports))
    activator = subprocess.Popen(
        ["systemd-socket-activate", *listens, names, *here(exec_start("txkestrel-activated.service"), config)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        # The first connection starts the server; it waits in the socket's queue meanwhile.
        assert wait_until(lambda: accepts(ports[0]))
        client = RawClient(ports[0])
        client.set("jobs", b"activated")
        assert client.get("jobs") == b"activated"
        assert wait_until(lambda: ping(ports[3]) == b"pong")
    finally:
        os.killpg(activator.pid, signal.SIGTERM)
        activator.wait(30)


def accepts(port: int) -> bool:
    try:
        RawClient(port, timeout=5).socket.close()
    except OSError:
        return False
    return True


def ping(port: int) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
            return response.read().strip()
    except OSError:
        return None
