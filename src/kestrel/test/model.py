"""
A model-based test of the queue engine (issue 10): a hypothesis state machine drives the
real engine -- QueueCollection, PersistentQueue, Journal, the real JournalWriter handing its
batches to a real thread, real files in a temporary folder -- and compares it after every
step with a plain reference model: a few dicts of deques.

Long form (runs examples with fresh seeds until the time is up, then prints how many
examples and steps ran; exits 1 with the shrunk trace on the first failure):

    .venv/bin/python -m kestrel.test.model --minutes 30

The CI form is src/kestrel/test/test_model.py (a bounded number of examples).

What the machine does
---------------------
Queues: "a" with its fanout child "a+c", "b" (whose keep_journal and max_item_size reloads
flip), "e" (max_age, expire_to_queue "x") and "x" (a small max_items). Payloads carry a
counter, so every comparison is exact. max_memory_size of 0.5-2 KiB and max_journal_size of
2-8 KiB with payloads of 0-400 bytes keep read-behind, rotation, rewrite and packing busy.

Steps: set (one or many), get (one or many, plain or opening a read), peek, confirm, abort, a
connection end (abort all open reads of a queue, oldest first), delete, flush, flush_all,
sweep, clock advances (an advance of 0 is the end of a reactor turn), letting the writer
thread run batches, stalling the writer, reload with new options, a clean restart (close,
drain the writer, start a new collection and writer on the folder) and a crash-like restart
(the batch on the thread and every operation not yet handed to it are dropped, the old
descriptors are closed, a new collection and writer start on what the thread had written),
a crash in the middle of a record's write (a torn tail: the restart must cut it, keep a
`.damaged` copy of the file as it was and log it; the spool folder may be listed only while a
process starts), clients on the wire (memcache sets
pipelined, a text put of many lines) whose replies are read only once the server stops
reading them and whose adds must wait for a writer that is behind, and the fsync thread, which lags behind
the writer thread, running the periodic fsyncs it was given (a second one queued for a
journal while one waits fails).

The writer: batches go to a real thread, but only when the machine releases them. Between
steps the reactor turn ends and the thread catches up, unless `stall_writer(steps=N)` said
otherwise: for the next N steps nothing is handed over or run except by `advance_clock`
(which ends reactor turns) and `writer_runs` (which runs batches). So a step can see files
the thread has not touched yet (a replay on the test thread that reads files whose erase is
still queued sees exactly what a real server would). A batch is handed over where the
engine hands it over (the end of a reactor turn, a read-behind refill, a drain), with one
change: a hand-over asked for in the middle of an engine call, or while the callbacks of a
finished batch run, happens when that call (or those callbacks) return. So a batch boundary
never falls inside one collection call. Batches and the order of the operations in them are
otherwise the engine's own. Periodic fsyncs go to "the fsync thread" (the same real thread)
and run with the batch that handed them over.

What the model expects
----------------------
- add: refused if larger than max_item_size or the queue holds max_items; fanout children
  get the item first (each with its own limits and max_age); a fanout_only master keeps
  nothing and says yes. A max_age folds into the item's expiry at add time.
- get: expired items are swept off the head first; a plain get removes the head, an opening
  get moves it to the open reads; peek leaves it. A get that has to wait for read-behind
  must complete once the writer thread has run what it needs (else "read hangs").
- confirm forgets an open read; abort puts its item back at the head; a connection end
  aborts several, the oldest opened ending at the head.
- flush empties a queue and leaves its open reads open; flush_all does so everywhere;
  delete forgets a queue, its open reads and its files: a queue created again under the
  same name starts empty, whatever the writer has or has not done yet.
- expiry: only the head is looked at (an unexpired head shields expired items behind it).
  A sweep or an add looks at the part of the head that is in memory (the model reads that
  count, `memory_items`, from the engine before the step: how far read-behind has refilled
  is the one thing it does not predict); a get looks as far as it must. An expired item
  goes to expire_to_queue when one is set (created if needed, fanout applies). When that
  queue refuses it (full), the item must not be lost: it stays at the head of its queue
  and the sweep of that queue stops there (a get then delivers it), or, if the engine
  chooses so, the target takes it beyond its limit. Which of the two is probed once per
  process (`refused_expiry_policy`); an engine that does neither fails.
- reload: every option applies to live queues at once, except that a change of
  keep_journal may be refused (the queue keeps its old journal mode until the next restart)
  provided a warning is logged. A keep_journal change the engine accepts must be complete:
  false -> true journals the queue's current contents (so a restart finds them), true ->
  false stops journaling (a restart finds the queue empty).
- clean restart: every queue that keeps a journal comes back with its contents, every read
  that was open rolled back to the head in the order the reads were opened; queues with
  keep_journal = false come back empty. A queue whose expected contents are empty may or may
  not exist after a restart (an empty queue without files is not found on disk); the model
  takes the engine's word for those.
- crash-like restart: the same, from the model as it stood when the last batch that the
  thread finished was handed over (the batch holds every record queued until then); a queue
  that did not keep a journal at that moment comes back empty. Until the first batch of a
  process has run, the files are what that process started from (a queue that keeps no
  journal has its files erased by the writer, not at once).
- clients on the wire: each add a memcache set or a text put line makes is one the model
  checks as it happens, and the replies say what those adds answered (STORED or
  NOT_STORED; `+<count of items taken>`). The writer is behind beyond 2 KiB unwritten, and
  a connection holds no more than 256 bytes of replies (`max_output_buffer`): after an add
  made while the writer is behind (on a journaled queue that does not fsync every write),
  the client's next add waits until the thread has run a batch; the unsent replies never
  exceed the bound plus the transport's buffer and one reply; and every request is answered.

After every step (and again after the writer caught up): the queue names, each queue's item
count, bytes, open xids, journal mode, the items in memory (data, add time, expiry: they must
be a prefix of the model's queue), the fanout children of "a", and the log (no error, no
failure, no DATA MAY HAVE BEEN LOST). After every restart, a copy of the folder taken just
before the replay is replayed by a separate reader and drained: it must hold exactly the
expected items, in order. After a clean shutdown no descriptor on the folder is open.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, NamedTuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from kestrel.collection import QueueCollection
from kestrel.config import QueueConfig, ServerConfig
from kestrel.journal import records
from kestrel.journal.writer import JournalWriter
from kestrel.protocols.memcache import MemcacheProtocol
from kestrel.protocols.text import TextProtocol, item_reply
from kestrel.server import ServerContext
from kestrel.test.support import START, UnreadClient, synchronous_writer

QUEUES = ("a", "a+c", "b", "e", "x")
EXPIRING = ("a", "a+c", "b", "e")  # "x" gets no item that can expire: it never sweeps
BIG = 2**63 - 1
# Small enough that the steps reach them: journal bytes waiting for the writer thread before
# it is behind (and replies wait), and unsent reply bytes before a connection stops reading.
MAX_UNWRITTEN_BYTES = 2048
MAX_OUTPUT_BUFFER = 256
LONGEST_REPLY = 64  # NOT_STORED, +<count>, the version
# A released batch must finish within this many seconds on the thread.
THREAD_TIMEOUT = 60.0


def scratch_root() -> str | None:
    """Where the queue folders go: $KESTREL_MODEL_DIR, else /dev/shm when it exists (fsync is cheap there)."""
    root = os.environ.get("KESTREL_MODEL_DIR")
    if root:
        return root
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# What the runs did, summed over every example of this process.
COUNTS = {
    "examples": 0, "steps": 0, "batches": 0, "restarts": 0, "crashes": 0,
    "waiting gets": 0, "rotations": 0, "rewrites": 0, "packs": 0, "expired": 0, "expired moves": 0, "refused moves": 0,
    "client adds while behind": 0, "unread replies drained": 0,
}
COUNTED_LOGS = (("rotated journal of", "rotations"), ("rewrote journal of", "rewrites"), ("packed journal of", "packs"))


# The reference model


class MItem(NamedTuple):
    data: bytes
    add_time: int  # epoch ms
    expiry: int  # epoch ms, 0 = none

    def __repr__(self) -> str:
        return f"<{self.data[:12]!r}{'...' if len(self.data) > 12 else ''}/{len(self.data)} add={self.add_time} exp={self.expiry}>"


class QueueState(NamedTuple):
    """A queue in a snapshot: its open reads in the order they were opened, its items, and
    whether it kept a journal."""

    opens: tuple[MItem, ...]
    items: tuple[MItem, ...]
    journaled: bool


Snapshot = dict[str, QueueState]


class MQueue:
    __slots__ = ("items", "opens", "journaled")

    def __init__(self, journaled: bool, items=()):
        self.items: deque[MItem] = deque(items)
        self.opens: dict[int, MItem] = {}  # xid -> item, in the order opened
        self.journaled = journaled

    @property
    def bytes(self) -> int:
        return sum(len(item.data) for item in self.items)

    def state(self) -> QueueState:
        return QueueState(tuple(self.opens.values()), tuple(self.items), self.journaled)


def expired(item: MItem, now: int, max_age: float | None) -> bool:
    expiry = item.expiry or math.inf
    if max_age is not None:
        expiry = min(expiry, item.add_time + int(max_age * 1000))
    return expiry < now


class Model:
    """
    The queues as Kestrel defines them: dicts of deques. `now` is the clock in epoch ms;
    `loaded` says how many head items of each queue the engine holds in memory at the start
    of the current step (a sweep or an add only looks at those).
    """

    def __init__(self, config: ServerConfig, policy: str):
        self.config = config
        self.policy = policy  # what happens to an expired item its expire_to_queue refuses
        self.queues: dict[str, MQueue] = {}
        self.now = 0
        self.loaded: dict[str, int] = {}
        self.on_discard: Callable[[], None] | None = None

    def snapshot(self) -> Snapshot:
        return {name: queue.state() for name, queue in self.queues.items()}

    def cfg(self, name: str) -> QueueConfig:
        return self.config.queue_config(name)

    def create(self, name: str) -> MQueue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = MQueue(self.cfg(name).keep_journal)
        return queue

    def children(self, name: str) -> list[str]:
        return [child for child in self.queues if child.partition("+")[1] and child.partition("+")[0] == name]

    # Operations

    def add(self, name: str, data: bytes, expiry: int, over_limit: bool = False) -> bool:
        self.create(name)
        for child in self.children(name):
            self._queue_add(child, data, expiry, over_limit)
        if self.cfg(name).fanout_only:
            return True
        return self._queue_add(name, data, expiry, over_limit)

    def _queue_add(self, name: str, data: bytes, expiry: int, over_limit: bool) -> bool:
        queue, cfg = self.queues[name], self.cfg(name)
        if len(data) > cfg.max_item_size:
            return False
        self.discard_expired(name, self.loaded.get(name, 0))
        if not over_limit and (len(queue.items) >= cfg.max_items or queue.bytes >= cfg.max_size):
            return False
        now = self.now
        if cfg.max_age is not None:
            limit = now + int(cfg.max_age * 1000)
            expiry = min(expiry, limit) if expiry else limit
        queue.items.append(MItem(data, now, expiry))
        return True

    def discard_expired(self, name: str, limit: float) -> int:
        queue, cfg = self.queues[name], self.cfg(name)
        count = 0
        while queue.items and count < limit and expired(queue.items[0], self.now, cfg.max_age):
            item = queue.items[0]
            target = cfg.expire_to_queue
            if target is not None:
                taken = self.add(target, item.data, 0, over_limit=self.policy == "over_limit")
                if not taken:
                    COUNTS["refused moves"] += 1
                    if self.policy == "stays":
                        break
                else:
                    COUNTS["expired moves"] += 1
            COUNTS["expired"] += 1
            queue.items.popleft()
            count += 1
            if name in self.loaded:
                self.loaded[name] -= 1
            if self.on_discard is not None:
                self.on_discard()
        return count

    def fetch(self, name: str, peek: bool) -> tuple[MItem | None, list[Snapshot]]:
        """The head after sweeping the expired ones, removed unless `peek`; and the model as it
        stood before each expiry discard (and after the last), for hand-overs while a get waits."""
        queue = self.create(name)
        states = [self.snapshot()]
        self.on_discard = lambda: states.append(self.snapshot())
        try:
            self.discard_expired(name, math.inf)
        finally:
            self.on_discard = None
        if not queue.items:
            return None, states
        return (queue.items[0] if peek else queue.items.popleft()), states

    def confirm(self, name: str, xid: int) -> bool:
        queue = self.queues.get(name)
        return queue is not None and queue.opens.pop(xid, None) is not None

    def abort(self, name: str, xids: list[int]) -> int:
        queue = self.queues.get(name)
        if queue is None:
            return 0
        returned = 0
        for xid in reversed(xids):
            item = queue.opens.pop(xid, None)
            if item is not None:
                queue.items.appendleft(item)
                returned += 1
        return returned

    def flush(self, name: str) -> None:
        queue = self.queues.get(name)
        if queue is not None:
            queue.items.clear()

    def delete(self, name: str) -> bool:
        return self.queues.pop(name, None) is not None

    def sweep(self) -> None:
        for name in list(self.queues):
            if name in self.queues:
                self.discard_expired(name, self.loaded.get(name, 0))


def disk_image(snapshot: Snapshot) -> dict[str, list[MItem]]:
    """What each queue's files replay to once the batch that `snapshot` belongs to has run:
    open reads rolled back to the head in the order they were opened; nothing for a queue
    that kept no journal (its files were erased in that batch or before)."""
    return {name: [*state.opens, *state.items] if state.journaled else [] for name, state in snapshot.items()}


def image_snapshot(image: dict[str, list[MItem]]) -> Snapshot:
    """A snapshot for files that replay to `image` (what is on disk when a process starts)."""
    return {name: QueueState((), tuple(items), True) for name, items in image.items()}


# Configurations


def config_options():
    """Options a configuration (initial or reloaded) is built from; the first of each list is the plainest."""
    return st.fixed_dictionaries(
        {
            "max_memory_size": st.sampled_from([1024, 512, 2048]),
            "max_journal_size": st.sampled_from([4096, 2048, 8192]),
            "default_journal_size": st.sampled_from([1024, 256]),
            "sync_journal": st.sampled_from([None, 0.0, 0.5]),
            "disable_aggressive_rewrites": st.sampled_from([False, True]),
            "min_journal_compact_delay": st.sampled_from([0.0, 1.0]),
            "a_fanout_only": st.sampled_from([False, False, False, True]),
            "b_keep_journal": st.sampled_from([True, False]),
            "b_max_item_size": st.sampled_from([BIG, 200]),
            "e_max_age": st.sampled_from([None, 1.0, 3.0]),
            "e_expire_to_queue": st.sampled_from(["x", None]),
            "x_max_items": st.sampled_from([2, 1, 3]),
        }
    )


def build_config(directory: str, options: dict) -> ServerConfig:
    default = QueueConfig(
        max_memory_size=options["max_memory_size"],
        max_journal_size=options["max_journal_size"],
        default_journal_size=options["default_journal_size"],
        sync_journal=options["sync_journal"],
        disable_aggressive_rewrites=options["disable_aggressive_rewrites"],
        min_journal_compact_delay=options["min_journal_compact_delay"],
    )
    return ServerConfig(
        queue_path=directory,
        max_output_buffer=MAX_OUTPUT_BUFFER,
        default_queue=default,
        queue_overrides={
            "a": {"fanout_only": options["a_fanout_only"]},
            "a+c": {"fanout_only": False},
            "b": {"keep_journal": options["b_keep_journal"], "max_item_size": options["b_max_item_size"]},
            "e": {"max_age": options["e_max_age"], "expire_to_queue": options["e_expire_to_queue"]},
            "x": {"max_items": options["x_max_items"]},
        },
    )


_policy: str | None = None


def refused_expiry_policy() -> str:
    """
    What the engine does with an expired item whose expire_to_queue is full: "over_limit"
    if the target takes it anyway, else "stays" (the item stays at the head of its queue),
    which is also what the model expects of an engine that loses it.
    """
    global _policy
    if _policy is None:
        directory = tempfile.mkdtemp(prefix="kestrel-probe-", dir=scratch_root())
        try:
            clock = Clock()
            clock.advance(START)
            writer = synchronous_writer(clock)
            config = ServerConfig(
                queue_path=directory, queue_overrides={"e": {"expire_to_queue": "x"}, "x": {"max_items": 1}}
            )
            collection = QueueCollection(config, writer, clock)
            collection.load()
            collection.add("x", b"full")
            collection.add("e", b"old", int(clock.seconds() * 1000) + 1)
            clock.advance(1)
            collection.sweep()
            taken = collection.queue("x").items
            collection.close()
            writer.flush()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        _policy = "over_limit" if taken == 2 else "stays"
    return _policy


# The engine's writer, stepped by the machine


class SteppedThreadRunner:
    """
    The writer's runner: each batch goes to a real thread, when the machine releases it.
    It notes the model snapshot of the moment each batch is handed over; once a batch has
    run, that snapshot is what a crash would leave on disk.
    """

    def __init__(self, executor: ThreadPoolExecutor, snapshot: Callable[[], Snapshot], durable: Snapshot):
        self._executor = executor
        self._snapshot = snapshot
        self.pending: tuple | None = None
        self.durable = durable
        self.dead = False
        self.batches = 0
        # Periodic fsyncs handed to "the fsync thread" (by the writer thread), and the calls
        # that thread brings back to the reactor; both run when the batch that handed them has.
        self._syncs: list[tuple] = []
        self._from_thread: list[tuple] = []

    def sync_runner(self, function, *args) -> None:
        # Issue 10, defect 5: while one periodic fsync of a journal waits for the fsync thread,
        # another must not be queued (a slow disk would collect one per period). Raised on the
        # writer thread, this fails the batch, which the log check reports.
        journal_files = getattr(args[0], "__self__", None)
        if any(getattr(waiting[0], "__self__", None) is journal_files for _, waiting in self._syncs):
            raise EngineFailure(f"a second periodic fsync of {journal_files.name} was queued while one waits")
        self._syncs.append((function, args))

    def call_from_thread(self, function, *args) -> None:
        self._from_thread.append((function, args))

    def _run_syncs(self) -> None:
        while self._syncs:
            function, args = self._syncs.pop(0)
            function(*args)

    def __call__(self, function, *args) -> Deferred:
        result = Deferred()
        if self.dead:
            return result  # a crashed process: nothing runs any more
        if self.pending is not None:
            raise AssertionError("the writer handed over a batch while another was on the thread")
        self.pending = (function, args, result, self._snapshot())
        return result

    def run_one(self) -> None:
        function, args, result, snapshot = self.pending
        self.pending = None
        future = self._executor.submit(function, *args)
        try:
            value = future.result(timeout=THREAD_TIMEOUT)
        except BaseException:
            self.batches += 1
            result.errback(Failure())
            return
        self.batches += 1
        self.durable = snapshot
        result.callback(value)

    @property
    def syncs_waiting(self) -> bool:
        return bool(self._syncs or self._from_thread)

    def run_syncs(self) -> None:
        """The fsync thread runs what it was given; the reactor then hears of it."""
        if self._syncs and not self.dead:
            self._executor.submit(self._run_syncs).result(timeout=THREAD_TIMEOUT)
        while self._from_thread:
            function, args = self._from_thread.pop(0)
            function(*args)


class HeldWriter(JournalWriter):
    """
    The real JournalWriter, except that a hand-over asked for while `held` (inside an
    engine call the machine makes, or while a finished batch's callbacks run) happens when
    the outermost `held` ends, once the model has caught up with the call.
    """

    def __init__(self, clock, runner: SteppedThreadRunner):
        try:
            super().__init__(
                clock, runner=runner, sync_runner=runner.sync_runner, call_from_thread=runner.call_from_thread,
                # The machine's clock, not the real one: whether a batch or an fsync is late
                # (and replies wait) must not depend on how fast the machine runs.
                max_unwritten_bytes=MAX_UNWRITTEN_BYTES, timer=clock.seconds,
            )
        except TypeError:  # a writer without an fsync thread or a bound of its own
            super().__init__(clock, runner=runner)
        self._holds = 0
        self._flush_wanted = False

    def flush(self) -> None:
        if self._holds:
            self._flush_wanted = True
            return
        super().flush()

    @contextmanager
    def held(self):
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
        if not self._holds and self._flush_wanted:
            self._flush_wanted = False
            super().flush()

    @property
    def idle(self) -> bool:
        return not self._dirty and self._in_flight is None


class ModelledCollection(QueueCollection):
    """
    The engine's collection, as the protocol clients' server sees it: every add from outside
    goes through the machine, which applies it to the model first, as its own sets do
    (`engine_add` is the collection's own add). A subclass rather than a proxy: the compiled
    build's sessions take nothing but a QueueCollection.
    """

    machine: "ModelMachine"

    def add(self, name: str, data: bytes, expiry: int = 0) -> bool:
        return self.machine._checked_add(name, data, expiry, client=True)

    def engine_add(self, name: str, data: bytes, expiry: int = 0) -> bool:
        return QueueCollection.add(self, name, data, expiry)


def descriptors_under(directory: str) -> list[tuple[int, str]]:
    """This process's open descriptors on files in `directory` (Linux; empty elsewhere)."""
    found = []
    prefix = os.path.join(directory, "")
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            found.append((int(fd), target))
    return found


class EngineFailure(AssertionError):
    pass


def _difference(found, wanted) -> str:
    """Where two item lists part."""
    found, wanted = list(found), list(wanted)
    for index, (one, other) in enumerate(zip(found, wanted)):
        if one != other:
            return f"item {index} is {one!r}, expected {other!r} ({len(found)} items, expected {len(wanted)})"
    return f"{len(found)} items, expected {len(wanted)}; the first {min(len(found), len(wanted))} agree"


def _describe(items) -> str:
    items = list(items)
    if len(items) > 12:
        return f"{items[:6]} ... ({len(items)} items) ... {items[-3:]}"
    return repr(items)


class SpoolListings:
    """
    Issue 10, defect 8: the spool folder is listed once, when a collection loads; creating a
    queue lists nothing. For a machine's life, a listing of its folder (os.scandir, os.listdir)
    fails the step unless the machine allows it: while a process starts, and for its own looks.
    """

    def __init__(self, directory: str):
        self.directory = os.path.realpath(directory)
        self.allowed = 0
        self._scandir, self._listdir = os.scandir, os.listdir
        os.scandir, os.listdir = self._guard(self._scandir), self._guard(self._listdir)

    def _guard(self, function):
        def guarded(path=".", *args, **kwargs):
            if not self.allowed and isinstance(path, (str, os.PathLike)) and os.path.realpath(path) == self.directory:
                raise EngineFailure(f"the spool folder was listed outside start-up:\n{''.join(traceback.format_stack(limit=8))}")
            return function(path, *args, **kwargs)

        return guarded

    @contextmanager
    def allow(self):
        self.allowed += 1
        try:
            yield
        finally:
            self.allowed -= 1

    def remove(self) -> None:
        os.scandir, os.listdir = self._scandir, self._listdir


# The machine

PAYLOAD_SIZES = st.integers(0, 400)
EXPIRY_DELTAS = st.sampled_from([0, 0, 700, 2000, -1])  # ms from now; 0 = no expiry
CLOCK_STEPS = st.sampled_from([0, 1, 300, 1100, 3100])  # ms; 0 = the end of a reactor turn


class ModelMachine(RuleBasedStateMachine):
    counts = COUNTS

    def __init__(self):
        super().__init__()
        self.started = False
        self.directory = tempfile.mkdtemp(prefix="kestrel-model-", dir=scratch_root())
        self.listings = SpoolListings(self.directory)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kestrel-model-writer")
        self.events: list[dict] = []
        self.checked_events = 0
        globalLogPublisher.addObserver(self._observe)
        self.counter = 0
        self.waiting = None  # (engine queue, expired_items before, states, results) while a get waits
        self.stalled = 0  # steps left during which the writer makes no progress by itself

    # Plumbing

    def _observe(self, event: dict) -> None:
        # Warnings are kept for reload's check; errors, failures and data loss fail the step.
        if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            self.events.append(event)
        else:
            text = event.get("log_format") or ""
            for prefix, counted in COUNTED_LOGS:
                if text.startswith(prefix):
                    COUNTS[counted] += 1

    def _check_log(self) -> None:
        bad = []
        for event in self.events[self.checked_events :]:
            level = event.get("log_level")
            text = formatEvent(event)
            if level in (LogLevel.error, LogLevel.critical) or "DATA MAY HAVE BEEN LOST" in text:
                failure = event.get("log_failure")
                if failure is not None:
                    text += "\n" + failure.getTraceback()
                bad.append(text)
        self.checked_events = len(self.events)
        if bad:
            raise EngineFailure("the engine logged:\n" + "\n".join(bad))

    def _now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _snapshot(self) -> Snapshot:
        if self.waiting is not None and not self.waiting[3]:
            queue, before, states, _ = self.waiting
            return states[min(max(queue.expired_items - before, 0), len(states) - 1)]
        return self.model.snapshot()

    @contextmanager
    def _call(self):
        """One engine call: the model catches up before anything goes to the thread."""
        self.model.now = self._now()
        self.model.loaded = {name: self.collection.queue(name, create=False).memory_items for name in self.collection.names()}
        with self.writer.held():
            yield

    def _release(self) -> bool:
        if self.runner.pending is None:
            return False
        with self.writer.held():
            self.runner.run_one()
        ModelMachine.counts["batches"] += 1
        return True

    def _boot(self, image: dict[str, list[MItem]], seconds: float) -> None:
        """A process starts: the one time the engine may list the spool folder."""
        with self.listings.allow():
            self._start_process(image, seconds)

    def _start_process(self, image: dict[str, list[MItem]], seconds: float) -> None:
        """
        Start a collection and writer on the folder, as a restarted process does. `image` is
        what the files replay to; a queue that keeps no journal under the current config must
        come back empty (its files are erased by a batch of the new writer), the others with
        their image. Until the new writer runs a batch, the files are still `image`.
        """
        expected = {name: items if self.config.queue_config(name).keep_journal else [] for name, items in image.items()}
        self.clock = Clock()
        self.clock.advance(seconds)
        self.runner = SteppedThreadRunner(self.executor, self._snapshot, {})
        self.writer = HeldWriter(self.clock, self.runner)
        self.writer.startService()
        # What the files replay to, checked on a copy by a plain reader before the engine replays them.
        self._check_copy(self._copy_folder(), expected)
        self.collection = ModelledCollection(self.config, self.writer, self.clock)
        self.collection.machine = self
        with self.writer.held():
            self.collection.load()
            names = self.collection.names()
            missing = [name for name, items in expected.items() if items and name not in names]
            if missing:
                raise EngineFailure(f"after the restart, queues {missing} are gone; expected {dict((n, _describe(expected[n])) for n in missing)}")
            model = Model(self.config, refused_expiry_policy())
            for name in names:
                model.queues[name] = MQueue(self.config.queue_config(name).keep_journal, expected.get(name, ()))
            self.model = model
            self.runner.durable = image_snapshot(image)
        self.server = ServerContext(self.config, self.collection, self.clock)
        self.adds: list[bool] = []  # what the adds of a protocol client answered, in order
        self.behind_at: int | None = None  # batches run when a client's add found the writer behind
        self.client_failure: EngineFailure | None = None

    def _copy_folder(self) -> str:
        copy = tempfile.mkdtemp(prefix="kestrel-model-copy-", dir=scratch_root())
        try:
            for filename in os.listdir(self.directory):
                shutil.copy2(os.path.join(self.directory, filename), os.path.join(copy, filename))
        except BaseException:
            shutil.rmtree(copy, ignore_errors=True)
            raise
        return copy

    def _check_copy(self, copy: str, expected: dict[str, list[MItem]]) -> None:
        """Replay the copy of the folder with a plain reader and drain it: exactly the expected items, in order."""
        try:
            clock = Clock()
            clock.advance(1.0)  # before every expiry: nothing expires while the copy is drained
            writer = synchronous_writer(clock)
            config = ServerConfig(
                queue_path=copy,
                default_queue=QueueConfig(max_memory_size=2**40, max_journal_size=2**40, default_journal_size=2**40),
                queue_overrides={name: {"keep_journal": self.config.queue_config(name).keep_journal} for name in QUEUES},
            )
            reader = QueueCollection(config, writer, clock)
            reader.load()
            for name in sorted(set(reader.names()) | {name for name, items in expected.items() if items}):
                queue = reader.queue(name, create=False)
                found = []
                if queue is not None:
                    while (item := queue.remove()) is not None:
                        found.append(MItem(item.data, item.add_time, item.expiry))
                wanted = expected.get(name, [])
                if found != wanted:
                    raise EngineFailure(
                        f"after the restart, the files of {name!r} replay wrong: {_difference(found, wanted)}; "
                        f"they replay to {_describe(found)}; expected {_describe(wanted)}"
                    )
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    def _kill_descriptors(self) -> None:
        for fd, _ in descriptors_under(self.directory):
            try:
                os.close(fd)
            except OSError:
                pass

    def teardown(self) -> None:
        self.listings.remove()
        globalLogPublisher.removeObserver(self._observe)
        if self.started:
            self.runner.dead = True
            self.runner.pending = None
        self._kill_descriptors()
        self.executor.shutdown(wait=True)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _payload(self, size: int) -> bytes:
        self.counter += 1
        tag = b"%d:" % self.counter
        return (tag + b"." * size)[:size]

    # Start

    @initialize(options=config_options())
    def start(self, options):
        ModelMachine.counts["examples"] += 1
        self.config = build_config(self.directory, options)
        self._boot({}, START)
        self.started = True

    # Adding

    def _set(self, name: str, size: int, delta: int) -> None:
        with self._call():
            expiry = 0 if not delta or name not in EXPIRING else self._now() + delta
            self._checked_add(name, self._payload(size), expiry)

    def _checked_add(self, name: str, data: bytes, expiry: int, client: bool = False) -> bool:
        """
        Add to the model, then to the engine: both must answer alike. An add of a protocol
        `client` must respect the writer's back-pressure (issue 10, defect 6): after one made
        while the writer is behind, that client's next add waits until the thread has run a batch.
        """
        if client and self.behind_at == self.runner.batches:
            # Raised inside the protocol, which answers an internal error: _serve raises it again.
            self.client_failure = EngineFailure(f"a client added to {name} while the writer was behind, before it ran a batch")
            raise self.client_failure
        unwritten = self.writer.unwritten_bytes
        with self._call():
            wanted = self.model.add(name, data, expiry)
            got = self.collection.engine_add(name, data, expiry)
        if got != wanted:
            raise EngineFailure(f"set {name} of {len(data)} bytes answered {got}, expected {wanted}")
        if client:
            self.adds.append(got)
            queue_config = self.config.queue_config(name)
            # Only an add that journaled something waits (a fanout_only master with no child,
            # a queue that keeps no journal, write nothing).
            journaled = self.writer.unwritten_bytes > unwritten
            waits = got and journaled and queue_config.sync_journal != 0
            self.behind_at = self.runner.batches if waits and self.writer.behind(queue_config.sync_journal) else None
            if self.behind_at is not None:
                COUNTS["client adds while behind"] += 1
        return got

    @rule(name=st.sampled_from(QUEUES), size=PAYLOAD_SIZES, delta=EXPIRY_DELTAS)
    def set(self, name, size, delta):
        self._set(name, size, delta)

    @rule(name=st.sampled_from(QUEUES), count=st.integers(1, 30), size=PAYLOAD_SIZES)
    def set_many(self, name, count, size):
        for _ in range(count):
            self._set(name, size, 0)

    # Clients on the wire (issue 10, defects 2 and 6)

    @rule(name=st.sampled_from(QUEUES), count=st.integers(1, 100), size=PAYLOAD_SIZES)
    def memcache_sets(self, name, count, size):
        """A memcache client pipelines sets and reads its replies only when the server stops reading it."""
        items = [self._payload(size) for _ in range(count)]
        request = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (name.encode(), len(data), data) for data in items)
        version = b"VERSION %s\r\n" % self.server.protocol_version.encode()
        replies = self._serve(MemcacheProtocol(self.server), request + b"version\r\n", version)
        wanted = b"".join(b"STORED\r\n" if stored else b"NOT_STORED\r\n" for stored in self.adds) + version
        if len(self.adds) != count or replies != wanted:
            raise EngineFailure(f"{count} memcache sets on {name} made {len(self.adds)} adds and were answered {replies!r}")

    @rule(name=st.sampled_from(QUEUES), count=st.integers(1, 100), size=st.integers(1, 400))
    def text_put(self, name, count, size):
        """A text client puts many items in one request (each a line: no empty one, which ends it)."""
        items = [self._payload(size) for _ in range(count)]
        request = b"put %s:\n%s\n\nversion\n" % (name.encode(), b"\n".join(items))
        version = item_reply(self.server.protocol_version.encode())
        replies = self._serve(TextProtocol(self.server), request, version)
        wanted = b"+%d\n" % sum(self.adds) + version
        if len(self.adds) != count or replies != wanted:
            raise EngineFailure(f"a text put of {count} items on {name} made {len(self.adds)} adds and was answered {replies!r}")

    def _serve(self, protocol, request: bytes, last_reply: bytes) -> bytes:
        """
        Send `request` at once on a connection whose client reads only when the server has
        stopped reading it (issue 10, defect 2); the writer thread runs a batch only when
        nothing else can happen. Returns the replies, up to `last_reply`. The unsent replies
        must stay within the output bound, plus the transport's buffer and one reply.
        """
        self.adds = []
        self.behind_at = None
        self.client_failure = None
        client = UnreadClient(protocol)
        most_unsent = MAX_OUTPUT_BUFFER + client.transport.bufferSize + LONGEST_REPLY
        received = b""
        with self._call():
            client.send(request)
        for _ in range(100_000):
            unsent = client.unread()
            if len(unsent) > most_unsent:
                raise EngineFailure(f"{len(unsent)} bytes of replies wait for a client that does not read them")
            if (received + unsent).endswith(last_reply):
                break
            if unsent and not client.transport.reading:
                COUNTS["unread replies drained"] += 1
                with self._call():
                    received += client.transport.drain()
            elif not self._release():
                self.writer.flush()
                if self.runner.pending is not None:
                    continue
                if not self.runner.syncs_waiting:
                    raise EngineFailure(f"a client's requests hang; it has been sent {received + unsent!r}")
                # A reply may wait for a late periodic fsync.
                with self.writer.held():
                    self.runner.run_syncs()
        else:
            raise EngineFailure("a client's requests are never all answered")
        with self._call():
            received += client.transport.drain()
            protocol.connectionLost(Failure(ConnectionDone()))
        if self.client_failure is not None:
            raise self.client_failure
        return received

    # Reading

    def _fetch(self, name: str, transaction: bool, peek: bool) -> None:
        existing = self.collection.queue(name, create=False)
        before = existing.expired_items if existing is not None else 0
        results: list = []

        def fired(item):
            if transaction and item is not None and wanted is not None and not isinstance(item, Failure):
                self.model.queues[name].opens[item.xid] = wanted
            results.append(item)

        with self._call():
            wanted, states = self.model.fetch(name, peek)
            result = self.collection.fetch(name, transaction, peek)
            if isinstance(result, Deferred):
                ModelMachine.counts["waiting gets"] += 1
                self.waiting = (self.collection.queue(name, create=False), before, states, results)
                result.addBoth(fired)
            else:
                fired(result)
        try:
            releases = 0
            while not results:
                if not self._release():
                    self.writer.flush()
                    if self.runner.pending is None:
                        raise EngineFailure(f"read hangs: a get on {name} waits and the writer has nothing to do")
                releases += 1
                if releases > 1000:
                    raise EngineFailure(f"read hangs: a get on {name} still waits after 1000 batches")
        finally:
            self.waiting = None
        got = results[0]
        if isinstance(got, Failure):
            raise EngineFailure(f"a get on {name} failed: {got.getTraceback()}")
        got_item = None if got is None else MItem(got.data, got.add_time, got.expiry)
        if got_item != wanted:
            kind = "peek" if peek else "open" if transaction else "get"
            raise EngineFailure(f"{kind} {name} gave {got_item!r}, expected {wanted!r}")

    @rule(name=st.sampled_from(QUEUES), transaction=st.booleans())
    def get(self, name, transaction):
        self._fetch(name, transaction, False)

    @rule(name=st.sampled_from(QUEUES), count=st.integers(1, 30), transaction=st.booleans())
    def get_many(self, name, count, transaction):
        for _ in range(count):
            self._fetch(name, transaction, False)

    @rule(name=st.sampled_from(QUEUES))
    def peek(self, name):
        self._fetch(name, False, True)

    def _open_reads(self) -> list[tuple[str, int]]:
        return [(name, xid) for name in sorted(self.model.queues) for xid in self.model.queues[name].opens]

    def _has_open_reads(self) -> bool:
        return self.started and bool(self._open_reads())

    @precondition(_has_open_reads)
    @rule(which=st.integers(0, 50))
    def confirm(self, which):
        reads = self._open_reads()
        name, xid = reads[which % len(reads)]
        with self._call():
            self.model.confirm(name, xid)
            if not self.collection.confirm(name, xid):
                raise EngineFailure(f"confirm {name} xid {xid} was refused")

    @precondition(_has_open_reads)
    @rule(which=st.integers(0, 50))
    def abort(self, which):
        reads = self._open_reads()
        name, xid = reads[which % len(reads)]
        with self._call():
            self.model.abort(name, [xid])
            if not self.collection.unremove(name, xid):
                raise EngineFailure(f"abort {name} xid {xid} was refused")

    @precondition(_has_open_reads)
    @rule(which=st.integers(0, 50))
    def disconnect(self, which):
        """A connection ends: all its open reads of a queue are aborted together, oldest first."""
        names = sorted({name for name, _ in self._open_reads()})
        name = names[which % len(names)]
        xids = list(self.model.queues[name].opens)
        with self._call():
            self.model.abort(name, xids)
            got = self.collection.abort(name, xids)
        if got != len(xids):
            raise EngineFailure(f"aborting {len(xids)} reads of {name} returned {got} items")

    # Administration

    @rule(name=st.sampled_from(QUEUES))
    def delete(self, name):
        with self._call():
            wanted = self.model.delete(name)
            got = self.collection.delete(name)
        if got != wanted:
            raise EngineFailure(f"delete {name} answered {got}, expected {wanted}")

    @rule(name=st.sampled_from(QUEUES))
    def flush(self, name):
        with self._call():
            self.model.flush(name)
            self.collection.flush(name)

    @rule()
    def flush_all(self):
        with self._call():
            for name in self.model.queues:
                self.model.flush(name)
            self.collection.flush_all()

    @rule()
    def sweep(self):
        with self._call():
            self.model.sweep()
            self.collection.sweep()

    @rule(ms=CLOCK_STEPS)
    def advance_clock(self, ms):
        with self._call():
            self.clock.advance(ms / 1000)

    @precondition(lambda self: self.started and not self.writer.idle)
    @rule(count=st.integers(1, 4))
    def writer_runs(self, count):
        """The writer thread runs up to `count` batches; what is queued and not handed over goes first
        (the reactor turn ends)."""
        for _ in range(count):
            if self.runner.pending is None:
                self.writer.flush()
            if not self._release():
                break

    @rule(options=config_options())
    def reload(self, options):
        config = build_config(self.directory, options)
        mark = len(self.events)
        with self._call():
            self.collection.reload(config)
            self.config = self.model.config = config
            for name, queue in self.model.queues.items():
                wanted = config.queue_config(name).keep_journal
                if wanted == queue.journaled:
                    continue
                effective = self.collection.queue(name, create=False).config.keep_journal
                if effective == wanted:
                    queue.journaled = wanted
                elif not any(event.get("log_level") == LogLevel.warn for event in self.events[mark:]):
                    raise EngineFailure(f"reload: keep_journal of {name} stays {effective} and no warning says so")

    # Restarts

    @rule(rewrite_empty=st.booleans())
    def clean_restart(self, rewrite_empty):
        with self._call():
            self.collection.close(rewrite_empty)
        drained = self.writer.drain()
        done = []
        drained.addBoth(done.append)
        for _ in range(1000):
            if done or not self._release():
                break
        if not done:
            raise EngineFailure("the writer does not drain after the collection closed")
        self.runner.run_syncs()  # the writer's service waits for the fsync thread as it stops
        self._check_log()
        left = descriptors_under(self.directory)
        if left:
            raise EngineFailure(f"descriptors still open after a clean shutdown: {left}")
        image = disk_image(self.model.snapshot())
        self.runner.dead = True
        ModelMachine.counts["restarts"] += 1
        self._boot(image, self.clock.seconds())

    @rule()
    def crash_restart(self):
        """The process dies: what the thread has not run is lost; nothing runs afterwards."""
        image = disk_image(self.runner.durable)
        self.runner.dead = True
        self.runner.pending = None
        self._kill_descriptors()
        self._check_log()
        ModelMachine.counts["crashes"] += 1
        self._boot(image, self.clock.seconds())

    @rule(name=st.sampled_from(QUEUES))
    def torn_write_restart(self, name):
        """
        The process dies in the middle of writing a record to the queue's current file. The
        restart must cut the torn record off, keep a `.damaged` copy of the file as it was
        beside it, say so in the log, and lose nothing whose batch the thread had finished.
        """
        image = disk_image(self.runner.durable)
        self.runner.dead = True
        self.runner.pending = None
        self._kill_descriptors()
        self._check_log()
        ModelMachine.counts["crashes"] += 1
        path = os.path.join(self.directory, name)
        if not (os.path.exists(path) and self.config.queue_config(name).keep_journal):
            self._boot(image, self.clock.seconds())
            return
        torn = records.encode_addx(b"torn", 0, 0)[:7]
        with open(path, "ab") as journal:
            journal.write(torn)
        with open(path, "rb") as journal:
            as_it_was = journal.read()
        with self.listings.allow():
            before = set(os.listdir(self.directory))
        self._boot(image, self.clock.seconds())
        with self.listings.allow():
            copies = [filename for filename in set(os.listdir(self.directory)) - before if "damaged" in filename]
        if len(copies) != 1 or not copies[0].startswith(f"{name}."):
            raise EngineFailure(f"a torn {name} left damaged copies {copies}, expected one of {name}")
        with open(os.path.join(self.directory, copies[0]), "rb") as copy:
            if copy.read() != as_it_was:
                raise EngineFailure(f"the damaged copy {copies[0]} is not the file as it was")
        # The cut is logged, by the engine and by the reader of the folder's copy: expected here.
        reported = [formatEvent(event) for event in self.events[self.checked_events:]]
        if not any("DATA MAY HAVE BEEN LOST" in text and copies[0] in text for text in reported):
            raise EngineFailure(f"the cut of the torn {name} was not logged with its copy: {reported}")
        unexpected = [text for text in reported if "DATA MAY HAVE BEEN LOST" not in text or "damaged" not in text]
        if unexpected:
            raise EngineFailure("the engine logged:\n" + "\n".join(unexpected))
        self.checked_events = len(self.events)

    # After every step

    @rule()
    def fsync_thread_runs(self):
        """The fsync thread, which lags behind the writer thread, runs the periodic fsyncs it was given."""
        self.runner.run_syncs()

    @rule(steps=st.integers(1, 8))
    def stall_writer(self, steps):
        """For the next `steps` steps, the reactor turn does not end and the writer thread runs
        nothing by itself (advance_clock and writer_runs still do)."""
        self.stalled = steps

    def _background(self) -> None:
        """Between steps, unless stalled: the reactor turn ends and the writer thread catches up."""
        with self._call():
            self.clock.advance(0)
        for _ in range(1000):
            if self.writer.idle:
                return
            if self.runner.pending is None:
                self.writer.flush()
            self._release()
        raise EngineFailure("the writer never becomes idle")

    @invariant()
    def after_step(self):
        if not self.started:
            return
        COUNTS["steps"] += 1
        self._compare()
        if self.stalled:
            self.stalled -= 1
        else:
            self._background()
            self._compare()

    def _compare(self) -> None:
        self._check_log()
        names = self.collection.names()
        if names != sorted(self.model.queues):
            raise EngineFailure(f"queues {names}, expected {sorted(self.model.queues)}")
        for name, mq in self.model.queues.items():
            queue = self.collection.queue(name, create=False)
            memory = [MItem(item.data, item.add_time, item.expiry) for item in queue._memory]
            problems = []
            if queue.items != len(mq.items):
                problems.append(f"{queue.items} items, expected {len(mq.items)}")
            if queue.bytes != mq.bytes:
                problems.append(f"{queue.bytes} bytes, expected {mq.bytes}")
            if memory != list(mq.items)[: len(memory)]:
                problems.append(
                    f"memory: {_difference(memory, list(mq.items)[: len(memory)])}; it holds {_describe(memory)}, "
                    f"expected a head of {_describe(mq.items)}"
                )
            if queue.open_xids() != list(mq.opens):
                problems.append(f"open reads {queue.open_xids()}, expected {list(mq.opens)}")
            if queue.config.keep_journal != mq.journaled:
                problems.append(f"keep_journal is {queue.config.keep_journal}, expected {mq.journaled}")
            if queue.memory_bytes != sum(len(item.data) for item in memory):
                problems.append(f"memory_bytes {queue.memory_bytes} for {len(memory)} items of {sum(len(i.data) for i in memory)} bytes")
            if problems:
                raise EngineFailure(f"queue {name}: " + "; ".join(problems))
        # The engine's own account of the fanout, as `stats` reports it (for a master that
        # exists; adds to it check the rest).
        children = dict(dict(self.collection.queue_stats(["a"])).get("a", [])).get("children")
        wanted = "a+c" if "a+c" in self.model.queues and "a" in self.model.queues else None
        if children != wanted:
            raise EngineFailure(f"fanout children of a: {children}, expected {wanted}")


def machine_settings(examples: int, steps: int, **extra) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kestrel.test.model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="run for this long (default 30)")
    parser.add_argument("--examples", type=int, default=200, help="examples per round, a fresh seed each round (default 200)")
    parser.add_argument("--steps", type=int, default=200, help="most steps per example (default 200)")
    arguments = parser.parse_args(argv)
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
    started = time.monotonic()
    deadline = started + arguments.minutes * 60
    rounds = 0
    counts = ModelMachine.counts
    status = 0
    while time.monotonic() < deadline:
        try:
            run_state_machine_as_test(ModelMachine, settings=machine_settings(arguments.examples, arguments.steps, database=None))
        except Exception as error:  # noqa: BLE001 - report and stop
            # Hypothesis puts the shrunk trace of each failure in the exception's notes.
            traceback.print_exception(error)
            print(f"FAILED in round {rounds + 1}", file=sys.stderr)
            status = 1
            break
        rounds += 1
        elapsed = time.monotonic() - started
        print(f"round {rounds}: {counts['examples']} examples, {counts['steps']} steps, {elapsed:.0f} s", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"{'FAILED' if status else 'passed'}: {rounds} rounds, {counts['examples']} examples, {counts['steps']} steps "
        f"in {elapsed / 60:.1f} min"
    )
    print("  " + ", ".join(f"{key}: {value}" for key, value in counts.items() if key not in ("examples", "steps")))
    return status


if __name__ == "__main__":
    sys.exit(main())
