"""A listening port described by a strports endpoint string, as a service."""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.logger import Logger


class ListenerService(Service):
    """
    Listens on start, stops listening on stop. It logs the address it is bound to, which
    is how tests (and operators) learn the port behind a `tcp:0` description.
    """

    log = Logger()

    def __init__(self, protocol: str, description: str, factory: Factory, reactor=None):
        self.name = f"{protocol}-listener"
        self.protocol = protocol
        self.description = description
        self.factory = factory
        self._reactor = reactor
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> Deferred:
        from twisted.internet import reactor as default_reactor

        endpoint = endpoints.serverFromString(self._reactor or default_reactor, self.description)
        listening = endpoint.listen(self.factory)
        listening.addCallback(self._listening)
        return listening

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        self.log.info(
            "listening for {protocol} on {host}:{port}", protocol=self.protocol, host=address.host, port=address.port
        )

    def startService(self) -> None:
        super().startService()
        if self.port is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred | None:
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return maybeDeferred(port.stopListening)
        return None

    @property
    def address(self) -> str | None:
        if self.port is None:
            return None
        host = self.port.getHost()
        return f"{host.host}:{host.port}"
