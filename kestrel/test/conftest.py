"""Fixtures shared by the unit tests."""

import pytest
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from kestrel.test.support import START, CapturedLogs, QueueHarness


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
