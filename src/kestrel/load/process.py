"""
A real `twistd -n kestrel` process, and raw clients to talk to it: used by the acceptance
tests, the crash harness and the benchmark tools.

The server listens on `tcp:0` on loopback; the harness reads the ports it got from the
"listening for <protocol> on <host>:<port>" lines of its log.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TFramedTransportFactory

from kestrel.protocols.thrift.codec import Kestrel

LISTENING = re.compile(r"listening for (\w+) on ([\d.]+):(\d+)")
STARTED = "txkestrel"
START_TIMEOUT = 30.0

TWISTD = str(Path(sys.executable).with_name("twistd"))


DEFAULT_SERVER_OPTIONS = {
    "queue_path": '"spool"',
    "status_file": '"kestrel.status"',
    "memcache_listen": '"tcp:0:interface=127.0.0.1"',
    "text_listen": '"tcp:0:interface=127.0.0.1"',
    "thrift_listen": '"tcp:0:interface=127.0.0.1"',
    "admin_listen": '"tcp:0:interface=127.0.0.1"',
    "max_open_transactions": "100",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(directory: Path, server: str = "", queues: str = "", status_file: bool = True) -> Path:
    """
    A config for a test server: loopback listeners on free ports, spool in `directory`.
    `server` holds extra `[server]` lines, which replace the defaults of the same keys.
    """
    given = {line.split("=", 1)[0].strip() for line in server.splitlines() if "=" in line}
    if not status_file:
        given.add("status_file")
    defaults = [f"{key} = {value}" for key, value in DEFAULT_SERVER_OPTIONS.items() if key not in given]
    config = directory / "kestrel.conf"
    config.write_text("[server]\n" + "\n".join(defaults) + "\n" + server + "\n\n" + queues + "\n")
    return config


class KestrelProcess:
    def __init__(self, directory: Path, config: Path, env: dict[str, str] | None = None, command: list[str] | None = None):
        """
        `env` is the server's whole environment (the default: this process's); `command` the
        whole command line that starts it (the default: the twistd beside this Python, on
        `config`).
        """
        self.directory = directory
        self.config = config
        self.env = env
        self.command = command or [TWISTD, "-n", "--pidfile=", "kestrel", "-c", str(config)]
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.log_lines: list[str] = []
        self._started = threading.Event()

    @property
    def memcache_port(self) -> int:
        return self.ports["memcache"]

    @property
    def text_port(self) -> int:
        return self.ports["text"]

    @property
    def thrift_port(self) -> int:
        return self.ports["thrift"]

    @property
    def admin_port(self) -> int:
        return self.ports["admin"]

    @property
    def manhole_port(self) -> int:
        return self.ports["manhole"]

    @property
    def sqs_port(self) -> int:
        return self.ports["sqs"]

    def start(self, timeout: float = START_TIMEOUT) -> "KestrelProcess":
        self.ports = {}
        # A new event each time: the log reader of an earlier process may still be finishing.
        started = self._started = threading.Event()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_log, args=(self.process, started), daemon=True).start()
        if not started.wait(timeout):
            self.kill()
            raise RuntimeError("txkestrel did not start:\n" + self.log())
        if self.process.poll() is not None:
            raise RuntimeError("txkestrel exited at start:\n" + self.log())
        return self

    def _read_log(self, process: subprocess.Popen, started: threading.Event) -> None:
        for line in process.stdout:
            self.log_lines.append(line)
            match = LISTENING.search(line)
            if match and not started.is_set():
                self.ports[match[1]] = int(match[3])
            if f"{STARTED} " in line and " started:" in line:
                started.set()
        started.set()

    def log(self) -> str:
        return "".join(self.log_lines)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, nothing gets flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> "KestrelProcess":
        self.stop()
        return self.start()

    def client(self, timeout: float = 10.0) -> "RawClient":
        return RawClient(self.memcache_port, timeout)

    def text_client(self) -> "TextClient":
        return TextClient(self.text_port)

    def thrift_client(self, timeout: float = 10.0):
        """A thriftpy2 client of the Kestrel service: framed transport, strict binary protocol."""
        return make_client(
            Kestrel, "127.0.0.1", self.thrift_port, timeout=int(timeout * 1000),
            proto_factory=TBinaryProtocolFactory(strict_read=True, strict_write=True),
            trans_factory=TFramedTransportFactory(),
        )

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def admin(self, method: str, path: str, headers: dict[str, str] | None = None) -> "AdminResponse":
        """One request to the admin HTTP service."""
        connection = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return AdminResponse(response.status, response.getheader("content-type"), response.getheader("allow"), response.read())
        finally:
            connection.close()


class AdminResponse:
    def __init__(self, status: int, content_type: str | None, allow: str | None, body: bytes):
        self.status = status
        self.content_type = content_type
        self.allow = allow
        self.body = body

    def json(self):
        assert self.content_type == "application/json", self.content_type
        return json.loads(self.body)


class RawClient:
    """A memcache client on a plain socket: exact bytes in, exact bytes out."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def close(self) -> None:
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _fill(self) -> None:
        chunk = self.socket.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk

    def request(self, line: str | bytes) -> bytes:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.line()

    def set(self, key: str, value: bytes, exptime: int = 0) -> bytes:
        self.send(b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), exptime, len(value), value))
        return self.line()

    def get(self, key: str) -> bytes | None:
        """The value, or None for END."""
        self.send(b"get %s\r\n" % key.encode())
        return self.read_value(key)

    def read_value(self, key: str) -> bytes | None:
        header = self.line()
        if header == b"END":
            return None
        parts = header.split(b" ")
        assert parts[:3] == [b"VALUE", key.encode(), b"0"], header
        value = self.exactly(int(parts[3]) + 2)[:-2]
        assert self.line() == b"END"
        return value

    def stats(self) -> dict[str, str]:
        self.send(b"stats\r\n")
        stats = {}
        while (line := self.line()) != b"END":
            _, key, value = line.decode().split(" ", 2)
            stats[key] = value
        return stats

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        self.socket.settimeout(timeout)
        try:
            return self.socket.recv(1) == b""
        except ConnectionResetError:
            return True


class TextClient(RawClient):
    """A text-protocol client on a plain socket: its replies are lines ending in a bare line feed."""

    def line(self) -> bytes:
        while b"\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll a condition of another process (which runs on its own clock) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
