"""
QueueCollection: every queue of the server by name, with fanout children and aliases.

Queues are created on first use (a set, get, peek or monitor) and found on disk at start.
A name `master+child` is a fanout child: from its first use on, every item added to
`master` is first added to it. An alias (config only) is a name whose adds go to each of
its destinations and whose reads find nothing.

A queue may also be given settings at run time, laid over the config file's, and metadata
(`kestrel.settings`): such a queue is created when they are given, and again at every start.
"""

from __future__ import annotations

import gc
import heapq
import os
import shutil
import time
from functools import partial
from operator import attrgetter
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

from mypy_extensions import mypyc_attr
from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from kestrel.clock import Clock
from twisted.logger import Logger

from kestrel.config import WHITELISTS, QueueConfig, ServerConfig, validate_queue_name
from kestrel.history import HistoryPage, NoSuchQueue, NotRetained
from kestrel.history.log import MAX_PAGE_ENTRIES, History
from kestrel.history.rewind import rewind
from kestrel.history.segments import history_directory, retained_queues
from kestrel.journal import files
from kestrel.journal.journal import Journal
from kestrel.journal.writer import JournalWriter, all_durable
from kestrel.queue import Item, PersistentQueue, QueueUnavailable
from kestrel.settings import RuntimeSettings


class InvalidQueueName(ValueError):
    pass


class AliasCounters:
    __slots__ = ("put_items", "put_bytes")

    def __init__(self) -> None:
        self.put_items = 0
        self.put_bytes = 0


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class QueueTotals:
    """Kestrel's global queue stats: items waiting, their bytes, items ever added, memory reserved."""

    def __init__(self, items: int, bytes: int, total_items: int, reserved_memory_ratio: float):
        self.items = items
        self.bytes = bytes
        self.total_items = total_items
        # The queues' max_memory_size over the machine's memory (Kestrel: over the JVM heap).
        self.reserved_memory_ratio = reserved_memory_ratio


@mypyc_attr(allow_interpreted_subclasses=True)
class QueueCollection(Service):
    log: ClassVar[Logger] = Logger()

    def __init__(self, config: ServerConfig, writer: JournalWriter, clock: Clock):
        self.config = config
        self.queue_path = config.queue_path
        self._writer = writer
        self._clock = clock
        self._queues: dict[str, PersistentQueue] = {}
        # Counts the queues made and deleted, so that a listing sorted once (SQS ListQueues
        # pages through a million names) is sorted again only when the names change.
        self.names_changes = 0
        self._children: dict[str, list[str]] = {}
        self._alias_counters: dict[str, AliasCounters] = {}
        # The journal files found at start, by queue, until each queue has replayed them.
        # A name created later has none: creating a queue lists nothing.
        self._spool: dict[str, list[str]] = {}
        # Journals of deleted queues whose erase has not run yet, by name (see Journal).
        self._erasing: dict[str, Journal] = {}
        # The same for histories (kestrel.history).
        self._erasing_histories: dict[str, History] = {}
        # The queues with a history folder at start, until each has its History: a queue
        # made later has none, so its History lists nothing.
        self._history_folders: set[str] = set()
        self._sweeper: TimerService | None = None
        self._runtime = RuntimeSettings(config.queue_path, writer, clock)
        # Whether any queue has a client-id whitelist: the request path looks no further when none does.
        self.has_whitelists = config.has_whitelists
        self.queue_creates = 0
        self.queue_deletes = 0
        self.queue_expires = 0
        # Set before stopping when the server shuts down read-only or quiescent (doc/compatibility.md §3.7).
        self.rewrite_empty_on_close = False
        # Called with (name, queue) after a queue is deleted, by those who hold its xids.
        self.deletion_observers: list[Callable[[str, PersistentQueue], None]] = []

    # Service

    def startService(self) -> None:
        super().startService()
        self.load()
        frequency = self.config.expiration_timer_frequency
        if frequency:
            # The sweep is looked up here, once, not called from compiled code straight to
            # the method: a test replaces it with one that fails.
            self._sweeper = TimerService(frequency, self._sweep_on_timer, self.sweep)
            self._sweeper.clock = self._clock
            self._sweeper.startService()

    def _sweep_on_timer(self, sweep: Callable[[], None]) -> None:
        # `sweep` guards each queue; this is the last line: TimerService stops at a failure,
        # and expiry must never end for good.
        try:
            sweep()
        except Exception:
            self.log.failure("the expiry sweep failed; it goes on")

    def stopService(self) -> None:
        super().stopService()
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stopService()
        self.close(self.rewrite_empty_on_close)

    def load(self) -> None:
        """Create and replay every queue that has journal files, before anyone connects; one log line says what came back."""
        started = time.monotonic()
        os.makedirs(self.queue_path, exist_ok=True)
        self._runtime.load()
        self.has_whitelists = self._has_whitelists()
        self._spool = files.list_spool(self.queue_path)
        self._history_folders = set(retained_queues(self.queue_path))
        # The cyclic garbage collector waits until every queue is loaded: loading makes about
        # ten lasting objects a queue and next to no garbage, and each collection would walk all
        # those made so far (half of the start of a million queues went to it; issue 15).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for name in list(self._spool):
                try:
                    self._create(name)
                except InvalidQueueName:
                    self.log.warn("ignoring journal file with an illegal queue name: {name}", name=name)
        finally:
            if collecting:
                gc.enable()
        self._spool = {}
        # Queues given settings or metadata at run time exist, items or not.
        for name in self._runtime.names():
            if name not in self._queues:
                self._create(name)
        self._load_histories()
        self.log.info(
            "loaded {queues} queues ({items} items) from {path} in {seconds:.2f} s",
            queues=len(self._queues), items=sum(queue.items for queue in self._queues.values()),
            path=self.queue_path, seconds=time.monotonic() - started,
        )
        self._warn_masked_queues()

    def _load_histories(self) -> None:
        """
        A queue with a history and `retain` set exists, even without journal files; the
        history of a queue without `retain` (any more) is erased.
        """
        for name in sorted(self._history_folders):
            queue = self._queues.get(name)
            if queue is None and self.queue_config(name).retain is not None:
                try:
                    queue = self._create(name)
                except InvalidQueueName:
                    pass
            if queue is None or queue.history is None:
                self.log.info("erasing the history of {queue}: it has no retain set", queue=name)
                shutil.rmtree(history_directory(self.queue_path, name), ignore_errors=True)
        self._history_folders = set()

    def close(self, rewrite_empty: bool = False) -> None:
        for queue in self._queues.values():
            queue.close(rewrite_empty)
        self._runtime.close()

    # Names

    def __len__(self) -> int:
        return len(self._queues)

    def __contains__(self, name: str) -> bool:
        return name in self._queues

    def names(self) -> list[str]:
        return sorted(self._queues)

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return dict(self.config.aliases)

    def names_starting_with(self, prefix: str) -> set[str]:
        """The queues and aliases whose names start with `prefix`: one pass, nothing sorted."""
        return {name for name in self._queues if name.startswith(prefix)} | {
            name for name in self.config.aliases if name.startswith(prefix)
        }

    def deepest(self, count: int) -> list[PersistentQueue]:
        """
        The `count` queues with the most items, deepest first, then by name: one pass and a
        heap, keyed by a C getter (a Python key function would double the pass). Among equal
        depths at the cut, the queues created first are kept.
        """
        chosen = heapq.nlargest(count, self._queues.values(), key=attrgetter("items"))
        chosen.sort(key=_depth_order)
        return chosen

    def queue(self, name: str, create: bool = True) -> PersistentQueue | None:
        """The queue called `name`, created (and replayed from disk) on first use if `create`."""
        queue = self._queues.get(name)
        if queue is not None or not create:
            return queue
        return self._create_logged(name)

    def _existing_or_new(self, name: str) -> PersistentQueue:
        queue = self._queues.get(name)
        return self._create_logged(name) if queue is None else queue

    def _create_logged(self, name: str) -> PersistentQueue:
        queue = self._create(name)
        self.log.info("created queue {queue} ({items} items)", queue=name, items=queue.items)
        return queue

    def _create(self, name: str) -> PersistentQueue:
        self._check_name(name)
        config = self.queue_config(name)
        journal = self._erasing.pop(name, None) or Journal(self.queue_path, name, self._writer, self._clock)
        queue = PersistentQueue(name, config, journal, self._clock)
        self._attach_sinks(queue)
        queue.replay(self._spool.pop(name, ()))
        self._attach_history(queue)
        self._queues[name] = queue
        self.names_changes += 1
        master, plus, _ = name.partition("+")
        if plus:
            self._children.setdefault(master, []).append(name)
        self.queue_creates += 1
        return queue

    @staticmethod
    def _check_name(name: str) -> None:
        try:
            validate_queue_name(name)
        except ValueError as error:
            raise InvalidQueueName(str(error)) from None

    def queue_config(self, name: str) -> QueueConfig:
        """The settings of queue `name`: the config file's, with those given at run time over them."""
        return self._runtime.queue_config(name, self.config.queue_config(name))

    def _attach_sinks(self, queue: PersistentQueue) -> None:
        """Where the queue sends its expired items (`expire_to_queue`) and its spent ones (`dead_letter_queue`)."""
        expire_to = queue.config.expire_to_queue
        if expire_to:
            # An expired item is added there as a new item (doc/compatibility.md §3.3).
            queue.expired_sink = lambda item: self._hand_on(expire_to, item, None)
        else:
            queue.expired_sink = None
        dead_letter = queue.config.dead_letter_queue
        if dead_letter:
            # A dead letter keeps its add time, as SQS keeps a message's enqueue time.
            queue.dead_letter_sink = lambda item: self._hand_on(dead_letter, item, item.add_time)
        else:
            queue.dead_letter_sink = None

    def _attach_history(self, queue: PersistentQueue) -> None:
        """
        Start or stop its history as `retain` says; stopped, the history is erased
        (doc/history.md). A history follows its queue's `retain` and `sync_journal`.
        """
        config = queue.config
        retain = config.retain
        history = queue.history
        if retain is None:
            if history is not None:
                queue.history = None
                self._erase_history(queue.name, history)
        elif history is not None:
            history.configure(retain, config.sync_journal)
        else:
            history = self._erasing_histories.pop(queue.name, None)
            if history is None:
                history = History(
                    self.queue_path, queue.name, self._writer, self._clock, retain, config.sync_journal,
                    has_files=queue.name in self._history_folders,
                )
            else:
                # Its writes are queued behind its erase.
                history.configure(retain, config.sync_journal)
            queue.history = history

    def _erase_history(self, name: str, history: History) -> None:
        # A queue of the same name made before the erase has run takes it on (see `delete`).
        self._erasing_histories[name] = history
        history.erase().addBoth(self._history_erased, name, history)

    def _history_erased(self, result, name: str, history: History) -> None:
        if self._erasing_histories.get(name) is history:
            del self._erasing_histories[name]

    def _hand_on(self, target: str, item: Item, add_time: int | None) -> bool:
        try:
            return self._add(target, item.data, 0, add_time)
        except QueueUnavailable:
            return False

    # Items

    def add(self, name: str, data: bytes, expiry: int = 0) -> bool:
        """Add to a queue, its fanout children first, or to each destination of an alias."""
        return self._add(name, data, expiry)

    def _add(self, name: str, data: bytes, expiry: int = 0, add_time: int | None = None) -> bool:
        # The adds the collection makes itself (to an alias's destinations, to expire_to_queue)
        # come here, not through `add`, which a subclass (the model test's) may take over.
        destinations = self.config.aliases.get(name)
        if destinations is not None:
            counters = self._alias_counters.setdefault(name, AliasCounters())
            counters.put_items += 1
            counters.put_bytes += len(data)
            return all([self._add(destination, data, expiry, add_time) for destination in destinations])
        queue = self._existing_or_new(name)
        for child in self._children.get(name, ()):
            self._queues[child].add(data, expiry, add_time)
        if queue.limits.fanout_only:
            return not queue.closed
        return queue.add(data, expiry, add_time)

    def is_alias(self, name: str) -> bool:
        return name in self.config.aliases

    def durability(self, name: str, fanout: bool = True) -> Deferred | None:
        """
        For queues that fsync every write (`sync_journal = 0`): a Deferred that fires once what
        was just journaled for `name` (and, with `fanout`, its children or alias destinations)
        is on disk, with its history. None when there is nothing to wait for.
        """
        if name not in self.config.aliases and not (fanout and name in self._children):
            queue = self._queues.get(name)
            return None if queue is None else queue.durable()
        return all_durable(queue.durable() for queue in self._targets(name, fanout))

    def _targets(self, name: str, fanout: bool) -> Iterator[PersistentQueue]:
        destinations = self.config.aliases.get(name)
        if destinations is not None:
            for destination in destinations:
                yield from self._targets(destination, fanout)
            return
        queue = self._queues.get(name)
        if queue is not None:
            yield queue
            if fanout:
                yield from (self._queues[child] for child in self._children.get(name, ()))

    def fetch(self, name: str, transaction: bool = False, peek: bool = False, deadline: float | None = None) -> Item | None | Deferred:
        """A read; see `PersistentQueue.fetch`. An alias always reads as empty."""
        if name in self.config.aliases:
            return None
        return self._existing_or_new(name).fetch(transaction, peek, deadline)

    def confirm(self, name: str, xid: int) -> bool:
        queue = self._queues.get(name)
        return queue is not None and queue.confirm(xid)

    def unremove(self, name: str, xid: int) -> bool:
        queue = self._queues.get(name)
        return queue is not None and queue.unremove(xid)

    def abort(self, name: str, xids: list[int]) -> int:
        """Abort several open reads at once; see `PersistentQueue.abort`."""
        queue = self._queues.get(name)
        return 0 if queue is None else queue.abort(xids)

    # Administration

    def flush(self, name: str) -> None:
        queue = None if self.is_alias(name) else self._queues.get(name)
        if queue is not None:
            queue.flush()

    def flush_all(self) -> None:
        for queue in list(self._queues.values()):
            queue.flush()

    def flush_expired(self, name: str) -> int:
        queue = self._queues.get(name)
        return 0 if queue is None else queue.discard_expired()

    def flush_all_expired(self) -> int:
        return sum(queue.discard_expired() for queue in list(self._queues.values()))

    def delete(self, name: str) -> bool:
        """Close a queue, erase its journal and forget it. False if there was no such queue."""
        if self.is_alias(name):
            return False
        queue = self._queues.pop(name, None)
        if queue is None:
            return False
        self.names_changes += 1
        journal = queue.journal
        # A queue of the same name created before the erase has run takes this journal on,
        # so that its writes land after the erase.
        self._erasing[name] = journal
        queue.destroy().addBoth(self._erased, name, journal)
        if queue.history is not None:
            self._erase_history(name, queue.history)
            queue.history = None
        master, plus, _ = name.partition("+")
        if plus and name in self._children.get(master, ()):
            self._children[master].remove(name)
            if not self._children[master]:
                del self._children[master]
        self._runtime.forget(name)
        self.queue_deletes += 1
        self.log.info("deleted queue {queue}", queue=name)
        for observer in list(self.deletion_observers):
            observer(name, queue)
        return True

    def _erased(self, result, name: str, journal: Journal) -> None:
        if self._erasing.get(name) is journal:
            del self._erasing[name]

    def sweep(self) -> None:
        """
        The background task: expire items everywhere, then delete queues past
        `max_queue_age`. A queue that fails is logged and skipped; the others are swept.
        """
        now = self._clock.seconds()
        for name, queue in list(self._queues.items()):
            try:
                self._sweep_queue(name, queue, now)
            except Exception:
                self.log.failure("the expiry sweep of queue {queue} failed", queue=name)

    def _sweep_queue(self, name: str, queue: PersistentQueue, now: float) -> None:
        queue.discard_expired()
        max_age = queue.config.max_queue_age
        if max_age is not None and queue.memory_items == 0 and queue.items == 0 and now - queue.created_at > max_age:
            self.delete(name)
            self.queue_expires += 1

    def reload(self, config: ServerConfig) -> None:
        """Take new queue settings and aliases; server-level settings keep their start-up values."""
        self.config = config
        self.has_whitelists = self._has_whitelists()
        for name, queue in self._queues.items():
            self._apply_config(name, queue)
        self._warn_masked_queues()
        self.log.info("reloaded queue configuration from {path}", path=config.config_path)

    def _apply_config(self, name: str, queue: PersistentQueue) -> None:
        queue.reconfigure(self.queue_config(name))
        self._attach_sinks(queue)
        self._attach_history(queue)

    def _has_whitelists(self) -> bool:
        return self.config.has_whitelists or self._runtime.sets_any(WHITELISTS)

    # Runtime settings and metadata (kestrel.settings)

    def configure(self, name: str, settings: Mapping[str, object]) -> Deferred:
        """
        Give queue `name` settings at run time, over the config file's and those given before
        (a value of None takes one away), kept across reloads and restarts until the queue is
        deleted. The values are those of the config file, checked by the same parsers:
        ConfigError names a bad one, InvalidQueueName a bad name or an alias, and nothing
        changes. The queue is created if need be and takes them at once; the Deferred fires
        once they are on disk.
        """
        self._check_configurable(name)
        written = self._runtime.configure(name, settings)
        if any(settings.get(key) is not None for key in WHITELISTS):
            # Taking one away leaves this set (a look that finds nothing) until a reload.
            self.has_whitelists = True
        queue = self._queues.get(name)
        if queue is None:
            self._create_logged(name)
        else:
            self._apply_config(name, queue)
        return written

    def settings(self, name: str) -> dict[str, Any]:
        """The settings queue `name` was given at run time, as given (without the config file's)."""
        return self._runtime.settings(name)

    def metadata(self, name: str) -> dict[str, Any]:
        """What callers keep about queue `name` (the SQS API keeps its attributes and tags there); {} if none."""
        return self._runtime.metadata(name)

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> Deferred:
        """
        Keep `metadata` for queue `name` in place of what it had, until the queue is deleted;
        anything JSON gives back unchanged (ValueError otherwise). The queue is created if need
        be; the Deferred fires once the metadata is on disk.
        """
        self._check_configurable(name)
        written = self._runtime.set_metadata(name, metadata)
        self._existing_or_new(name)
        return written

    def _check_configurable(self, name: str) -> None:
        self._check_name(name)
        if self.is_alias(name):
            raise InvalidQueueName(f"{name} is an alias, not a queue")

    def _warn_masked_queues(self) -> None:
        masked = sorted(set(self._queues) & set(self.config.aliases))
        if masked:
            self.log.warn("queue name(s) masked by alias(es): {names}", names=", ".join(masked))

    # History (kestrel.history)

    def history(
        self, name: str, since_ms: int, until_ms: int | None, limit: int, cursor: str | None = None
    ) -> Deferred[HistoryPage]:
        """
        A page of the items added to queue `name` with since_ms <= added < until_ms (None: no
        end), in the order added, at most `limit` (1 to 1,000). Errbacks: NoSuchQueue,
        NotRetained, BadCursor, ValueError for a limit out of range or since after until.
        """
        try:
            history = self._history_of(name, since_ms, until_ms)
            if not 1 <= limit <= MAX_PAGE_ENTRIES:
                raise ValueError(f"limit must be 1 to {MAX_PAGE_ENTRIES}, not {limit}")
            return history.read(since_ms, until_ms, limit, cursor)
        except Exception:
            return fail()

    def rewind(self, name: str, since_ms: int, until_ms: int | None = None) -> Deferred[int]:
        """
        Add the retained items added to queue `name` in [since_ms, until_ms) to it again as new
        items, once each, in the order they were added; fires with how many. The copies it
        adds are marked as such in the history, and neither it nor a later rewind adds them
        again. Errbacks as `history`'s.
        """
        try:
            history = self._history_of(name, since_ms, until_ms)
        except Exception:
            return fail()
        return rewind(history, partial(self._queues[name].add, rewound=True), since_ms, until_ms)

    def _history_of(self, name: str, since_ms: int, until_ms: int | None) -> History:
        queue = None if self.is_alias(name) else self._queues.get(name)
        if queue is None:
            raise NoSuchQueue(name)
        if queue.history is None:
            raise NotRetained(name)
        if until_ms is not None and since_ms > until_ms:
            raise ValueError(f"since ({since_ms}) is after until ({until_ms})")
        return queue.history

    # Stats

    def totals(self) -> QueueTotals:
        """Sums over every queue, in one pass: with a million queues, each pass counts."""
        items = size = added = reserved = 0
        for queue in self._queues.values():
            items += queue.items
            size += queue.bytes
            added += queue.total_items
            reserved += queue.config.max_memory_size
        return QueueTotals(items, size, added, reserved / physical_memory())

    def queue_stats(self, names: Iterable[str]) -> list[tuple[str, list[tuple[str, object]]]]:
        """
        Per-queue stats (and alias stats) of the names given, those that exist, without
        creating queues (kestrel.stats_listing chooses the names of a listing).
        """
        report = []
        for name in names:
            if name in self.config.aliases:
                counters = self._alias_counters.get(name, AliasCounters())
                report.append((name, [
                    ("put_items", counters.put_items),
                    ("put_bytes", counters.put_bytes),
                    ("children", ",".join(self.config.aliases[name])),
                ]))
            elif name in self._queues:
                stats: list[tuple[str, object]] = list(self._queues[name].stats())
                if self._children.get(name):
                    stats.append(("children", ",".join(self._children[name])))
                report.append((name, stats))
        return report


def _depth_order(queue: PersistentQueue) -> tuple[int, str]:
    return -queue.items, queue.name
