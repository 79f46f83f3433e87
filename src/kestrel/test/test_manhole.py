"""The SSH manhole's parts: keys, the login check, one-line commands, the namespace."""

import dataclasses
import os
import stat
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys
from twisted.cred.credentials import ISSHPrivateKey, SSHPrivateKey
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock

from kestrel.admin.manhole import (
    HELP,
    AuthorizedKeysFile,
    ManholeSession,
    host_key_path,
    load_host_key,
    manhole_factory,
    manhole_namespace,
    run_line,
)
from kestrel.config import ServerConfig
from kestrel.tap import KestrelService


def new_key() -> keys.Key:
    return keys.Key(ed25519.Ed25519PrivateKey.generate())


def authorized_keys_file(directory, *authorized: keys.Key) -> str:
    path = os.path.join(directory, "manhole_keys")
    with open(path, "wb") as out:
        out.write(b"# operators\n\n")
        out.writelines(key.public().toString("openssh") + b" someone@somewhere\n" for key in authorized)
    return path


def credentials(key: keys.Key, data: bytes = b"session data") -> SSHPrivateKey:
    return SSHPrivateKey(b"admin", key.sshType(), key.public().blob(), data, key.sign(data))


def login(checker, key: keys.Key) -> list:
    results = []
    checker.requestAvatarId(credentials(key)).addBoth(results.append)
    return results


@pytest.fixture
def operator_key() -> keys.Key:
    return new_key()


@pytest.fixture
def factory(tmp_path, operator_key):
    return manhole_factory({"answer": 42}, authorized_keys_file(str(tmp_path), operator_key), Clock())


def test_the_authorized_keys_file_is_read_at_each_login(tmp_path, operator_key):
    database = AuthorizedKeysFile(str(tmp_path / "manhole_keys"))
    assert database.getAuthorizedKeys(b"admin") == []
    authorized_keys_file(str(tmp_path), operator_key)
    assert database.getAuthorizedKeys(b"anyone") == [operator_key.public()]


def test_an_authorized_key_logs_in_and_another_is_refused(factory, operator_key):
    checker = factory.portal.checkers[ISSHPrivateKey]
    assert login(checker, operator_key) == [b"admin"]
    [refused] = login(checker, new_key())
    assert refused.check(UnauthorizedLogin)


def test_the_host_key_is_generated_once_and_private(tmp_path):
    path = str(tmp_path / "manhole_host_key")
    key = load_host_key(path)
    assert key.isPublic() is False and key.sshType() == b"ssh-ed25519"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_host_key(path) == key


def test_the_host_key_lives_next_to_the_authorized_keys(factory, tmp_path):
    key = keys.Key.fromFile(host_key_path(str(tmp_path / "manhole_keys")))
    assert factory.privateKeys == {b"ssh-ed25519": key}
    assert factory.publicKeys == {b"ssh-ed25519": key.public()}


def test_run_line_prints_an_expression_and_runs_a_statement():
    namespace = {"answer": 42}
    assert run_line(namespace, "answer + 1") == ("43\n", True)
    assert run_line(namespace, "result = answer * 2") == ("", True)
    assert namespace["result"] == 84
    assert run_line(namespace, "print('hi'); None") == ("hi\n", True)


def test_run_line_reports_an_error_with_its_traceback():
    output, succeeded = run_line({}, "1 / 0")
    assert not succeeded
    assert output.startswith("Traceback") and output.rstrip().endswith("ZeroDivisionError: division by zero")


class FakeProcess:
    def __init__(self):
        self.output = b""
        self.ended = None

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason) -> None:
        self.ended = reason


@pytest.mark.parametrize("command, output, ending", [
    (b"len(items)", b"3\r\n", ProcessDone),
    (b"items[7]", b"IndexError", ProcessTerminated),
])
def test_an_ssh_command_runs_one_line_after_the_exec_reply(command, output, ending):
    clock = Clock()
    session = ManholeSession(SimpleNamespace(), {"items": [1, 2, 3]}, clock)
    process = FakeProcess()
    session.execCommand(process, command)
    assert process.ended is None
    clock.advance(0)
    assert output in process.output
    assert process.ended.check(ending)


def test_the_namespace_holds_what_operators_need():
    service = SimpleNamespace(collection=object(), config=object())
    namespace = manhole_namespace(service)
    assert namespace["collection"] is service.collection
    assert namespace["service"] is service
    assert namespace["config"] is service.config
    assert repr(namespace["help"]) == HELP


# In the service tree


def manhole_config(tmp_path, authorized_keys: str, listen: str = "tcp:0:interface=127.0.0.1") -> ServerConfig:
    return ServerConfig(
        queue_path=str(tmp_path / "spool"), memcache_listen="", text_listen="", thrift_listen="", admin_listen="",
        manhole_listen=listen, manhole_authorized_keys=authorized_keys,
    )


def listener_names(service: KestrelService) -> list[str]:
    return [listener.protocol for listener in service.listeners]


def test_the_service_listens_for_the_manhole_when_configured(tmp_path, operator_key):
    config = manhole_config(tmp_path, authorized_keys_file(str(tmp_path), operator_key))
    assert listener_names(KestrelService(config, reactor=Clock())) == ["manhole"]
    assert listener_names(KestrelService(dataclasses.replace(config, manhole_listen=""), reactor=Clock())) == []


def test_a_host_key_that_cannot_be_made_leaves_the_manhole_off(tmp_path, captured_logs):
    service = KestrelService(manhole_config(tmp_path, str(tmp_path / "missing" / "manhole_keys")), reactor=Clock())
    assert listener_names(service) == []
    assert any("ssh-keygen -t ed25519" in message for message in captured_logs.messages())
