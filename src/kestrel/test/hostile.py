"""
What the hostile-input tests of every listener share: one hypothesis example on a fresh
server that must log no failure and end quickly, and a byte stream cut into the pieces
that a network might deliver.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

from hypothesis import strategies as st
from twisted.logger import globalLogPublisher

from kestrel.status import Status
from kestrel.test.support import CapturedLogs, QueueHarness, ServerHarness

# A server that loops on what a client declared (a count, a length) takes seconds, not
# the milliseconds an example takes.
EXAMPLE_TIME_LIMIT = 1.0

# Where a stream is cut: any offsets, taken modulo its length.
cuts = st.lists(st.integers(0, 2000), max_size=6)


def pieces(stream: bytes, offsets: list[int]) -> list[bytes]:
    """`stream` cut at `offsets` (modulo its length + 1) into the reads a server gets."""
    points = sorted({0, len(stream), *(offset % (len(stream) + 1) for offset in offsets)})
    return [stream[start:end] for start, end in pairwise(points)]


def send_in_pieces(connection, stream: bytes, offsets: list[int]) -> bytes:
    """Hand `stream` to a connection in the pieces cut at `offsets`; returns all it wrote back."""
    return b"".join(connection.send(piece) for piece in pieces(stream, offsets))


def failures(logs: CapturedLogs) -> list[str]:
    """The tracebacks of the failures logged: each is a request the server did not expect."""
    return [event["log_failure"].getTraceback() for event in logs.events if "log_failure" in event]


@contextmanager
def hostile_example(**server_options) -> Iterator[ServerHarness]:
    """
    A fresh server (with a status file) on its own directory for one example. On leaving,
    no failure may have been logged and the example must have ended within the limit.
    """
    logs = CapturedLogs()
    globalLogPublisher.addObserver(logs)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as directory:
            yield ServerHarness(QueueHarness(directory), status_file=f"{directory}/status", **server_options)
    finally:
        globalLogPublisher.removeObserver(logs)
    elapsed = time.perf_counter() - started
    assert not failures(logs), failures(logs)
    assert elapsed < EXAMPLE_TIME_LIMIT, f"the example took {elapsed:.2f}s"


def restore_status(kestrel: ServerHarness) -> None:
    """Undo a status change the hostile stream was entitled to make, before the bystanders go on."""
    kestrel.server.status.change(Status.UP)
