"""Shared test fixtures: a journal writer that runs on the test's thread, and queues built on it."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent

from kestrel.collection import QueueCollection
from kestrel.config import QueueConfig, ServerConfig
from kestrel.journal import files, records
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
        queue = PersistentQueue(name, QueueConfig(**options), self.journal(name), self.clock)
        queue.replay()
        self.settle()
        return queue

    def journal(self, name: str) -> Journal:
        return Journal(self.directory, name, self.writer, self.clock)

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
        return [f for f in files.settle_queue_files(self.directory, name) if os.path.exists(os.path.join(self.directory, f))]


# Journal dumps in Kestrel's test notation (doc/compatibility.md §4.4)


def _render(record: records.Record) -> str:
    op = record.op
    if op in (records.ADD, records.ADDX, records.ADD_XID):
        data = record.data
        if data and data[0] > 0:
            return f"add({len(data)}:{record.xid}:{data.decode('latin-1')})"
        return f"add({len(data)}:{record.xid})"
    if op == records.CONTINUE:
        return f"continue({record.xid}:{len(record.data)}:{record.data.decode('latin-1')})"
    if op == records.REMOVE:
        return "remove"
    if op == records.REMOVE_TENTATIVE:
        return "remove-tentative"
    return {
        records.REMOVE_TENTATIVE_XID: "remove-tentative({})",
        records.SAVE_XID: "xid({})",
        records.UNREMOVE: "unremove({})",
        records.CONFIRM_REMOVE: "confirm-remove({})",
    }[op].format(record.xid)


def dump(journal: bytes) -> str:
    """Render journal bytes as `add(5:0:alpha), remove, remove-tentative(2), ...` (doc/compatibility.md §4.4)."""
    rendered = []
    position = 0
    while position < len(journal):
        record, position = records.decode(journal, position)
        rendered.append(_render(record))
    return ", ".join(rendered)


def journal_file_names(directory: str, name: str) -> list[str]:
    """The queue's rotated files by timestamp, then its current file if present; changes nothing on disk."""
    rotated = sorted(
        (timestamp, filename)
        for filename in os.listdir(directory)
        if (timestamp := files.rotated_timestamp(name, filename)) is not None
    )
    names = [filename for _, filename in rotated]
    if os.path.exists(os.path.join(directory, name)):
        names.append(name)
    return names


def dump_files(directory: str, name: str) -> str:
    """The dump of every journal file of queue `name`, in replay order, as one history."""
    parts = []
    for filename in journal_file_names(directory, name):
        with open(os.path.join(directory, filename), "rb") as journal:
            text = dump(journal.read())
        if text:
            parts.append(text)
    return ", ".join(parts)


# Reading queues


def stat(queue: PersistentQueue, key: str) -> int:
    return dict(queue.stats())[key]


def drain(queue: PersistentQueue, transaction: bool = False) -> list[bytes]:
    """Remove every item the queue hands out now; returns their data in order."""
    taken = []
    while (item := queue.remove(transaction)) is not None:
        taken.append(item.data)
    return taken


def numbered(index: int, size: int = 128) -> bytes:
    """A `size`-byte item whose leading digits say which one it is: b'007.....'."""
    return f"{index:03d}".encode().ljust(size, b".")


def number_of(data: bytes) -> int:
    return int(data[:3])


def fired(deferred: Deferred) -> list:
    """The results a Deferred has delivered so far (empty while it has not fired)."""
    results: list = []
    deferred.addBoth(results.append)
    return results


def pending_calls(clock: Clock) -> list:
    return [call for call in clock.getDelayedCalls() if call.active()]


# Collections


def collection_on(harness: QueueHarness, **server_options) -> QueueCollection:
    """A loaded QueueCollection over the harness's directory, writer and clock."""
    server_options.setdefault("queue_path", harness.directory)
    collection = QueueCollection(ServerConfig(**server_options), harness.writer, harness.clock)
    collection.load()
    harness.settle()
    return collection


def restart_collection(harness: QueueHarness, collection: QueueCollection, **server_options) -> QueueCollection:
    collection.close()
    harness.settle()
    return collection_on(harness, **server_options)


# Writers that run nothing until told to


class RecordingRunner:
    """A writer runner that records each batch it is given and runs it only when asked."""

    def __init__(self):
        self.calls: list[tuple[object, tuple, Deferred]] = []

    def __call__(self, function, *args) -> Deferred:
        result = Deferred()
        self.calls.append((function, args, result))
        return result

    def batches(self) -> list:
        """The batches handed over so far: lists of (source, operations)."""
        return [args[0] for _, args, _ in self.calls]

    def run_next(self) -> None:
        function, args, result = self.calls.pop(0)
        result.callback(function(*args))

    def run_all(self) -> None:
        while self.calls:
            self.run_next()


class ThreadLikeRunner:
    """
    A writer runner that behaves like an idle writer thread: it runs each batch at once,
    but the reactor only hears of the result later, when `deliver` is called.
    """

    def __init__(self):
        self.pending: list[tuple[Deferred, object]] = []

    def __call__(self, function, *args) -> Deferred:
        value = function(*args)
        result = Deferred()
        self.pending.append((result, value))
        return result

    def deliver(self) -> None:
        while self.pending:
            result, value = self.pending.pop(0)
            result.callback(value)


def operation_names(operations) -> list[str]:
    return [function.__name__ for function, _, _ in operations]


# Log capture


class CapturedLogs:
    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def messages(self) -> list[str]:
        return [formatEvent(event) for event in self.events]


# Servers (a real collection and ServerContext on the harness's clock and writer)


class ServerHarness:
    """
    A loaded QueueCollection and a ServerContext over a QueueHarness's directory, clock
    and writer (or the writer given). The shutdown hook only counts its calls.
    """

    def __init__(self, harness: QueueHarness, config: ServerConfig | None = None, writer: JournalWriter | None = None, **server_options):
        from kestrel.server import ServerContext

        if config is None:
            server_options.setdefault("queue_path", harness.directory)
            config = ServerConfig(**server_options)
        self.harness = harness
        self.clock = harness.clock
        self.writer = writer or harness.writer
        self.collection = QueueCollection(config, self.writer, self.clock)
        self.collection.load()
        self.shutdowns = 0
        self.server = ServerContext(config, self.collection, self.clock, shutdown=self._shut_down)
        self.stats = self.server.stats

    def _shut_down(self) -> None:
        self.shutdowns += 1

    def settle(self) -> None:
        self.writer.flush()

    def queue_stat(self, name: str, key: str) -> int:
        return dict(self.collection.queue(name, create=False).stats())[key]

    def add(self, name: str, *items: bytes) -> None:
        for data in items:
            assert self.collection.add(name, data)

    def contents(self, name: str) -> list[bytes]:
        """Drain a queue with plain reads; returns what it held, head first."""
        return drain(self.collection.queue(name))


# Clients that do not read their replies


class UnreadTransport(StringTransport):
    """
    A socket whose client reads nothing until `drain`. Like Twisted's TCP transport it pauses
    its streaming producer on each write that leaves more than `bufferSize` bytes unsent, and
    resumes it once everything has gone out.
    """

    bufferSize = 64

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.producer_paused = False
        self.writes = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        self._written()

    def writeSequence(self, data) -> None:
        super().writeSequence(data)
        self._written()

    def _written(self) -> None:
        self.writes += 1
        if self.producer is not None and self.streaming and len(self.value()) > self.bufferSize:
            self.producer_paused = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """The client reads everything sent so far; a paused producer resumes."""
        data = self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data

    @property
    def reading(self) -> bool:
        """Whether the server reads from this connection (the transport as its producer)."""
        return self.producerState == "producing"


class UnreadClient:
    """A protocol on an UnreadTransport: bytes in; what the server sent, read when asked."""

    def __init__(self, protocol, **transport_options):
        self.transport = UnreadTransport(**transport_options)
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def unread(self) -> bytes:
        return self.transport.value()

    def read_all(self) -> bytes:
        """Read until the server sends nothing more; returns everything it sent."""
        received = b""
        while data := self.transport.drain():
            received += data
        return received
