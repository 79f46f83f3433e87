"""Journal files open only while in use, under a cap, least recently written closed first (issue 15)."""

from __future__ import annotations

import os
import resource

import pytest
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock

from kestrel.config import ServerConfig
from kestrel.journal import disk, writer
from kestrel.journal.writer import MAX_OPEN_JOURNALS, WRITE_RETRY_INTERVAL, JournalWriter, default_max_open_journals
from kestrel.tap import KestrelService
from kestrel.test.support import QueueHarness, drain, numbered, pending_calls


def open_files_under(directory: str) -> int:
    """Descriptors of this process open on files in `directory` (journal writes and reads alike)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor of the listing itself, closed by now
            continue
        if os.path.dirname(target) == directory:
            count += 1
    return count


@pytest.fixture
def harness(tmp_path) -> QueueHarness:
    harness = QueueHarness(str(tmp_path))
    harness.writer.open_journals.cap = 3
    return harness


def test_the_cap_holds_with_more_journals_than_it(harness):
    queues = [harness.queue(f"q{number}") for number in range(10)]
    for round_ in range(3):
        for queue in queues:
            queue.add(numbered(round_))
            harness.settle()
            assert len(harness.writer.open_journals) <= 3
            assert open_files_under(harness.directory) <= 3
    assert len(harness.writer.open_journals) == 3


def test_the_least_recently_written_file_closes_first(harness):
    first, second, third, fourth = (harness.queue(f"q{number}") for number in range(4))
    for queue in (first, second, third, first):
        queue.add(b"x")
        harness.settle()
    fourth.add(b"x")
    harness.settle()
    assert [queue.journal._files.is_open for queue in (first, second, third, fourth)] == [True, False, True, True]


def test_a_reopened_file_is_appended_to_and_replays_every_item_in_order(harness):
    harness.writer.open_journals.cap = 1
    queues = [harness.queue(f"q{number}") for number in range(3)]
    for index in range(20):
        for queue in queues:
            queue.add(numbered(index))
        harness.settle()  # each batch reopens every file but the last one written
    restarted = [harness.restart(queue) for queue in queues]
    for queue in restarted:
        assert drain(queue) == [numbered(index) for index in range(20)]


def test_read_behind_reads_across_closed_files_and_holds_no_descriptor_between_refills(harness):
    harness.writer.open_journals.cap = 1
    behind = harness.queue("behind", max_memory_size=1024)
    other = harness.queue("other")
    for index in range(40):
        behind.add(numbered(index))
        other.add(numbered(index))  # closes behind's file, on the cap of one
        harness.settle()
    assert behind.reading_behind
    taken = []
    while (item := behind.remove()) is not None:
        taken.append(item.data)
        harness.settle()  # the refill runs: the cursor opens its file and closes it again
        assert open_files_under(harness.directory) <= 1
    assert taken == [numbered(index) for index in range(40)]


@pytest.fixture
def fsyncs(monkeypatch) -> list[str]:
    """The names of the files fsynced, in order, closes noted as `close <name>`."""
    log: list[str] = []
    real_fsync, real_close = os.fsync, os.close

    def name_of(fd: int) -> str:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))

    def fsync(fd: int) -> None:
        log.append(name_of(fd))
        real_fsync(fd)

    def close(fd: int) -> None:
        log.append(f"close {name_of(fd)}")
        real_close(fd)

    monkeypatch.setattr(disk.os, "fsync", fsync)
    monkeypatch.setattr(disk.os, "close", close)
    return log


def test_a_file_closed_for_the_cap_gets_the_fsync_its_period_owes_first(harness, fsyncs):
    harness.writer.open_journals.cap = 1
    periodic = harness.queue("periodic", sync_journal=60.0)
    never = harness.queue("never")
    other = harness.queue("other")
    periodic.add(b"owed")
    harness.settle()
    never.add(b"nothing owed")
    harness.settle()
    other.add(b"x")
    harness.settle()
    assert fsyncs == ["periodic", "close periodic", "close never"]
    # The periodic fsync then finds the file closed, with nothing left to do.
    harness.clock.advance(60)
    harness.settle()
    assert fsyncs == ["periodic", "close periodic", "close never"]


def test_a_write_that_cannot_reopen_its_file_is_retried(harness, monkeypatch):
    harness.writer.open_journals.cap = 1
    queue, other = harness.queue("q"), harness.queue("other")
    queue.add(numbered(0))
    harness.settle()
    other.add(b"x")
    harness.settle()
    real_open = os.open
    failures = []

    def failing_open(path, *args, **kwargs):
        if os.path.basename(path) == "q" and not failures:
            failures.append(path)
            raise OSError(24, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(disk.os, "open", failing_open)
    queue.add(numbered(1))
    harness.settle()
    assert failures and queue.journal.failure is not None
    harness.clock.advance(WRITE_RETRY_INTERVAL)
    harness.settle()
    assert queue.journal.failure is None
    assert drain(harness.restart(queue)) == [numbered(0), numbered(1)]


def test_a_file_not_written_for_an_idle_period_closes_and_an_idle_server_keeps_no_timer(tmp_path):
    harness = QueueHarness(str(tmp_path))
    harness.writer = JournalWriter(harness.clock, runner=maybeDeferred, idle_journal_seconds=10.0)
    harness.writer.startService()
    busy, idle = harness.queue("busy"), harness.queue("idle")
    idle.add(b"x")
    busy.add(b"x")
    harness.settle()
    for _ in range(5):
        harness.clock.advance(5)
        busy.add(b"x")
        harness.settle()
    # Sweeps at 10 s (both had been written since the writes began) and 25 s (only busy had).
    assert (busy.journal._files.is_open, idle.journal._files.is_open) == (True, False)
    for _ in range(4):  # one sweep finds busy written since the last, a later one closes it
        harness.clock.advance(10)
    assert len(harness.writer.open_journals) == 0
    assert pending_calls(harness.clock) == []
    assert open_files_under(harness.directory) == 0
    busy.add(b"y")
    harness.settle()
    assert busy.journal._files.is_open
    assert drain(harness.restart(busy)) == [b"x"] * 6 + [b"y"]


def quiet_config(tmp_path, **options) -> ServerConfig:
    return ServerConfig(
        queue_path=str(tmp_path), memcache_listen="", text_listen="", thrift_listen="", admin_listen="", **options,
    )


def test_the_server_caps_its_journal_files_as_configured_or_by_its_descriptor_limit(tmp_path):
    assert KestrelService(quiet_config(tmp_path, max_open_journals=7), reactor=Clock()).writer.open_journals.cap == 7
    assert KestrelService(quiet_config(tmp_path), reactor=Clock()).writer.open_journals.cap == default_max_open_journals()


@pytest.mark.parametrize(
    ("soft_limit", "cap"), [(1024, 512), (65536, MAX_OPEN_JOURNALS), (resource.RLIM_INFINITY, MAX_OPEN_JOURNALS)],
)
def test_the_default_cap_leaves_half_the_descriptor_limit_to_the_rest(monkeypatch, soft_limit, cap):
    monkeypatch.setattr(writer.resource, "getrlimit", lambda which: (soft_limit, resource.RLIM_INFINITY))
    assert default_max_open_journals() == cap


def test_a_queue_closed_for_idleness_reopens_with_its_items(tmp_path):
    harness = QueueHarness(str(tmp_path))
    harness.writer = JournalWriter(harness.clock, runner=maybeDeferred, idle_journal_seconds=10.0)
    harness.writer.startService()
    queue = harness.queue("idle")
    for index in range(3):
        queue.add(numbered(index))
    harness.settle()
    for _ in range(4):  # one sweep finds it written since the writes began, a later one closes it
        harness.clock.advance(10)
    assert not queue.journal._files.is_open and open_files_under(harness.directory) == 0
    # Its items are still served, and what is done with them is journaled in the reopened file.
    assert queue.remove().data == numbered(0)
    queue.add(numbered(3))
    harness.settle()
    assert queue.journal._files.is_open
    assert drain(harness.restart(queue)) == [numbered(index) for index in (1, 2, 3)]
