"""Listeners that cannot bind: the start stops, naming the config key and the address."""

import errno
import os
import signal
import socket

import pytest
import pytest_twisted
from twisted.internet import task, tcp
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock

from kestrel.config import ServerConfig
from kestrel.listener import ListenerService, ListenFailed
from kestrel.tap import KestrelService, StartFailed
from kestrel.test.test_manhole import authorized_keys_file, new_key

TAKEN = OSError(errno.EADDRINUSE, "Address already in use")


class TakenPortReactor(MemoryReactorClock):
    """Binds every address but one, as a real reactor does when another process holds it."""

    def __init__(self, taken: int | str):
        super().__init__()
        self.taken = taken

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port == self.taken:
            raise CannotListenError(interface, port, TAKEN)
        return super().listenTCP(port, factory, backlog, interface)

    def listenUNIX(self, address, factory, backlog=50, mode=0o666, wantPID=0):
        if address == self.taken:
            raise CannotListenError(None, address, TAKEN)
        return super().listenUNIX(address, factory, backlog, mode, wantPID)


@pytest.mark.parametrize(
    ("description", "taken", "address"),
    [
        ("tcp:22133:interface=127.0.0.1", 22133, "127.0.0.1:22133"),
        ("tcp:22133", 22133, "0.0.0.0:22133"),
        (r"tcp6:22133:interface=\:\:1", 22133, "[::1]:22133"),
        ("unix:/run/kestrel.sock", "/run/kestrel.sock", "/run/kestrel.sock"),
    ],
)
def test_a_listener_that_cannot_bind_raises_with_the_address(description, taken, address):
    listener = ListenerService("memcache", description, Factory.forProtocol(Protocol), TakenPortReactor(taken))
    with pytest.raises(ListenFailed) as caught:
        listener.privilegedStartService()
    assert str(caught.value) == f"cannot listen on {address}: Address already in use"
    assert caught.value.listener is listener
    assert listener.address is None


def test_a_systemd_socket_that_systemd_did_not_pass_stops_the_start(monkeypatch):
    monkeypatch.delenv("LISTEN_PID", raising=False)
    listener = ListenerService("memcache", "systemd:domain=INET:index=0", Factory.forProtocol(Protocol), MemoryReactorClock())
    with pytest.raises(ListenFailed) as caught:
        listener.privilegedStartService()
    assert str(caught.value) == (
        "cannot listen on systemd:domain=INET:index=0: systemd passed no such socket (start it from its .socket unit)"
    )


def test_a_listener_that_binds_logs_its_address(captured_logs):
    listener = ListenerService("text", "tcp:2222", Factory.forProtocol(Protocol), TakenPortReactor(22133))
    listener.privilegedStartService()
    listener.startService()  # does not listen a second time
    assert listener.address == "0.0.0.0:2222"
    assert "listening for text on 0.0.0.0:2222" in captured_logs.messages()
    listener.stopService()
    assert listener.address is None


def every_listener(tmp_path) -> ServerConfig:
    keys = tmp_path / "manhole_keys"
    keys.write_text("")
    return ServerConfig(
        queue_path=str(tmp_path / "spool"), config_path="/etc/kestrel.conf",
        memcache_listen="tcp:1001", text_listen="tcp:1002", thrift_listen="tcp:1003", admin_listen="tcp:1004",
        manhole_listen="tcp:1005", manhole_authorized_keys=str(keys), sqs_listen="tcp:1006",
    )


@pytest.mark.parametrize(
    ("port", "key", "host"),
    [
        (1001, "[server] memcache_listen", "0.0.0.0"),
        (1003, "[server] thrift_listen", "0.0.0.0"),
        (1004, "[server] admin_listen", "127.0.0.1"),
        (1005, "[manhole] listen", "127.0.0.1"),
        (1006, "[server] sqs_listen", "0.0.0.0"),
    ],
)
def test_a_port_that_is_taken_stops_the_start_with_one_line(tmp_path, capfd, port, key, host):
    service = KestrelService(every_listener(tmp_path), reactor=TakenPortReactor(port))
    with pytest.raises(StartFailed) as caught:
        service.privilegedStartService()
    line = f"/etc/kestrel.conf: {key}: cannot listen on {host}:{port}: Address already in use"
    assert str(caught.value) == line
    # twistd removes its pid file for an Exception; a SystemExit of 1 ends the process quietly.
    assert isinstance(caught.value, Exception) and caught.value.code == 1
    assert capfd.readouterr().err == line + "\n"
    assert [listener.address for listener in service.listeners] == [None] * 6
    assert not service.running
    assert not os.path.exists(tmp_path / "spool")


# Accepted connections send at once


@pytest_twisted.inlineCallbacks
def test_accepted_connections_of_every_listener_turn_nagle_off(tmp_path, captured_logs):
    """
    Issue 11: replies written while an earlier one is unacknowledged waited 40 ms for the
    client's delayed ACK. Every listener of a real service, on the real reactor, accepts a
    connection whose socket has TCP_NODELAY set.
    """
    from twisted.internet import reactor

    listen = "tcp:0:interface=127.0.0.1"
    config = ServerConfig(
        queue_path=str(tmp_path / "spool"), memcache_listen=listen, text_listen=listen, thrift_listen=listen,
        admin_listen=listen, manhole_listen=listen, sqs_listen=listen,
        manhole_authorized_keys=authorized_keys_file(str(tmp_path), new_key()),
    )
    service = KestrelService(config, reactor)
    hangup = signal.getsignal(signal.SIGHUP)
    service.privilegedStartService()
    service.startService()
    clients = []
    try:
        ports = {listener.protocol: int(listener.address.rsplit(":", 1)[1]) for listener in service.listeners}
        assert sorted(ports) == ["admin", "manhole", "memcache", "sqs", "text", "thrift"]
        client_factory = Factory.forProtocol(Protocol)
        client_factory.noisy = False  # so that every "Starting factory" line would be the server's
        for port in ports.values():
            clients.append((yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(client_factory)))
        accepted = {}
        for _ in range(100):  # reactor turns, until the listeners have accepted every connection
            accepted = {
                protocol: reader for protocol, port in ports.items()
                for reader in reactor.getReaders() if isinstance(reader, tcp.Server) and reader.getHost().port == port
            }
            if len(accepted) == len(ports):
                break
            yield task.deferLater(reactor, 0, lambda: None)
        no_delay = {
            protocol: bool(server.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            for protocol, server in accepted.items()
        }
        assert no_delay == dict.fromkeys(ports, True)
        # Issue 12: a listener's start is its own "listening for" line, not Twisted's factory noise.
        assert not [message for message in captured_logs.messages() if "Starting factory" in message]
    finally:
        for client in clients:
            client.transport.abortConnection()
        yield service.stopService()
        signal.signal(signal.SIGHUP, hangup)
