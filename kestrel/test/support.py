"""Shared test fixtures: a journal writer that runs on the test's thread, and queues built on it."""

from __future__ import annotations

import os

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from kestrel.config import QueueConfig
from kestrel.journal import files
from kestrel.journal.journal import Journal
from kestrel.journal.writer import JournalWriter
from kestrel.queue import PersistentQueue

START = 1_700_000_000.0


def synchronous_writer(clock: Clock) -> JournalWriter:
    """A writer whose batches run at once on this thread, still batched per clock turn."""
    writer = JournalWriter(clock, runner=maybeDeferred)
    writer.startService()
    return writer


class QueueHarness:
    """Builds queues on one directory, one clock and one synchronous writer; restarts them."""

    def __init__(self, directory: str):
        self.directory = str(directory)
        self.clock = Clock()
        self.clock.advance(START)
        self.writer = synchronous_writer(self.clock)

    def queue(self, name: str = "test", **options) -> PersistentQueue:
        queue = PersistentQueue(name, QueueConfig(**options), self.directory, self.writer, self.clock)
        queue.replay()
        self.settle()
        return queue

    def restart(self, queue: PersistentQueue, **options) -> PersistentQueue:
        queue.close()
        self.settle()
        return self.queue(queue.name, **options)

    def settle(self) -> None:
        """End the reactor turn: hand queued journal writes to the writer."""
        self.writer.flush()

    def journal_bytes(self, name: str = "test") -> bytes:
        self.settle()
        with open(os.path.join(self.directory, name), "rb") as journal:
            return journal.read()

    def journal_files(self, name: str = "test") -> list[str]:
        self.settle()
        return [f for f in files.journal_files(self.directory, name) if os.path.exists(os.path.join(self.directory, f))]
