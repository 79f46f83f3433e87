"""
A real ZooKeeper for the tests: Debian's `zookeeper` package (with a headless JRE, both
installed by .ci/run) run standalone on a loopback port, its data in a temporary folder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from kestrel.load.process import free_port

JAR = Path("/usr/share/java/zookeeper.jar")
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
# Short ticks let a test run a session out in seconds: sessions last 2 to 40 ticks.
TICK_MS = 250
START_TIMEOUT = 30.0


def missing() -> str | None:
    """Why ZooKeeper cannot run here, or None."""
    if shutil.which("java") is None:
        return "no java (Debian: default-jre-headless)"
    if not JAR.exists():
        return f"no {JAR} (Debian: zookeeper)"
    return None


class ZooKeeperServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.hosts = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self._config = directory / "zoo.cfg"
        self._config.write_text(
            f"tickTime={TICK_MS}\ndataDir={directory / 'data'}\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
        )

    def start(self) -> "ZooKeeperServer":
        """Start (again, on the same data and port) and wait until it takes connections."""
        log = open(self.directory / "zookeeper.log", "ab")
        self._process = subprocess.Popen(
            ["java", "-Xmx128m", "-cp", str(JAR), MAIN, str(self._config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited at start; see {self.directory / 'zookeeper.log'}")
            if self._serving():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("ZooKeeper did not start")

    def _serving(self) -> bool:
        """True once it answers `srvr` (the one four-letter command ZooKeeper allows by default)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as connection:
                connection.sendall(b"srvr")
                answer = b""
                while chunk := connection.recv(4096):
                    answer += chunk
        except OSError:
            return False
        return b"Mode: standalone" in answer

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None
