"""
Server status (Kestrel 2.4): up, write-avoid, read-only, quiescent, and down while shutting
down. The status is kept in a file so that it survives a restart.
"""

from __future__ import annotations

import enum
import os
from typing import Callable

from kestrel.clock import Clock
from twisted.logger import Logger


class Status(enum.Enum):
    # value: (strictness, display name written to the status file)
    UP = (1, "Up")
    WRITEAVOID = (2, "WriteAvoid")
    READONLY = (3, "ReadOnly")
    QUIESCENT = (4, "Quiescent")
    DOWN = (100, "Down")

    @property
    def strictness(self) -> int:
        return self.value[0]

    @property
    def display(self) -> str:
        return self.value[1]

    @property
    def readable(self) -> bool:
        return self.strictness < Status.QUIESCENT.strictness

    @property
    def writable(self) -> bool:
        return self.strictness < Status.READONLY.strictness

    @classmethod
    def parse(cls, name: str) -> "Status":
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise UnknownStatus(name) from None


class StatusError(Exception):
    pass


class UnknownStatus(StatusError):
    def __str__(self) -> str:
        return f"unknown status: {self.args[0]}"


class ForbiddenStatus(StatusError):
    def __str__(self) -> str:
        return f"status {self.args[0]} cannot be set by a client"


class StatusNotConfigured(StatusError):
    def __str__(self) -> str:
        return "server status is not configured"


class ServerStatus:
    """
    The reported status changes at once; a change to a stricter status is enforced only
    after the grace period, so clients have time to move away first. While such a change
    is pending, further tightening is refused; loosening applies at once.
    """

    log = Logger()

    def __init__(self, path: str | None, default: str, grace_period: float, clock: Clock):
        self.path = path
        self._clock = clock
        self._grace_period = grace_period
        self._pending = None
        self._watchers: list[Callable[[Status], None]] = []
        self.current = self._restore(Status.parse(default))
        self._enforce(self.current)

    @property
    def configured(self) -> bool:
        return self.path is not None

    def watch(self, watcher: Callable[[Status], None]) -> None:
        """Call `watcher` with the new status after each change of the reported status."""
        self._watchers.append(watcher)

    def set(self, name: str) -> Status:
        """Change the status by name; returns the status now reported."""
        if not self.configured:
            raise StatusNotConfigured()
        status = Status.parse(name)
        if status is Status.DOWN:
            raise ForbiddenStatus(name)
        return self.change(status)

    def change(self, status: Status) -> Status:
        if self._pending is not None and status.strictness >= self.current.strictness:
            # Only loosening may interrupt a grace period; repeating the change must not end it.
            return self.current
        stricter = status.strictness > self.current.strictness
        self._report(status)
        if stricter and self._grace_period > 0:
            self._pending = self._clock.callLater(self._grace_period, self._enforce_pending)
        else:
            self._cancel_pending()
            self._enforce(status)
        return self.current

    def shut_down(self) -> None:
        """Down is never persisted: the next start restores the status before shutdown."""
        self._cancel_pending()
        self.current = Status.DOWN
        self._enforce(Status.DOWN)

    def _enforce_pending(self) -> None:
        self._pending = None
        self._enforce(self.current)

    def _enforce(self, status: Status) -> None:
        # Plain attributes, because every request reads them.
        self.enforced = status
        self.readable = status.readable
        self.writable = status.writable

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            if self._pending.active():
                self._pending.cancel()
            self._pending = None

    def _report(self, status: Status) -> None:
        # Saved first: a status that cannot be saved (OSError) leaves everything as it was.
        if self.path is not None:
            self._save(status)
        if status is self.current:
            return
        self.log.info("server status changes from {old} to {new}", old=self.current.display, new=status.display)
        self.current = status
        for watcher in self._watchers:
            watcher(status)

    def _save(self, status: Status) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        temp = self.path + ".tmp"
        with open(temp, "w") as out:
            out.write(status.display + "\n")
        os.replace(temp, self.path)

    def _restore(self, default: Status) -> Status:
        if self.path is None:
            return default
        try:
            with open(self.path) as saved:
                status = Status.parse(saved.read())
        except (OSError, UnknownStatus):
            return default
        return default if status is Status.DOWN else status
