"""kestrel.polling: the epoll reactor's poll with the same logging context, made cheap."""

import os

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import context, log
from twisted.python.log import ILogContext

from kestrel import polling

epollreactor = pytest.importorskip("twisted.internet.epollreactor")


class Reader:
    """A selectable on a pipe that notes the logging context each read runs in."""

    def __init__(self, fd: int, prefix: str = "Reader,7,127.0.0.1", fail: bool = False):
        self.fd = fd
        self.prefix = prefix
        self.fail = fail
        self.systems: list[str] = []
        self.stack_depths: list[int] = []

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        if self.fail:
            raise RuntimeError("no prefix")
        return self.prefix

    def doRead(self):
        os.read(self.fd, 100)
        self.systems.append(context.get(ILogContext)["system"])
        self.stack_depths.append(len(context.theContextTracker.currentContext().contexts))
        return None

    def connectionLost(self, reason) -> None:
        pass


@pytest.fixture
def reactor():
    made = epollreactor.EPollReactor()
    yield made
    made._poller.close()
    made.waker.connectionLost(None)


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def test_installs_on_twisted_epoll_reactor_only_once(reactor):
    assert not polling.install(MemoryReactorClock())
    assert polling.install(reactor)
    assert isinstance(reactor.doIteration, polling.Poller)
    assert not polling.install(reactor)


def test_each_read_runs_in_its_selectables_log_context_as_with_twisted_poll(reactor, pipe):
    read_end, write_end = pipe
    depth = len(context.theContextTracker.currentContext().contexts)
    polled = Reader(read_end)
    reactor.addReader(polled)
    os.write(write_end, b"x")
    reactor.doPoll(0)  # Twisted's own, for the reference
    polling.install(reactor)
    os.write(write_end, b"x")
    reactor.doIteration(0)
    reactor.doIteration(0)  # nothing to read: no call
    assert polled.systems == ["Reader,7,127.0.0.1"] * 2
    assert polled.stack_depths == [depth + 1] * 2
    assert len(context.theContextTracker.currentContext().contexts) == depth
    reactor.removeReader(polled)


def test_a_buggy_log_prefix_is_logged_and_the_read_still_runs(reactor, pipe):
    read_end, write_end = pipe
    polled = Reader(read_end, fail=True)
    reactor.addReader(polled)
    polling.install(reactor)
    errors = []
    log.addObserver(errors.append)
    try:
        os.write(write_end, b"x")
        reactor.doIteration(0)
    finally:
        log.removeObserver(errors.append)
    assert polled.systems == ["(buggy logPrefix method)"]
    assert [event["system"] for event in errors if event.get("isError")] == ["(buggy logPrefix method)"]
    reactor.removeReader(polled)


def test_an_interrupted_poll_returns_quietly(reactor):
    import errno

    class Interrupted:
        def poll(self, timeout, most):
            raise InterruptedError(errno.EINTR, "interrupted")

    polling.install(reactor)
    real, reactor._poller = reactor._poller, Interrupted()
    try:
        reactor.doIteration(None)
    finally:
        reactor._poller = real
