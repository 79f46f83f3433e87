"""A FIFO of blocked readers, each with an optional deadline on an injected clock."""

from __future__ import annotations

from typing import Callable

from kestrel.clock import Clock, Timer


class Waiter:
    __slots__ = ("deadline", "on_wake", "on_timeout", "timer")

    def __init__(self, deadline: float | None, on_wake: Callable[[], None], on_timeout: Callable[[], None]):
        self.deadline = deadline
        self.on_wake = on_wake
        self.on_timeout = on_timeout
        self.timer: Timer | None = None


class DeadlineWaitQueue:
    """
    Blocked readers in arrival order.

    `trigger` wakes the oldest waiter, `trigger_all` wakes every one, and a waiter whose
    deadline passes is removed and told so. Removing a waiter explicitly calls neither.
    """

    __slots__ = ("_clock", "_waiters")

    def __init__(self, clock: Clock):
        self._clock = clock
        # A dict keeps insertion order and removes in O(1), which a deque cannot. Made at the
        # first waiter: most queues never have one, and a million queues is a use case (issue 15).
        self._waiters: dict[Waiter, None] | None = None

    def __len__(self) -> int:
        return 0 if self._waiters is None else len(self._waiters)

    def add(self, deadline: float | None, on_wake: Callable[[], None], on_timeout: Callable[[], None]) -> Waiter:
        waiter = Waiter(deadline, on_wake, on_timeout)
        self.requeue(waiter)
        return waiter

    def requeue(self, waiter: Waiter) -> None:
        """Put a woken waiter that lost the race at the back, keeping its deadline."""
        if self._waiters is None:
            self._waiters = {}
        self._waiters[waiter] = None
        if waiter.deadline is not None and waiter.timer is None:
            delay = max(0.0, waiter.deadline - self._clock.seconds())
            waiter.timer = self._clock.callLater(delay, self._expire, waiter)

    def remove(self, waiter: Waiter) -> None:
        if self._waiters is not None and self._waiters.pop(waiter, False) is None:
            self._cancel_timer(waiter)

    def trigger(self) -> None:
        waiters = self._waiters
        if waiters:
            waiter = next(iter(waiters))
            del waiters[waiter]
            self._cancel_timer(waiter)
            waiter.on_wake()

    def trigger_all(self) -> None:
        for _ in range(len(self)):
            self.trigger()

    def evict_all(self) -> None:
        """Time every waiter out now: used when the queue closes or the server shuts down."""
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            self._cancel_timer(waiter)
            waiter.on_timeout()

    def evict_undated(self) -> None:
        """Time out now every waiter that has no deadline; the others keep waiting."""
        waiters = self._waiters
        if waiters is None:
            return
        for waiter in [waiter for waiter in waiters if waiter.deadline is None]:
            del waiters[waiter]
            waiter.on_timeout()

    def _expire(self, waiter: Waiter) -> None:
        waiter.timer = None
        if self._waiters is not None and self._waiters.pop(waiter, False) is None:
            waiter.on_timeout()

    @staticmethod
    def _cancel_timer(waiter: Waiter) -> None:
        if waiter.timer is not None:
            if waiter.timer.active():
                waiter.timer.cancel()
            waiter.timer = None
