"""
The journal writer (doc/compatibility.md §3.6, §5; doc/architecture.md, "A write, start to
finish", steps 4-5): batches per reactor turn, group commit, fsync policy.
"""

import os

import pytest

from kestrel.journal import records
from kestrel.journal.disk import JournalFiles
from kestrel.journal.journal import Journal
from kestrel.journal.writer import WRITE_DELAY, WRITE_SOON_BYTES, JournalWriter
from kestrel.test.support import RecordingRunner, fired, operation_names, pending_calls

ADD_TIME = 1_700_000_000_000


def addx(data: bytes) -> bytes:
    return records.encode_addx(data, ADD_TIME, 0)


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def writer(clock, runner) -> JournalWriter:
    # write_delay=0: every batch goes at the end of its reactor turn, as it does when a reply
    # waits for it; the delay for batches nothing waits for has tests of its own below.
    writer = JournalWriter(clock, runner=runner, write_delay=0)
    writer.startService()
    return writer


@pytest.fixture
def make_journal(tmp_path, writer, clock):
    def make(name: str = "q", sync_journal=None) -> Journal:
        return Journal(str(tmp_path), name, writer, clock, sync_journal)

    return make


def run_turns(clock, runner) -> None:
    """Reactor turns end and the thread runs each batch, until nothing is left to hand over."""
    clock.advance(0)
    while runner.calls:
        runner.run_all()
        clock.advance(0)


def file_bytes(tmp_path, name: str = "q") -> bytes:
    return (tmp_path / name).read_bytes()


def spy_on_fsync(journal: Journal, log: list, monkeypatch) -> None:
    # On the class: JournalFiles has slots, a million queues being a use case (issue 15).
    files, fsync = journal._files, JournalFiles.fsync

    def spy(self):
        if self is files:
            log.append("fsync")
        fsync(self)

    spy.__name__ = "fsync"
    monkeypatch.setattr(JournalFiles, "fsync", spy)


def test_appends_wait_for_the_end_of_the_reactor_turn(clock, runner, make_journal):
    journal = make_journal()
    journal.append(addx(b"one"))
    assert runner.calls == []
    clock.advance(0)
    assert len(runner.calls) == 1


def test_many_appends_in_one_turn_become_one_write(tmp_path, clock, runner, make_journal):
    journal = make_journal()
    expected = b""
    for i in range(100):
        record = addx(b"item %d" % i)
        journal.append(record)
        expected += record
    clock.advance(0)

    [batch] = runner.batches()
    [(source, operations)] = batch
    assert source is journal
    assert operation_names(operations) == ["write"]
    runner.run_all()
    assert file_bytes(tmp_path) == expected
    assert journal.size == len(expected)


def test_journals_written_in_one_turn_share_one_batch(tmp_path, clock, runner, make_journal):
    first, second = make_journal("a"), make_journal("b")
    first.append(addx(b"1"))
    second.append(addx(b"2"))
    first.append(addx(b"3"))
    clock.advance(0)

    [batch] = runner.batches()
    assert [(source, operation_names(operations)) for source, operations in batch] == [
        (first, ["write"]),
        (second, ["write"]),
    ]
    runner.run_all()
    assert file_bytes(tmp_path, "a") == addx(b"1") + addx(b"3")
    assert file_bytes(tmp_path, "b") == addx(b"2")


def test_operations_keep_their_order_around_a_rotation(tmp_path, clock, runner, make_journal):
    journal = make_journal()
    journal.append(addx(b"old"))
    journal.rotate()
    journal.append(addx(b"new"))
    clock.advance(0)

    [[(_, operations)]] = runner.batches()
    assert operation_names(operations) == ["write", "rotate", "write"]
    runner.run_all()
    [rotated_name, current] = journal.filenames()
    assert rotated_name == "q.1700000000000"
    assert current == "q"
    assert file_bytes(tmp_path, rotated_name) == addx(b"old")
    assert file_bytes(tmp_path) == addx(b"new")


def test_writes_made_while_a_batch_runs_go_in_the_next_batch(tmp_path, clock, runner, make_journal):
    journal = make_journal()
    journal.append(addx(b"first"))
    clock.advance(0)
    assert len(runner.calls) == 1

    journal.append(addx(b"second"))
    journal.append(addx(b"third"))
    clock.advance(0)
    assert len(runner.calls) == 1, "a second batch started while the first was on the thread"

    runner.run_next()
    clock.advance(0)
    assert len(runner.calls) == 1
    [[(_, operations)]] = runner.batches()
    assert operation_names(operations) == ["write"]
    runner.run_next()
    assert file_bytes(tmp_path) == addx(b"first") + addx(b"second") + addx(b"third")


def test_sync_journal_zero_fsyncs_each_batch_after_its_writes(clock, runner, make_journal):
    journal = make_journal(sync_journal=0.0)
    journal.append(addx(b"a"))
    journal.append(addx(b"b"))
    clock.advance(0)
    [[(_, operations)]] = runner.batches()
    assert operation_names(operations) == ["write", "fsync"]


def test_durable_fires_only_after_the_batch_and_its_fsync_ran(clock, runner, make_journal, monkeypatch):
    journal = make_journal(sync_journal=0.0)
    log: list[str] = []
    spy_on_fsync(journal, log, monkeypatch)
    journal.append(addx(b"a"))
    durable = journal.durable()
    durable.addCallback(lambda _: log.append("durable"))

    clock.advance(0)
    assert log == []
    runner.run_all()
    assert log == ["fsync", "durable"]


def test_durable_waits_for_the_batch_that_holds_the_record(clock, runner, make_journal):
    journal = make_journal(sync_journal=0.0)
    journal.append(addx(b"a"))
    clock.advance(0)
    journal.append(addx(b"b"))
    durable_b = fired(journal.durable())

    runner.run_next()
    assert durable_b == [], "fired before the batch holding b ran"
    runner.run_next()
    assert durable_b == [None]


def test_durable_with_nothing_pending_fires_at_once(make_journal):
    journal = make_journal(sync_journal=0.0)
    assert fired(journal.durable()) == [None]


@pytest.mark.parametrize("sync_journal", [None, 0.1])
def test_durable_is_only_for_sync_journal_zero(make_journal, sync_journal):
    journal = make_journal(sync_journal=sync_journal)
    journal.append(addx(b"a"))
    assert journal.durable() is None


def test_no_sync_journal_never_fsyncs(clock, runner, make_journal):
    journal = make_journal(sync_journal=None)
    journal.append(addx(b"a"))
    clock.advance(0)
    runner.run_all()
    clock.advance(3600)
    assert runner.calls == []
    assert pending_calls(clock) == []


def test_periodic_sync_fsyncs_once_per_period_while_there_are_unsynced_writes(clock, runner, make_journal):
    journal = make_journal(sync_journal=0.1)
    journal.append(addx(b"a"))
    journal.append(addx(b"b"))
    clock.advance(0)
    runner.run_all()
    assert [call.getTime() for call in pending_calls(clock)] == [pytest.approx(clock.seconds() + 0.1)]

    journal.append(addx(b"c"))
    clock.advance(0)
    runner.run_all()
    assert len(pending_calls(clock)) == 1, "a second fsync was scheduled in the same period"

    clock.advance(0.1)
    clock.advance(0)
    [[(_, operations)]] = runner.batches()
    assert operation_names(operations) == ["fsync_aside"]
    runner.run_all()

    clock.advance(10)
    assert runner.calls == [], "fsync scheduled without unsynced writes"
    assert pending_calls(clock) == []


def test_periodic_sync_starts_again_with_the_next_write(clock, runner, make_journal):
    journal = make_journal(sync_journal=0.1)
    journal.append(addx(b"a"))
    clock.advance(0.1)
    run_turns(clock, runner)
    assert pending_calls(clock) == []

    journal.append(addx(b"b"))
    assert len(pending_calls(clock)) == 2  # end of turn, and the next fsync
    clock.advance(0.1)
    clock.advance(0)
    names = []
    while runner.calls:
        [[(_, operations)]] = runner.batches()[:1]
        names.append(operation_names(operations))
        runner.run_next()
        clock.advance(0)
    assert names == [["write"], ["fsync_aside"]]


def test_closing_a_journal_cancels_its_periodic_sync(clock, runner, make_journal):
    journal = make_journal(sync_journal=0.1)
    journal.append(addx(b"a"))
    journal.close()
    clock.advance(0)
    runner.run_all()
    clock.advance(1)
    assert runner.calls == []
    assert pending_calls(clock) == []


def test_stop_service_drains_every_queued_write(tmp_path, clock, runner, writer, make_journal):
    journal = make_journal()
    journal.append(addx(b"in flight"))
    clock.advance(0)
    journal.append(addx(b"queued"))

    stopped = fired(writer.stopService())
    assert stopped == []
    runner.run_next()
    assert stopped == []
    runner.run_next()
    assert stopped == [None]
    assert file_bytes(tmp_path) == addx(b"in flight") + addx(b"queued")


def test_stop_service_with_nothing_queued_stops_at_once(writer):
    assert fired(writer.stopService()) == [None]


def test_a_failed_write_stops_that_journal_only(tmp_path, clock, runner, make_journal, monkeypatch):
    broken, healthy = make_journal("broken", sync_journal=0.0), make_journal("healthy")
    write = JournalFiles.write

    def fail(self, data, owes_sync=False):
        if self is broken._files:
            raise OSError("disk full")
        write(self, data, owes_sync)

    fail.__name__ = "write"
    monkeypatch.setattr(JournalFiles, "write", fail)
    broken.append(addx(b"lost"))
    broken.rotate()
    healthy.append(addx(b"kept"))
    durable = fired(broken.durable())
    clock.advance(0)
    runner.run_all()

    assert durable[0].check(OSError)
    assert broken.failure is not None
    assert not os.path.exists(tmp_path / f"{broken.filenames()[0]}")
    assert healthy.failure is None
    assert file_bytes(tmp_path, "healthy") == addx(b"kept")


def test_a_lost_batch_marks_every_journal_in_it_failed(clock, runner, make_journal):
    journal = make_journal()
    journal.append(addx(b"lost"))
    clock.advance(0)
    _, _, result = runner.calls.pop(0)
    result.errback(RuntimeError("thread pool stopped"))

    assert journal.failure is not None


def test_replies_wait_for_a_writer_that_lags_far_behind(clock, runner, writer, make_journal):
    writer.max_unwritten_bytes = 1000
    journal = make_journal(sync_journal=None)
    journal.append(records.encode_addx(b"x" * 400, 1, 0))
    assert journal.durable() is None  # never-synced, and the writer keeps up
    clock.advance(0)  # the first batch goes to the thread and stays there
    for _ in range(3):
        journal.append(records.encode_addx(b"x" * 400, 1, 0))
    assert writer.behind()
    waiting = journal.durable()
    assert waiting is not None and not waiting.called
    runner.run_next()  # the first batch; the next one, with our records, goes out
    assert not waiting.called
    runner.run_next()
    assert waiting.called and not writer.behind()


# Periodic fsyncs on their own thread (issue 10, defect 5)


class HeldSyncs:
    """An fsync thread that runs each periodic fsync only when the test says."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, function, *args) -> None:
        self.calls.append((function, args))

    def run_all(self) -> None:
        while self.calls:
            function, args = self.calls.pop(0)
            function(*args)


@pytest.fixture
def syncs() -> HeldSyncs:
    return HeldSyncs()


@pytest.fixture
def now() -> list[float]:
    """What the syncing writer's timer says; tests move it by hand."""
    return [100.0]


@pytest.fixture
def syncing_writer(clock, runner, syncs, now) -> JournalWriter:
    # The reactor hears of a finished fsync at once: the test is the reactor.
    writer = JournalWriter(
        clock, runner=runner, sync_runner=syncs, call_from_thread=lambda function: function(), timer=lambda: now[0],
        write_delay=0,
    )
    writer.startService()
    return writer


def period_passes(clock, runner, journal, data: bytes) -> None:
    journal.append(addx(data))
    clock.advance(0.1)
    run_turns(clock, runner)


def test_periodic_fsyncs_of_a_journal_coalesce_while_one_waits_for_the_fsync_thread(tmp_path, clock, runner, syncs, syncing_writer):
    journal = Journal(str(tmp_path), "q", syncing_writer, clock, 0.1)
    for data in (b"a", b"b", b"c", b"d"):
        period_passes(clock, runner, journal, data)
    assert len(syncs.calls) == 1, "a slow disk must not collect one fsync per period"

    syncs.run_all()
    period_passes(clock, runner, journal, b"e")
    assert len(syncs.calls) == 1


def test_replies_wait_for_a_periodic_fsync_that_takes_longer_than_its_period(
    tmp_path, clock, runner, syncs, syncing_writer, now
):
    journal = Journal(str(tmp_path), "q", syncing_writer, clock, 0.1)
    period_passes(clock, runner, journal, b"a")
    assert len(syncs.calls) == 1
    journal.append(addx(b"b"))
    assert journal.durable() is None, "the fsync has not taken a period yet"

    now[0] += 0.2
    assert syncing_writer.behind(0.1)
    waiting = journal.durable()
    assert waiting is not None
    answers = fired(waiting)
    clock.advance(0)
    runner.run_all()
    assert answers == [], "the reply went out while the late fsync still ran"
    syncs.run_all()
    assert answers == [None]
    assert not syncing_writer.behind(0.1)


# Batches that nothing waits for go after the write delay (issue 11)


@pytest.fixture
def delayed_writer(clock, runner) -> JournalWriter:
    """The writer as the server makes it: batches nothing waits for go after WRITE_DELAY."""
    writer = JournalWriter(clock, runner=runner)
    writer.startService()
    return writer


def test_writes_that_nothing_waits_for_go_to_the_thread_after_the_write_delay(tmp_path, clock, runner, delayed_writer):
    journal = Journal(str(tmp_path), "q", delayed_writer, clock)
    journal.append(addx(b"a"))
    assert journal.durable() is None
    clock.advance(0)
    clock.advance(WRITE_DELAY / 2)
    journal.append(addx(b"b"))
    assert runner.calls == [], "the thread was woken before the write delay"
    clock.advance(WRITE_DELAY / 2)
    [[(_, operations)]] = runner.batches()
    assert operation_names(operations) == ["write"]
    runner.run_all()
    assert file_bytes(tmp_path) == addx(b"a") + addx(b"b")


def test_a_reply_that_waits_for_its_write_sends_the_batch_at_the_end_of_the_turn(clock, runner, delayed_writer, tmp_path):
    journal = Journal(str(tmp_path), "q", delayed_writer, clock, 0.0)
    journal.append(addx(b"a"))
    answers = fired(journal.durable())
    clock.advance(0)
    assert len(runner.calls) == 1
    runner.run_all()
    assert answers == [None]


def test_a_finished_batch_hands_over_at_once_only_what_a_reply_waits_for(clock, runner, delayed_writer, tmp_path):
    waited = Journal(str(tmp_path), "waited", delayed_writer, clock, 0.0)
    unwaited = Journal(str(tmp_path), "unwaited", delayed_writer, clock)
    unwaited.append(addx(b"a"))
    clock.advance(WRITE_DELAY)
    assert len(runner.calls) == 1
    unwaited.append(addx(b"b"))
    runner.run_next()
    assert runner.calls == [], "nothing waits: the next batch waits for the delay"
    clock.advance(WRITE_DELAY)
    assert len(runner.calls) == 1
    waited.append(addx(b"c"))
    answers = fired(waited.durable())
    runner.run_next()
    assert len(runner.calls) == 1, "a reply waits: the next batch goes as the last one finishes"
    runner.run_all()
    assert answers == [None]


def test_a_batch_of_64_kb_goes_at_the_end_of_the_turn(tmp_path, clock, runner, delayed_writer):
    journal = Journal(str(tmp_path), "q", delayed_writer, clock)
    journal.append(addx(b"x" * 1000))
    clock.advance(0)
    assert runner.calls == []
    while delayed_writer.unwritten_bytes <= WRITE_SOON_BYTES:
        journal.append(addx(b"x" * 1000))
    clock.advance(0)
    assert len(runner.calls) == 1, "a big batch waited for the write delay"
    for _ in range(70):
        journal.append(addx(b"x" * 1000))
    runner.run_next()
    clock.advance(0)
    assert len(runner.calls) == 1, "a big batch queued while one ran waited for the write delay"
