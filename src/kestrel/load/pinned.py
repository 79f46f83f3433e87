"""
The servers the side-by-side benchmarks measure, each started fresh and pinned to one core
(SERVER_CORE), so that the load tools have the other core (LOAD_CORE) to themselves.
`kestrel.load.compare` starts them; each is a context manager that stops its server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from kestrel.load.process import START_TIMEOUT, KestrelProcess, free_port, wait_until, write_config
from kestrel.load.replay import resident_memory

SERVER_CORE = "0"
LOAD_CORE = "1"


def fresh_directory(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


class PinnedServer:
    port: int
    pid: int

    def stop(self) -> None:
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """The CPU time (user and system, every thread) the server has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime, the 14th and 15th fields of proc(5), in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        self.stop()


class Memcached(PinnedServer):
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, "memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-t", "1", "-m", "4096"]
        )
        self.pid = self.process.pid
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Txkestrel(PinnedServer):
    """
    `twistd kestrel` on an empty spool, memcache listener only. With `pythonpath`, the server
    imports txkestrel from there (an older checkout, say) instead of the installed code.
    """

    def __init__(self, directory: Path, sync_journal: str, pythonpath: str | None = None, server: str = "", tables: str = ""):
        """`server`: more `[server]` lines; `tables`: more tables (`[apps.NAME]`, say)."""
        fresh_directory(directory)
        config = write_config(
            directory,
            server='admin_listen = ""\ntext_listen = ""\nthrift_listen = ""\n' + server,
            queues=f'[default]\nsync_journal = "{sync_journal}"\n' + tables,
        )
        env = None if pythonpath is None else os.environ | {"PYTHONPATH": pythonpath}
        self.server = KestrelProcess(directory, config, env=env)
        self.server.start()
        # -a: the writer thread and the reactor's thread pool too, and the threads they start later.
        subprocess.run(["taskset", "-a", "-pc", SERVER_CORE, str(self.server.process.pid)], capture_output=True, check=True)
        self.port = self.server.memcache_port
        self.pid = self.server.process.pid

    def rss_mb(self) -> float:
        return round(resident_memory(self.server.process.pid) / 2**20, 1)

    def stop(self) -> None:
        self.server.stop()


class ListeningProcess(PinnedServer):
    """A server process on SERVER_CORE, ready once its port takes a connection; its output goes to `log`."""

    def __init__(self, command: list[str], log: Path, what: str):
        self.log = log
        with open(log, "w") as output:
            self.process = subprocess.Popen(["taskset", "-c", SERVER_CORE, *command], stdout=output, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        if not wait_until(self.accepts, START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"{what} did not start:\n{log.read_text()}")

    def accepts(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the server exited at start:\n{self.log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class Darner(ListeningProcess):
    """`darner -p PORT -d DIRECTORY` on an empty data directory; its log goes to `log`."""

    def __init__(self, executable: Path, directory: Path, log: Path):
        fresh_directory(directory)
        self.port = free_port()
        super().__init__([str(executable), "-p", str(self.port), "-d", str(directory)], log, "darner")


class Floor(ListeningProcess):
    """`python -m kestrel.load.floor PORT`: Twisted's floor, a responder that does no queue work."""

    def __init__(self, log: Path):
        self.port = free_port()
        super().__init__([sys.executable, "-m", "kestrel.load.floor", str(self.port)], log, "the floor responder")
