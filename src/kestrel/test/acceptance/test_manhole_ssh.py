"""The SSH manhole of a real server: a login with a generated key, and a refused one."""

import os
import shutil
import subprocess

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.client.knownhosts import KnownHostsFile
from twisted.conch.endpoints import AuthenticationFailed, SSHCommandClientEndpoint
from twisted.conch.ssh import keys
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.python.filepath import FilePath

from kestrel.load.process import wait_until

MANHOLE = '[manhole]\nlisten = "tcp:0:interface=127.0.0.1"\nauthorized_keys = "manhole_keys"\n'


class Output(Protocol):
    """Collects what the command prints until the channel closes."""

    def __init__(self):
        self.data = b""
        self.done = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason=None) -> None:
        self.done.callback(self.data)


def new_key(path) -> keys.Key:
    """An ed25519 key pair, the private half saved at `path` in OpenSSH format (mode 0600)."""
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    path.write_bytes(key.toString("openssh"))
    path.chmod(0o600)
    return key


@pytest.fixture
def operator_key(tmp_path) -> keys.Key:
    key = new_key(tmp_path / "operator_key")
    (tmp_path / "manhole_keys").write_bytes(key.public().toString("openssh") + b" operator\n")
    return key


@pytest.fixture
def manhole(make_server, operator_key):
    kestrel = make_server(queues=MANHOLE)
    client = kestrel.client()
    client.set("jobs", b"one")
    client.set("audit", b"two")
    return kestrel


def ssh_command(kestrel, tmp_path, key: keys.Key, command: bytes) -> SSHCommandClientEndpoint:
    known_hosts = KnownHostsFile(FilePath(str(tmp_path / "known_hosts")))
    known_hosts.addHostKey(b"127.0.0.1", keys.Key.fromFile(str(tmp_path / "manhole_host_key")).public())
    return SSHCommandClientEndpoint.newConnection(
        reactor, command, b"operator", b"127.0.0.1", kestrel.manhole_port, keys=[key], knownHosts=known_hosts
    )


@pytest_twisted.inlineCallbacks
def test_an_authorized_key_runs_a_line_in_the_manhole(manhole, tmp_path, operator_key):
    output = Output()
    yield ssh_command(manhole, tmp_path, operator_key, b"len(collection)").connect(Factory.forProtocol(lambda: output))
    assert (yield output.done) == b"2\r\n"


@pytest_twisted.inlineCallbacks
def test_a_key_that_is_not_authorized_is_refused(manhole, tmp_path):
    stranger = new_key(tmp_path / "stranger_key")
    with pytest.raises(AuthenticationFailed):
        yield ssh_command(manhole, tmp_path, stranger, b"len(collection)").connect(Factory.forProtocol(Output))
    assert wait_until(lambda: "unauthorized login: Key not authorized" in manhole.log())


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_the_interactive_shell_with_openssh(manhole, tmp_path):
    """What an operator does: `ssh -p PORT host`, then type at the prompt."""
    session = subprocess.run(
        [
            "ssh", "-tt", "-p", str(manhole.manhole_port), "-i", str(tmp_path / "operator_key"),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "operator@127.0.0.1",
        ],
        input=b"len(collection) * 1000 + 7\r\x04",
        check=False,
        capture_output=True,
        timeout=20,
        env={**os.environ, "TERM": "dumb"},
    )
    assert b"\r\n2007\r\n" in session.stdout
