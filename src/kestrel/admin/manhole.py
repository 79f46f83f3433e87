"""
The SSH manhole (twisted.conch): a Python shell inside the running server, for operators.

It is off unless the config names both its endpoint and an authorized-keys file. Login is
by public key only, against the keys in that file, which is read at each login (adding a
key needs no restart). `ssh -p PORT HOST` opens the shell; `ssh -p PORT HOST 'EXPR'` runs
one line and prints what the shell would.

The server's SSH host key is the file `manhole_host_key` next to the authorized-keys file,
an ed25519 key generated at the first start if it is missing.
"""

from __future__ import annotations

import io
import os
import traceback
from contextlib import redirect_stdout

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import (
    IAuthorizedKeysDB,
    SSHPublicKeyChecker,
    readAuthorizedKeyFile,
)
from twisted.conch.insults import insults
from twisted.conch.ssh.transport import SSHServerTransport
from twisted.conch.ssh import keys
from twisted.cred.portal import Portal
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from kestrel.protocols.sending import no_delay

HOST_KEY_NAME = "manhole_host_key"

HELP = """\
txkestrel manhole: Python running inside the server, on its reactor thread.
  collection   the QueueCollection: len(collection), collection.names(),
               collection.queue("jobs").stats(), collection.flush("jobs")
  service      the KestrelService: service.server.status, service.server.global_stats(),
               service.listeners, service.writer
  config       the ServerConfig the server started with (collection.config after a reload)
Everything runs on the reactor thread: a slow statement stalls every client.
"""

log = Logger()


class Help:
    """Shows the help text when the shell prints it (typing `help`)."""

    def __repr__(self) -> str:
        return HELP


def host_key_path(authorized_keys: str) -> str:
    return os.path.join(os.path.dirname(authorized_keys), HOST_KEY_NAME)


def load_host_key(path: str) -> keys.Key:
    """The manhole's SSH host key; generated (ed25519, mode 0600) if the file is missing."""
    if not os.path.exists(path):
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(pem)
        log.info("generated the manhole host key {path}", path=path)
    return keys.Key.fromFile(path)


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """The public keys allowed to log in (as any user name): one authorized_keys file."""

    def __init__(self, path: str):
        self.path = path

    def getAuthorizedKeys(self, username: bytes) -> list[keys.Key]:
        try:
            with open(self.path, "rb") as lines:
                return list(readAuthorizedKeyFile(lines))
        except OSError as error:
            log.warn("manhole login refused: cannot read {path}: {error}", path=self.path, error=error.strerror)
            return []


def run_line(namespace: dict, source: str) -> tuple[str, bool]:
    """Run one line as the shell would: an expression's value is printed. (output, succeeded)"""
    output = io.StringIO()
    try:
        with redirect_stdout(output):
            try:
                expression = compile(source, "<manhole>", "eval")
            except SyntaxError:
                exec(compile(source, "<manhole>", "exec"), namespace)
            else:
                value = eval(expression, namespace)
                if value is not None:
                    print(repr(value))
    except (Exception, SystemExit):
        output.write(traceback.format_exc())
        return output.getvalue(), False
    return output.getvalue(), True


class ManholeTransport(SSHServerTransport):
    """SSH without Nagle's delay on keystrokes and echoes, as on every listener."""

    def connectionMade(self) -> None:
        no_delay(self.transport)
        super().connectionMade()


class ManholeSession(manhole_ssh.TerminalSession):
    """A terminal session that also runs one line given as an SSH command."""

    def __init__(self, original, namespace: dict, clock: IReactorTime):
        super().__init__(original)
        self.namespace = namespace
        self.clock = clock

    def execCommand(self, process, command: bytes) -> None:
        output, succeeded = run_line(self.namespace, command.decode("utf-8", "replace"))
        # Answer after the exec request's own reply has gone out.
        self.clock.callLater(0, self._answer, process, output, succeeded)

    @staticmethod
    def _answer(process, output: str, succeeded: bool) -> None:
        process.outReceived(output.replace("\n", "\r\n").encode())
        process.processEnded(Failure(ProcessDone(0) if succeeded else ProcessTerminated(exitCode=1)))

    def windowChanged(self, size) -> None:
        # The shell keeps the size it started with; conch's default raises.
        pass

    def eofReceived(self) -> None:
        # `ssh HOST 'EXPR'` closes its input at once; conch's default raises.
        pass


class ManholeRealm(manhole_ssh.TerminalRealm):
    def __init__(self, namespace: dict, clock: IReactorTime):
        super().__init__()
        self.chainedProtocolFactory = lambda: insults.ServerProtocol(manhole.ColoredManhole, namespace)
        self.sessionFactory = lambda original: ManholeSession(original, namespace, clock)


def manhole_namespace(service) -> dict:
    return {"collection": service.collection, "service": service, "config": service.config, "help": Help()}


def manhole_factory(namespace: dict, authorized_keys: str, clock: IReactorTime) -> manhole_ssh.ConchFactory:
    """An SSH server factory whose logins get a shell on `namespace`."""
    if not os.path.exists(authorized_keys):
        log.warn("manhole: {path} does not exist; every login is refused until it does", path=authorized_keys)
    checker = SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys))
    factory = manhole_ssh.ConchFactory(Portal(ManholeRealm(namespace, clock), [checker]))
    key = load_host_key(host_key_path(authorized_keys))
    # Instance attributes: ConchFactory's class attributes are dicts shared by every factory.
    factory.publicKeys = {key.sshType(): key.public()}
    factory.privateKeys = {key.sshType(): key}
    factory.noisy = False
    factory.protocol = ManholeTransport
    return factory
