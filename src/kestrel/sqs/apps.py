"""
Applications and their grants (doc/configuration.md, ``[apps]``): who signed a request, and
which queues it may read, write or administer.

Each grant is a list of ``fnmatch`` patterns on queue names, matched case-sensitively like
the names themselves. With no application configured the API runs open: any well-formed
SigV4 request is accepted, whatever its key and signature, and may do anything; the config
allows that only on a loopback listener (``open_mode_allowed``).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from kestrel.sqs.errors import sqs_error
from kestrel.sqs.sigv4 import SignedRequest, identify, verify


class Grant(enum.Enum):
    """What an action does to a queue; each names the App field that lists its patterns."""

    READ = "read"  # ReceiveMessage, DeleteMessage, ChangeMessageVisibility
    WRITE = "write"  # SendMessage(Batch)
    ADMIN = "admin"  # create, delete, purge, attributes, tags


@dataclass(frozen=True)
class App:
    """One application: its key, its secret (never shown by repr) and its grants as queue-name patterns."""

    name: str
    access_key: str
    secret: bytes = field(repr=False)
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    def grants(self, kind: Grant, queue_name: str) -> bool:
        """Whether one of this app's ``kind`` patterns matches ``queue_name``."""
        patterns: tuple[str, ...] = getattr(self, kind.value)
        return any(fnmatchcase(queue_name, pattern) for pattern in patterns)


_EVERY_QUEUE = ("*",)


def open_app(access_key: str) -> App:
    """Whoever signs a request to an API without applications: every grant on every queue."""
    return App("open", access_key, b"", read=_EVERY_QUEUE, write=_EVERY_QUEUE, admin=_EVERY_QUEUE)


class Applications:
    """The configured applications by access key (ServerConfig.apps); none means the open mode."""

    def __init__(self, apps: Mapping[str, App]):
        self._by_key = {app.access_key: app for app in apps.values()}

    @property
    def open(self) -> bool:
        return not self._by_key

    def secret_for(self, access_key: str) -> bytes | None:
        app = self._by_key.get(access_key)
        return None if app is None else app.secret

    def app_for(self, access_key: str) -> App | None:
        return self._by_key.get(access_key)

    def authenticate(self, request: SignedRequest, now: float) -> App:
        """The app that signed ``request`` (sigv4.verify), or in the open mode an open_app; raises SqsError."""
        if self.open:
            return open_app(identify(request, now))
        return self._by_key[verify(request, self.secret_for, now)]


def check(app: App, kind: Grant, queue_name: str, resource: str) -> None:
    """
    Raise SQS's AccessDenied unless ``app`` has the ``kind`` grant on ``queue_name``.
    ``resource`` is the URL the message names: SQS says "Access to the resource
    https://sqs.us-east-1.amazonaws.com/ is denied." (its developer guide, "Troubleshoot an
    access denied error"); the queue's URL tells more.
    """
    if not app.grants(kind, queue_name):
        raise sqs_error("AccessDenied", f"Access to the resource {resource} is denied.")


def visible(app: App, queue_name: str) -> bool:
    """Whether ListQueues shows ``queue_name`` to ``app``: any grant on it will do."""
    return any(app.grants(kind, queue_name) for kind in Grant)


def open_mode_allowed(endpoint: str) -> bool:
    """
    Whether the SQS listener may run without applications on the strports ``endpoint``: only
    where no other machine can connect, a TCP or TLS interface on loopback (127.0.0.0/8,
    ::1, localhost) or a UNIX socket. ``tcp:PORT`` with no interface listens on every
    interface; a systemd socket or another endpoint type cannot be told, so they are refused.
    """
    if not endpoint or endpoint.startswith("systemd:"):
        return False
    from twisted.internet.endpoints import (  # slow to import: only when needed
        SSL4ServerEndpoint,
        TCP4ServerEndpoint,
        TCP6ServerEndpoint,
        UNIXServerEndpoint,
        serverFromString,
    )

    # Parsing builds the endpoint object only, so it needs no reactor: nothing binds yet.
    parsed = serverFromString(None, endpoint)
    if isinstance(parsed, UNIXServerEndpoint):
        return True
    if not isinstance(parsed, (TCP4ServerEndpoint, TCP6ServerEndpoint, SSL4ServerEndpoint)):
        return False
    return _is_loopback(parsed._interface)


def _is_loopback(interface: str) -> bool:
    if interface.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(interface)
    except ValueError:  # "" (every interface) or a host name
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
