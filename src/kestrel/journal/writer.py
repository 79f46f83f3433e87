"""
The journal writer: every journal file operation of the server runs on one thread, in order.

Journals, and the queues' runtime settings (`kestrel.settings`), queue their operations here.
When a reply or a read waits for them, the writer hands everything queued to its thread as
one batch at the end of the reactor turn;
otherwise within `write_delay` (5 ms) or once 64 KB wait, so that a stream of small
requests does not wake the thread every turn. While a batch is on the thread, new operations collect for the next one.
So a burst of requests costs one write and at most one fsync per journal file (group
commit), and the reactor never waits on the disk.

A source whose operation fails gets the operations that did not run back, to retry them
(`RetryingSource`).
Periodic fsyncs run on a second thread, so that writes never queue behind them; the writer
counts them, so that replies wait when they fall behind (see `behind`).

The writer's thread holds at most `max_open_journals` journal files open (`disk.OpenJournals`),
and, given `idle_journal_seconds`, closes those not written for that long (`IdleJournalSweep`).
"""

from __future__ import annotations

import resource
from collections import deque
from time import perf_counter
from typing import Any, Callable, ClassVar, Iterable, Protocol

from mypy_extensions import mypyc_attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from kestrel.clock import Clock, Timer
from kestrel.journal.disk import HeldFile, OpenJournals

Operation = tuple[Callable[..., Any], tuple, "Deferred | None"]

# How far the journals may run ahead of the writer thread before replies wait for it: the
# most a killed process can lose of what it acknowledged (sync_journal other than 0), and a
# bound on the memory that pending writes take.
MAX_UNWRITTEN_BYTES = 8 * 1024**2
# How long queued operations that nothing waits for may stay before they go to the thread.
# A hand-over wakes the thread, which then contends with the reactor for the GIL: once per
# turn, that took a quarter of the reactor's time under 10 clients (issue 11,
# doc/benchmarks.md). A killed process may lose this much more of what it acknowledged
# with sync_journal other than 0 (doc/reliability.md).
WRITE_DELAY = 0.005
# ... unless this much is waiting: a batch this big pays for its hand-over, and holding more
# only grows the buffer that the thread then copies to the file.
WRITE_SOON_BYTES = 64 * 1024
# How long a source whose operation failed waits before it hands its operations over again.
WRITE_RETRY_INTERVAL = 1.0
# A journal file not written for this long (up to twice as long) is closed (issue 15). A
# queue written less often pays one open() and fstat() per write, a few microseconds beside
# the write itself; an idle queue then holds no descriptor, which a server of many queues
# would otherwise spend on every queue ever written, up to RLIMIT_NOFILE.
IDLE_JOURNAL_SECONDS = 10.0
# Journal files open at once, unless the config says (`max_open_journals`): enough that a
# server of up to that many busy queues never reopens a file.
MAX_OPEN_JOURNALS = 1000


def default_max_open_journals() -> int:
    """
    MAX_OPEN_JOURNALS, or half the process's soft RLIMIT_NOFILE when that is less: the other
    half is for connections, listeners and the rest (a soft limit of 1,024 is common).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_JOURNALS
    return max(1, min(MAX_OPEN_JOURNALS, soft // 2))


class BatchSource(Protocol):
    """What a journal gives the writer: its queued operations, taken once per batch."""

    def take_operations(self) -> list[Operation]: ...

    def written(self) -> None:
        """Every operation taken for the batch ran."""

    def write_failed(self, failure: Failure, unrun: list[Operation]) -> None:
        """An operation failed; it and those after it (`unrun`) did not run and are handed back."""


# Subclassed by Journal (compiled) and RuntimeSettings (interpreted).
@mypyc_attr(allow_interpreted_subclasses=True)
class RetryingSource:
    """
    A BatchSource that queues its operations for the writer in order. When one fails, it
    keeps that one and those after it in front of newer ones and hands them over again
    after WRITE_RETRY_INTERVAL; until they have run, `failure` says why, and newer
    operations wait for the retry. `_buffer` is the bytes its next write takes, if one
    is queued: data queued in one reactor turn goes to the file in one write.
    """

    log: ClassVar[Logger] = Logger()

    def __init__(self, writer: JournalWriter, clock: Clock):
        self._writer = writer
        self._clock = clock
        # Made at the first operation of a batch and handed over whole: a journal between
        # batches holds no list (issue 15).
        self._operations: list[Operation] | None = None
        self._buffer: bytearray | None = None
        self._retry_call: Timer | None = None
        self.failure: Failure | None = None

    def describe(self) -> str:
        """What the log calls it."""
        raise NotImplementedError

    def take_operations(self) -> list[Operation]:
        operations, self._operations, self._buffer = self._operations, None, None
        return [] if operations is None else operations

    def written(self) -> None:
        if self.failure is not None:
            self.failure = None
            self.log.info("{source} is writable again", source=self.describe())

    def write_failed(self, failure: Failure, unrun: list[Operation]) -> None:
        if self.failure is None:
            self.log.failure("writing {source} failed; retrying", failure, source=self.describe())
        self.failure = failure
        self._operations = unrun + (self._operations or [])
        if self._retry_call is None:
            self._retry_call = self._clock.callLater(WRITE_RETRY_INTERVAL, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        self._writer.mark_dirty(self)

    def _schedule(self, function: Callable[..., Any], *args: Any, result: Deferred | None = None) -> None:
        operations = self._operations
        if operations is None:
            operations = self._operations = []
        operations.append((function, args, result))
        self._buffer = None
        if self.failure is None:
            # A failing source waits for its retry instead.
            self._writer.mark_dirty(self)


def all_durable(waits: Iterable[Deferred | None]) -> Deferred | None:
    """
    One wait for the `durable` waits given (None: nothing to wait for), which fails as the
    first of them that fails; None when there is none.
    """
    pending = [wait for wait in waits if wait is not None]
    if not pending:
        return None
    return pending[0] if len(pending) == 1 else gatherResults(pending, consumeErrors=True)


# Subclassed by Journal (compiled) and kestrel.history's History (interpreted).
@mypyc_attr(allow_interpreted_subclasses=True)
class SyncedSource(RetryingSource):
    """
    A RetryingSource that writes a file of a queue (`disk.HeldFile`: its journal, or its
    history) and fsyncs it as the queue's `sync_journal` says (set anew whenever the queue's
    config changes). 0: in every batch that takes its operations, after them, so that
    `JournalWriter.when_done` covers the fsync. A period: at most that long after a write (the
    subclass calls `_appended` for each record it queues), on the fsync thread when there is
    one. None: never.
    """

    def __init__(self, writer: JournalWriter, clock: Clock, synced: HeldFile, sync_journal: float | None = None):
        super().__init__(writer, clock)
        self.sync_journal = sync_journal
        self._synced = synced
        self._sync_call: Timer | None = None

    def take_operations(self) -> list[Operation]:
        operations = super().take_operations()
        if self.sync_journal == 0:
            operations.append((self._synced.fsync, (), None))
        return operations

    @property
    def _owes_sync(self) -> bool:
        """Whether what is written now is owed an fsync, which closing its file must not skip."""
        return self.sync_journal is not None

    def _appended(self, size: int) -> None:
        """`size` bytes were queued for the file: the writer counts them, and a period's fsync follows."""
        self._writer.add_unwritten(size)
        if self.sync_journal and self._sync_call is None:
            self._sync_call = self._clock.callLater(self.sync_journal, self._periodic_sync)

    def _periodic_sync(self) -> None:
        self._sync_call = None
        self._schedule(self._synced.fsync_aside, self._writer.background_sync)

    def _cancel_sync(self) -> None:
        if self._sync_call is not None:
            if self._sync_call.active():
                self._sync_call.cancel()
            self._sync_call = None


class IdleJournalSweep:
    """
    A BatchSource of one operation: every `period` seconds while journal files are open,
    the writer thread closes those not written in the period before (`OpenJournals.close_idle`).
    Its timer runs only after writes, so an idle server has none.
    """

    log: ClassVar[Logger] = Logger()

    def __init__(self, writer: JournalWriter, open_journals: OpenJournals, clock: Any, period: float):
        self._writer = writer
        self._open_journals = open_journals
        self._clock = clock
        self._period = period
        self._call: Any = None
        self._sweeping = False

    def files_written(self) -> None:
        """A batch of writes went to the thread: sweep a period from now, unless a sweep is due already."""
        if self._call is None and not self._sweeping:
            self._call = self._clock.callLater(self._period, self._due)

    def stop(self) -> None:
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _due(self) -> None:
        self._call = None
        self._sweeping = True
        self._writer.mark_dirty(self)

    def take_operations(self) -> list[Operation]:
        swept: Deferred[int] = Deferred()
        swept.addCallback(self._swept)
        return [(self._open_journals.close_idle, (), swept)]

    def _swept(self, still_open: int) -> None:
        self._sweeping = False
        if still_open:
            self.files_written()

    def written(self) -> None:
        """Nothing to do: what the sweep left open comes back through its Deferred (`_swept`)."""

    def write_failed(self, failure: Failure, unrun: list[Operation]) -> None:
        self.log.failure("closing idle journal files failed; trying again in {period} s", failure, period=self._period)
        self._sweeping = False
        self.files_written()


Completed = list[tuple["Deferred | None", Any]]
Failed = list[tuple[BatchSource, Failure, list[Operation]]]


class Runner(Protocol):
    def __call__(self, function: Callable[..., Any], *args: Any) -> Deferred: ...


def run_batch(work: list[tuple[BatchSource, list[Operation]]]) -> tuple[Completed, Failed]:
    """
    Run on the writer thread. A failing operation stops the rest of its own journal's
    operations (a later write must not land after a hole) but not other journals'.
    """
    completed: Completed = []
    failed: Failed = []
    for source, operations in work:
        for index, (function, args, result) in enumerate(operations):
            try:
                completed.append((result, function(*args)))
            except Exception:
                failed.append((source, Failure(), operations[index:]))
                break
    return completed, failed


class Batch:
    """The operations sent to the thread together, and who waits for them."""

    __slots__ = ("work", "waiters", "handed_at", "bytes")

    def __init__(self) -> None:
        self.work: list[tuple[BatchSource, list[Operation]]] = []
        self.waiters: list[tuple[BatchSource | None, Deferred]] = []
        self.handed_at = 0.0  # the writer's timer when the batch went to the thread
        self.bytes = 0  # journal bytes it writes

    def lost(self, failure: Failure) -> tuple[Completed, Failed]:
        """The outcome of a batch that never ran: nothing completed, every journal failed."""
        return [], [(source, failure, operations) for source, operations in self.work]


# The model test (kestrel.test.model) subclasses it to hold hand-overs back.
@mypyc_attr(allow_interpreted_subclasses=True)
class JournalWriter(Service):
    """A service that owns the journal thread. It drains every queued write before it stops."""

    log: ClassVar[Logger] = Logger()

    def __init__(
        self, clock: IReactorTime, runner: Runner | None = None,
        sync_runner: Callable[..., None] | None = None, call_from_thread: Callable[..., None] | None = None,
        max_unwritten_bytes: int = MAX_UNWRITTEN_BYTES, timer: Callable[[], float] = perf_counter,
        write_delay: float = WRITE_DELAY, max_open_journals: int = MAX_OPEN_JOURNALS,
        idle_journal_seconds: float | None = None,
    ):
        """
        `runner` runs a batch on the writer thread and `sync_runner` a periodic fsync on the
        fsync thread; `call_from_thread` brings a call back to the reactor. Without a runner,
        the service starts both threads itself; without a sync runner, periodic fsyncs run in
        line on the writer thread. Beyond `max_unwritten_bytes` waiting for the thread, the
        writer is `behind`; so it is when a batch or a periodic fsync has taken longer than a
        queue's sync period by `timer` (seconds, monotonic). Operations nothing waits for go
        to the thread within `write_delay` seconds. At most `max_open_journals` journal files
        are open at once (`open_journals`, the thread's table of them); with
        `idle_journal_seconds`, those not written for that long are closed.
        """
        # Any: Twisted's interfaces declare their methods without self, which mypy (and so
        # mypyc, which compiles this module) reads as a method whose first argument is missing.
        self._clock: Any = clock
        self._runner: Any = runner
        self._pool: Any = None
        self._sync_pool: Any = None
        self._sync_runner: Any = sync_runner
        self._call_from_thread: Any = call_from_thread
        # When each periodic fsync not yet finished was handed to the fsync thread
        # (by its timer), oldest first: that thread runs them in order.
        self._pending_syncs: deque[float] = deque()
        self._syncs_handed = 0  # counted on the writer thread
        self._syncs_finished = 0  # counted on the reactor
        self._sync_waiters: list[tuple[int, Deferred]] = []
        self._dirty: dict[BatchSource, None] = {}
        self._next = Batch()
        self._in_flight: Batch | None = None
        self._flush_call: Any = None
        # Journal bytes appended and not yet handed to the thread (journals add to it).
        self.unwritten_bytes = 0
        self.max_unwritten_bytes = max_unwritten_bytes
        self._timer = timer
        self.write_delay = write_delay
        # Called with the seconds each batch took from being handed to the thread to its
        # completion (the server's fsync delay metric).
        self.batch_observer: Callable[[float], None] | None = None
        self.open_journals = OpenJournals(max_open_journals)
        self._idle_sweep: IdleJournalSweep | None = None
        if idle_journal_seconds is not None:
            self._idle_sweep = IdleJournalSweep(self, self.open_journals, clock, idle_journal_seconds)

    def startService(self) -> None:
        super().startService()
        if self._runner is None:
            from twisted.internet import reactor
            from twisted.internet.threads import deferToThreadPool
            from twisted.python.threadpool import ThreadPool

            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="kestrel-journal")
            self._pool.start()
            self._runner = lambda function, *args: deferToThreadPool(reactor, self._pool, function, *args)
            self._sync_pool = ThreadPool(minthreads=1, maxthreads=1, name="kestrel-fsync")
            self._sync_pool.start()
            self._sync_runner = self._sync_pool.callInThread
            self._call_from_thread = reactor.callFromThread

    @property
    def background_sync(self) -> Callable[..., None] | None:
        """Runs a periodic fsync on the fsync thread (called on the writer thread), or None: run it in line."""
        return None if self._sync_runner is None else self._sync_aside

    def _sync_aside(self, function: Callable[..., None], *args) -> None:
        self._pending_syncs.append(self._timer())
        self._syncs_handed += 1
        self._sync_runner(self._run_sync, function, args)

    def _run_sync(self, function: Callable[..., None], args: tuple) -> None:
        """On the fsync thread."""
        try:
            function(*args)
        finally:
            self._pending_syncs.popleft()
            self._call_from_thread(self._sync_finished)

    def _sync_finished(self) -> None:
        self._syncs_finished += 1
        waiting, self._sync_waiters = self._sync_waiters, []
        for target, done in waiting:
            if target <= self._syncs_finished:
                done.callback(None)
            else:
                self._sync_waiters.append((target, done))

    def stopService(self) -> Deferred:
        super().stopService()
        if self._idle_sweep is not None:
            self._idle_sweep.stop()
        drained = self.drain()

        def stop_pool(result):
            if self._pool is not None:
                self._pool.stop()
                self._sync_pool.stop()  # waits for the periodic fsyncs still running
                self._pool = self._sync_pool = None
                self._runner = self._sync_runner = None
            return result

        return drained.addBoth(stop_pool)

    def mark_dirty(self, source: BatchSource) -> None:
        """`source` has operations queued: send them within `write_delay`."""
        if source not in self._dirty:
            self._dirty[source] = None
            if self._flush_call is None and self._in_flight is None:
                self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Send what is queued within write_delay, or at the end of this turn once WRITE_SOON_BYTES wait."""
        delay = 0 if self.unwritten_bytes > WRITE_SOON_BYTES else self.write_delay
        self._flush_call = self._clock.callLater(delay, self.flush)

    def add_unwritten(self, size: int) -> None:
        """A journal appended `size` bytes to what it has queued."""
        self.unwritten_bytes += size
        if self.unwritten_bytes > WRITE_SOON_BYTES and self._flush_call is not None:
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Something waits for the next batch: send it at the end of this reactor turn."""
        if self._in_flight is not None:
            return  # the batch on the thread hands the next one over as it finishes
        if self._flush_call is not None:
            if self._flush_call.getTime() <= self._clock.seconds():
                return
            self._flush_call.cancel()
        self._flush_call = self._clock.callLater(0, self.flush)

    def behind(self, period: float | None = None) -> bool:
        """
        Whether replies should wait for the thread: more than `max_unwritten_bytes` are waiting
        for it, or (for a journal fsynced every `period`) its batch or a periodic fsync has
        taken longer than a period, so that what a killed process (or a power cut) loses
        stays within one period.
        """
        in_flight = self._in_flight
        if self.unwritten_bytes + (in_flight.bytes if in_flight is not None else 0) > self.max_unwritten_bytes:
            return True
        if not period:
            return False
        return (in_flight is not None and self._timer() - in_flight.handed_at > period) or self.syncs_late(period)

    def syncs_late(self, period: float) -> bool:
        """Whether a periodic fsync has been pending for longer than `period`."""
        try:
            oldest = self._pending_syncs[0]
        except IndexError:  # the fsync thread has just finished it
            return False
        return self._timer() - oldest > period

    def when_synced(self) -> Deferred:
        """A Deferred that fires once every periodic fsync handed to the fsync thread so far has finished."""
        target = self._syncs_handed
        if self._syncs_finished >= target:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._sync_waiters.append((target, done))
        return done

    def when_done(self, source: BatchSource) -> Deferred:
        """A Deferred that fires once every operation `source` has queued so far has run."""
        done: Deferred[None] = Deferred()
        if source in self._dirty:
            self._next.waiters.append((source, done))
            self._flush_soon()
        elif self._in_flight is not None:
            self._in_flight.waiters.append((source, done))
        else:
            done.callback(None)
        return done

    def drain(self) -> Deferred:
        """Fires once everything queued so far, by any journal, has run."""
        if not self._dirty and self._in_flight is None:
            return succeed(None)
        done: Deferred[None] = Deferred()
        batch = self._next if self._dirty else self._in_flight
        assert batch is not None
        batch.waiters.append((None, done))
        self.flush()
        return done

    def flush(self) -> None:
        """Send the queued operations now, unless a batch is already on the thread."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if self._in_flight is not None or not self._dirty:
            return
        if self._runner is None:
            raise RuntimeError("the journal writer is not running")
        batch, self._next = self._next, Batch()
        batch.bytes, self.unwritten_bytes = self.unwritten_bytes, 0
        batch.work = [(source, source.take_operations()) for source in self._dirty]
        sweep = self._idle_sweep
        if sweep is not None and self.running and (len(self._dirty) > 1 or sweep not in self._dirty):
            sweep.files_written()
        self._dirty = {}
        self._in_flight = batch
        batch.handed_at = self._timer()
        self._runner(run_batch, batch.work).addBoth(self._batch_done)

    def _batch_done(self, outcomes) -> None:
        batch = self._in_flight
        assert batch is not None
        self._in_flight = None
        if self.batch_observer is not None:
            self.batch_observer(self._timer() - batch.handed_at)
        if isinstance(outcomes, Failure):
            self.log.failure("journal batch lost", outcomes)
            outcomes = batch.lost(outcomes)
        completed, failures = outcomes
        for result, value in completed:
            if result is not None:
                if isinstance(value, Failure):
                    result.errback(value)
                else:
                    result.callback(value)
        failed = set()
        for source, failure, unrun in failures:
            failed.add(source)
            source.write_failed(failure, unrun)
        for source, _ in batch.work:
            if source not in failed:
                source.written()
        for source, waiter in batch.waiters:
            if source in failed:
                waiter.errback(Failure(OSError(f"journal write failed for {source}")))
            else:
                waiter.callback(None)
        if self._next.waiters:
            self.flush()
        elif self._dirty and self._flush_call is None:
            self._schedule_flush()
