"""A listening port described by a strports endpoint string, as a service."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure


class ListenFailed(Exception):
    """A listener could not bind; the message is "cannot listen on ADDRESS: REASON"."""

    def __init__(self, listener: ListenerService, address: str, reason: str):
        super().__init__(f"cannot listen on {address}: {reason}")
        self.listener = listener


def _address_and_reason(description: str, error: BaseException) -> tuple[str, str]:
    if not isinstance(error, CannotListenError):
        return description, str(error)
    if error.interface is None:  # a UNIX socket: the port is its path
        address = str(error.port)
    else:
        host = error.interface or "0.0.0.0"
        address = f"[{host}]:{error.port}" if ":" in host else f"{host}:{error.port}"
    socket_error = error.socketError
    return address, getattr(socket_error, "strerror", None) or str(socket_error)


class ListenerService(Service):
    """
    Listens on start, stops listening on stop. It logs the address it is bound to, which
    is how tests (and operators) learn the port behind a `tcp:0` description.

    A listen that fails at once (a port taken, an address not there, no permission) raises
    ListenFailed from privilegedStartService, which twistd calls before it starts anything, so
    that the start stops. One that fails later (endpoints that bind asynchronously) is logged.
    """

    log = Logger()

    def __init__(self, protocol: str, description: str, factory: Factory, reactor=None):
        self.name = f"{protocol}-listener"
        self.protocol = protocol
        self.description = description
        self.factory = factory
        self._reactor = reactor
        self._listening: Deferred | None = None
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        from twisted.internet import reactor as default_reactor

        super().privilegedStartService()
        try:
            endpoint = endpoints.serverFromString(self._reactor or default_reactor, self.description)
        except IndexError:  # a "systemd:" socket index that systemd did not pass
            raise ListenFailed(self, self.description, "systemd passed no such socket (start it from its .socket unit)") from None
        listening = self._listening = endpoint.listen(self.factory)
        listening.addCallback(self._listened)
        if not listening.called:
            listening.addErrback(self._failed_later)
            return
        failed: list[Failure] = []
        listening.addErrback(failed.append)
        if failed:
            self._listening = None
            raise ListenFailed(self, *_address_and_reason(self.description, failed[0].value))

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        self.log.info(
            "listening for {protocol} on {host}:{port}", protocol=self.protocol, host=address.host, port=address.port
        )

    def _failed_later(self, failure: Failure) -> None:
        if failure.check(CancelledError):  # stopped before it was listening
            return
        address, reason = _address_and_reason(self.description, failure.value)
        self.log.error(
            "{protocol} listener ({description}): cannot listen on {address}: {reason}",
            protocol=self.protocol, description=self.description, address=address, reason=reason,
        )

    def startService(self) -> None:
        super().startService()
        if self._listening is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred | None:
        super().stopService()
        listening, self._listening = self._listening, None
        port, self.port = self.port, None
        if port is not None:
            return maybeDeferred(port.stopListening)
        if listening is not None:
            listening.cancel()
        return None

    @property
    def address(self) -> str | None:
        if self.port is None:
            return None
        host = self.port.getHost()
        return f"{host.host}:{host.port}"
