"""Fixtures shared by the unit tests."""

import pytest
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from kestrel.config import QueueConfig
from kestrel.journal.writer import JournalWriter
from kestrel.test.support import (
    START,
    CapturedLogs,
    QueueHarness,
    RecordingRunner,
    ServerHarness,
)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(START)
    return clock


@pytest.fixture
def harness(tmp_path) -> QueueHarness:
    return QueueHarness(str(tmp_path))


@pytest.fixture
def captured_logs():
    observer = CapturedLogs()
    globalLogPublisher.addObserver(observer)
    yield observer
    globalLogPublisher.removeObserver(observer)


@pytest.fixture
def held_writes(harness):
    """A server whose queues fsync every write, on a writer whose batches run when the test says."""
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    kestrel = ServerHarness(harness, writer=writer, default_queue=QueueConfig(sync_journal=0.0))
    return kestrel, runner
