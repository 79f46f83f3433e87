"""
A real server whose listener cannot start does not start: one line on stderr naming the config
key and the address, a non-zero exit, no traceback, and no "started".
"""

import socket
import subprocess

import pytest

from kestrel.load.process import START_TIMEOUT, TWISTD, write_config

MANHOLE = '[manhole]\nlisten = "{description}"\nauthorized_keys = "manhole_keys"\n'


def start(tmp_path, server: str = "", queues: str = "") -> subprocess.CompletedProcess:
    """Run `twistd -n kestrel` until it exits (or START_TIMEOUT, which fails the test)."""
    (tmp_path / "manhole_keys").write_text("")
    config = write_config(tmp_path, server, queues)
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=twistd.pid", "kestrel", "-c", str(config)],
        cwd=tmp_path, capture_output=True, text=True, timeout=START_TIMEOUT,
    )


def assert_stopped_with_one_line(result: subprocess.CompletedProcess, *named: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output
    assert " started:" not in output
    assert [line for line in output.splitlines() if all(text in line for text in named)] == result.stderr.splitlines()
    assert len(result.stderr.splitlines()) == 1, output
    return result.stderr


@pytest.fixture
def taken_port():
    """A port on loopback that another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("key", "server", "queues"),
    [
        ("[server] memcache_listen", 'memcache_listen = "{description}"', ""),
        ("[server] admin_listen", 'admin_listen = "{description}"', ""),
        ("[server] sqs_listen", 'sqs_listen = "{description}"', ""),
        ("[manhole] listen", "", MANHOLE),
    ],
)
def test_a_port_that_is_taken_stops_the_start(tmp_path, taken_port, key, server, queues):
    description = f"tcp:{taken_port}:interface=127.0.0.1"
    result = start(tmp_path, server.format(description=description), queues.format(description=description))
    line = assert_stopped_with_one_line(result, key, f"127.0.0.1:{taken_port}")
    config = tmp_path / "kestrel.conf"
    assert line == f"{config}: {key}: cannot listen on 127.0.0.1:{taken_port}: Address already in use\n"
    assert not (tmp_path / "twistd.pid").exists()


@pytest.mark.parametrize(
    ("key", "server", "queues"),
    [
        ("[server] memcache_listen", 'memcache_listen = "tcp:abc"', ""),
        ("[manhole] listen", "", MANHOLE.format(description="nosuch:1")),
    ],
)
def test_a_bad_endpoint_stops_the_start(tmp_path, key, server, queues):
    result = start(tmp_path, server, queues)
    assert_stopped_with_one_line(result, key, "expected an endpoint")


def test_an_sqs_api_without_apps_on_every_interface_does_not_start(tmp_path, taken_port):
    # Refused before binding anything: the port being taken is never found out.
    result = start(tmp_path, f'sqs_listen = "tcp:{taken_port}"')
    line = assert_stopped_with_one_line(result, "[server] sqs_listen", "accepts any signature")
    assert "add applications or listen on loopback" in line


def test_a_server_set_member_on_loopback_without_advertise_host_does_not_start(tmp_path):
    # Refused before ZooKeeper is asked anything: no ZooKeeper needs to run.
    result = start(tmp_path, queues='[zookeeper]\nhosts = "127.0.0.1:2181"\npath_prefix = "/kestrel"\n')
    line = assert_stopped_with_one_line(result, "[zookeeper] advertise_host")
    assert line.startswith(f"{tmp_path / 'kestrel.conf'}: [zookeeper] advertise_host: the memcache listener is on 127.0.0.1, ")
    assert line.endswith("name the address to announce in advertise_host, or listen on an interface\n")
