"""kestrel.polling: the epoll reactor's main loop and poll, doing what Twisted's do, made cheap."""

import os
import socket

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
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
        self.log_contexts: list[dict] = []
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
        self.log_contexts.append(dict(context.get(ILogContext)))
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


def test_a_read_sees_the_log_context_around_the_poll_with_its_system(reactor, pipe):
    read_end, write_end = pipe
    polled = Reader(read_end)
    reactor.addReader(polled)
    os.write(write_end, b"x")
    log.callWithContext({"request": "outer"}, reactor.doPoll, 0)  # Twisted's own, for the reference
    polling.install(reactor)
    reactor.doIteration(0)  # the first poll finds the reactor thread's context stack
    os.write(write_end, b"x")
    log.callWithContext({"request": "outer"}, reactor.doIteration, 0)
    assert polled.log_contexts[0]["request"] == "outer"
    assert polled.log_contexts == [polled.log_contexts[0]] * 2
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


# The main loop: a turn with nothing due skips runUntilCurrent, and waits as Twisted would.


class Turns:
    """
    A reactor's doIteration that moves a fake clock instead of polling: each turn it records
    the timeout it was given, runs the script's next step, then moves time on by a step.
    The last step stops the loop.
    """

    def __init__(self, reactor, steps):
        self.reactor = reactor
        self.now = 1000.0
        self.timeouts = []
        self.steps = list(steps)
        reactor.seconds = lambda: self.now

    def __call__(self, timeout):
        self.timeouts.append(None if timeout is None else round(timeout, 6))
        advance, action = self.steps.pop(0)
        action()
        self.now += advance
        if not self.steps:
            self.reactor._started = False


def run_script(reactor, loop_class, script):
    """Run a reactor's main loop over `script(reactor, ran)`'s steps; what ran and the timeouts."""
    ran = []
    turns = Turns(reactor, script(reactor, ran))
    reactor.doIteration = turns
    reactor._started = True
    reactor.running = True
    if loop_class is None:
        reactor.mainLoop()  # Twisted's own
    else:
        loop_class(reactor)()
    return ran, turns.timeouts


def timed_calls(reactor, ran):
    """Timed calls made, cancelled, due and not, and a call from another thread; each notes when it ran."""
    nothing = lambda: None
    note = lambda label: ran.append((label, reactor.seconds()))
    cancelled = []
    return [
        (1.0, lambda: reactor.callLater(5, note, "five")),
        (1.0, lambda: cancelled.append(reactor.callLater(10, note, "cancelled"))),
        (1.0, lambda: cancelled.pop().cancel()),
        (3.5, nothing),
        (1.0, nothing),
        (1.0, lambda: reactor.threadCallQueue.append((note, ("from thread",), {}))),
        (10.0, nothing),
        (0.0, lambda: reactor.callLater(0, note, "now")),
        (0.0, nothing),
        (0.0, nothing),
    ]


def many_cancellations(reactor, ran):
    """More than 50 cancelled calls: runUntilCurrent must clean its heap, as with Twisted's loop."""
    calls = []
    return [
        (0.0, lambda: calls.extend(reactor.callLater(100 + n, ran.append, n) for n in range(60))),
        (0.0, lambda: [call.cancel() for call in calls[1:]]),
        (0.0, lambda: ran.append(len(reactor._pendingTimedCalls))),
        (0.0, lambda: ran.append(len(reactor._pendingTimedCalls))),
        (200.0, lambda: None),
        (0.0, lambda: None),
    ]


@pytest.mark.parametrize("script", [timed_calls, many_cancellations])
def test_the_loop_runs_what_twisteds_loop_runs_and_waits_as_long(script):
    reference = epollreactor.EPollReactor()
    ours = epollreactor.EPollReactor()
    try:
        expected = run_script(reference, None, script)
        assert run_script(ours, polling.Loop, script) == expected
    finally:
        for made in (reference, ours):
            made._poller.close()
            made.waker.connectionLost(None)
    assert expected[0]  # the script did run calls


def test_the_loop_skips_run_until_current_when_nothing_is_due(reactor):
    runs = []
    real = reactor.runUntilCurrent
    reactor.runUntilCurrent = lambda: (runs.append(True), real())
    steps = [(0.0, lambda: reactor.callLater(5, lambda: None))] + [(1.0, lambda: None)] * 3
    run_script(reactor, polling.Loop, lambda reactor, ran: steps)
    # The first turn (nothing yet) and the second (a new timed call to insert) are Twisted's.
    assert len(runs) == 1


def test_an_error_in_a_turn_is_logged_and_the_loop_goes_on(reactor):
    def fail():
        raise ZeroDivisionError("in a turn")

    errors = []
    log.addObserver(errors.append)
    try:
        ran, _ = run_script(reactor, polling.Loop, lambda reactor, ran: [(0.0, fail), (0.0, lambda: ran.append("after"))])
    finally:
        log.removeObserver(errors.append)
    assert ran == ["after"]
    assert [event["log_format"] for event in errors if event.get("isError")] == ["Unexpected error in main loop"]


# Reads of accepted TCP connections, done in line.


class Recording(Protocol):
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.received: list[tuple[bytes, str]] = []
        self.lost = []

    def dataReceived(self, data):
        self.received.append((data, context.get(ILogContext)["system"]))
        if self.fail:
            raise ZeroDivisionError("protocol failed")

    def connectionLost(self, reason):
        self.lost.append(reason)


def accepted_connection(reactor, protocol):
    """A client socket connected to a port of `reactor`, and the server side's transport."""
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: protocol), interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    for _ in range(100):
        if protocol.transport is not None:
            break
        reactor.doIteration(0.1)
    assert isinstance(protocol.transport, tcp.Server)
    return port, client


def poll_until(reactor, done):
    for _ in range(100):
        if done():
            return
        reactor.doIteration(0.1)
    raise AssertionError("the event did not come")


@pytest.mark.parametrize("ours", [False, True])
def test_data_then_close_reach_the_protocol_as_with_twisteds_poll(reactor, ours):
    if ours:
        polling.install(reactor)
    protocol = Recording()
    port, client = accepted_connection(reactor, protocol)
    try:
        client.sendall(b"get jobs\r\n")
        poll_until(reactor, lambda: protocol.received)
        assert protocol.received == [(b"get jobs\r\n", protocol.transport.logstr)]
        client.close()
        poll_until(reactor, lambda: protocol.lost)
        assert protocol.lost[0].check(ConnectionDone)
    finally:
        client.close()
        port.stopListening()


@pytest.mark.parametrize("ours", [False, True])
def test_a_protocol_error_is_logged_and_closes_the_connection(reactor, ours):
    if ours:
        polling.install(reactor)
    protocol = Recording(fail=True)
    port, client = accepted_connection(reactor, protocol)
    errors = []
    log.addObserver(errors.append)
    try:
        client.sendall(b"x")
        poll_until(reactor, lambda: protocol.lost)
    finally:
        log.removeObserver(errors.append)
        client.close()
        port.stopListening()
    assert protocol.lost[0].check(ZeroDivisionError)
    assert [event["system"] for event in errors if event.get("isError")] == [protocol.transport.logstr]
