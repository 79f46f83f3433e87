"""
The Kestrel client library: one protocol core free of I/O (protocol.py, calls.py, fleet.py)
and three front ends over it with the same method names: `Client` (blocking, thread-safe),
`AsyncClient` (asyncio), and `kestrel.client.twisted.Client` (Deferreds). doc/fleet.md tells
how calls spread over a fleet of servers.
"""

from kestrel.client.aio import AsyncClient
from kestrel.client.blocking import Client
from kestrel.client.calls import ServerStats
from kestrel.client.fleet import Membership
from kestrel.client.protocol import (
    ClientError,
    ConfirmFailed,
    KestrelError,
    NoServerAvailable,
    NotStored,
    ReplyError,
    RequestError,
    ServerError,
    UnexpectedReply,
    WriteOutcomeUnknown,
    ZooKeeperUnreachable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "ConfirmFailed",
    "KestrelError",
    "Membership",
    "NoServerAvailable",
    "NotStored",
    "ReplyError",
    "RequestError",
    "ServerError",
    "ServerStats",
    "UnexpectedReply",
    "WriteOutcomeUnknown",
    "ZooKeeperUnreachable",
]
