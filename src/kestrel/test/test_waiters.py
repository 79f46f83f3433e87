"""DeadlineWaitQueue (doc/compatibility.md §5): blocked readers in FIFO order, each with an optional deadline."""

import pytest

from kestrel.test.support import pending_calls
from kestrel.waiters import DeadlineWaitQueue


class Calls:
    """Records which waiter was woken or timed out, in order."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def wake(self, name: str):
        return lambda: self.log.append(("wake", name))

    def timeout(self, name: str):
        return lambda: self.log.append(("timeout", name))


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def waiters(clock) -> DeadlineWaitQueue:
    return DeadlineWaitQueue(clock)


def add(waiters, calls, name, deadline=None):
    return waiters.add(deadline, calls.wake(name), calls.timeout(name))


def test_timeout_fires_only_after_the_deadline(clock, waiters, calls):
    add(waiters, calls, "a", clock.seconds() + 10)
    clock.advance(5)
    assert calls.log == []
    assert len(waiters) == 1
    clock.advance(5.001)
    assert calls.log == [("timeout", "a")]
    assert len(waiters) == 0
    assert pending_calls(clock) == []


def test_waiter_without_a_deadline_never_times_out(clock, waiters, calls):
    add(waiters, calls, "a")
    assert pending_calls(clock) == []
    clock.advance(10 * 365 * 86400)
    assert calls.log == []
    assert len(waiters) == 1


def test_trigger_wakes_exactly_one_waiter_in_arrival_order(clock, waiters, calls):
    for name in "abc":
        add(waiters, calls, name, clock.seconds() + 10)
    waiters.trigger()
    assert calls.log == [("wake", "a")]
    assert len(waiters) == 2
    waiters.trigger()
    assert calls.log == [("wake", "a"), ("wake", "b")]


def test_trigger_cancels_the_timer_of_the_woken_waiter(clock, waiters, calls):
    add(waiters, calls, "a", clock.seconds() + 10)
    waiters.trigger()
    assert pending_calls(clock) == []
    clock.advance(20)
    assert calls.log == [("wake", "a")]


def test_trigger_with_no_waiters_does_nothing(waiters, calls):
    waiters.trigger()
    waiters.trigger_all()
    assert calls.log == []


def test_trigger_all_wakes_every_waiter_in_order(clock, waiters, calls):
    for name in "abc":
        add(waiters, calls, name, clock.seconds() + 10)
    waiters.trigger_all()
    assert calls.log == [("wake", "a"), ("wake", "b"), ("wake", "c")]
    assert len(waiters) == 0
    assert pending_calls(clock) == []


def test_removing_a_waiter_calls_neither_callback_and_cancels_its_timer(clock, waiters, calls):
    waiter = add(waiters, calls, "a", clock.seconds() + 10)
    add(waiters, calls, "b")
    waiters.remove(waiter)
    assert len(waiters) == 1
    assert pending_calls(clock) == []
    clock.advance(20)
    waiters.trigger()
    assert calls.log == [("wake", "b")]


def test_removing_a_waiter_twice_is_harmless(waiters, calls):
    waiter = add(waiters, calls, "a")
    waiters.remove(waiter)
    waiters.remove(waiter)
    assert len(waiters) == 0
    assert calls.log == []


def test_evict_all_times_every_waiter_out_and_cancels_the_timers(clock, waiters, calls):
    add(waiters, calls, "a", clock.seconds() + 10)
    add(waiters, calls, "b")
    add(waiters, calls, "c", clock.seconds() + 20)
    waiters.evict_all()
    assert calls.log == [("timeout", "a"), ("timeout", "b"), ("timeout", "c")]
    assert len(waiters) == 0
    assert pending_calls(clock) == []


def test_requeued_waiter_goes_to_the_back_and_keeps_its_deadline(clock, waiters, calls):
    first = add(waiters, calls, "a", clock.seconds() + 10)
    add(waiters, calls, "b", clock.seconds() + 30)
    waiters.trigger()
    clock.advance(4)
    waiters.requeue(first)
    waiters.trigger()
    assert calls.log == [("wake", "a"), ("wake", "b")]
    clock.advance(5.999)
    assert calls.log[-1] == ("wake", "b")
    clock.advance(0.001)
    assert calls.log[-1] == ("timeout", "a")
