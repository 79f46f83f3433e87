import pytest

from kestrel.load.process import KestrelProcess, write_config
from kestrel.test.zookeeper import ZooKeeperServer
from kestrel.test.zookeeper import missing as zookeeper_missing


@pytest.fixture
def make_server(tmp_path):
    """Start a real server with extra `[server]` lines and queue tables; stopped after the test."""
    started = []

    def make(server: str = "", queues: str = "", status_file: bool = True) -> KestrelProcess:
        process = KestrelProcess(tmp_path, write_config(tmp_path, server, queues, status_file)).start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()


@pytest.fixture
def kestrel(make_server):
    return make_server()


@pytest.fixture
def zookeeper(tmp_path):
    """A real ZooKeeper on a loopback port, stopped after the test."""
    reason = zookeeper_missing()
    if reason is not None:
        pytest.skip(f"ZooKeeper cannot run here: {reason}")
    server = ZooKeeperServer(tmp_path / "zookeeper").start()
    yield server
    server.stop()
