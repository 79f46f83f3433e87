"""Read-behind (doc/compatibility.md §3.5, §5): a queue bigger than max_memory_size keeps only its head in memory."""

import os

from kestrel.config import QueueConfig
from kestrel.journal import records
from kestrel.journal.disk import ReadBehindCursor
from kestrel.journal.journal import Journal
from kestrel.journal.writer import JournalWriter
from kestrel.queue import PersistentQueue
from kestrel.test.support import (
    ThreadLikeRunner,
    drain,
    fired,
    journal_file_names,
    number_of,
    numbered,
    stat,
)

KIB = dict(max_memory_size=1024)

def counts(queue) -> tuple:
    """(items, bytes, items in memory, bytes in memory)"""
    return (queue.items, queue.bytes, queue.memory_items, queue.memory_bytes)


def fill(queue, numbers, behind_from: int | None = None) -> None:
    for i in numbers:
        assert queue.add(numbered(i))
        if behind_from is not None:
            assert queue.reading_behind == (i >= behind_from), i


def take(queue, transaction: bool = False) -> int:
    item = queue.remove(transaction)
    assert item is not None
    assert len(item.data) == 128
    return number_of(item.data)


def test_queue_drops_into_read_behind_on_add(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10), behind_from=8)
    assert queue.reading_behind
    assert counts(queue) == (10, 1280, 8, 1024)


def test_each_remove_refills_memory_from_the_journal(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10))

    assert take(queue) == 0
    assert queue.reading_behind
    assert counts(queue) == (9, 1152, 8, 1024)

    fill(queue, [10])
    assert queue.reading_behind
    assert counts(queue) == (10, 1280, 8, 1024)

    assert take(queue) == 1
    assert queue.reading_behind
    assert counts(queue) == (9, 1152, 8, 1024)

    assert take(queue) == 2
    assert counts(queue) == (8, 1024, 8, 1024)

    for i in range(3, 11):
        assert take(queue) == i
        left = 10 - i
        assert not queue.reading_behind
        assert counts(queue) == (left, 128 * left, left, 128 * left)


def test_restart_rebuilds_the_read_behind_state(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    queue = harness.restart(queue, **KIB)
    assert queue.reading_behind
    assert counts(queue) == (10, 1280, 8, 1024)

    for i in range(10):
        assert take(queue) == i
        left = 9 - i
        in_memory = min(8, left)
        assert counts(queue) == (left, 128 * left, in_memory, 128 * in_memory)
        if i < 1:
            assert queue.reading_behind
        if i >= 2:
            assert not queue.reading_behind


def test_read_behind_ends_as_soon_as_the_last_item_on_disk_is_in_memory(harness):
    # A deliberate difference from Kestrel's ReadBehindSpec, where the queue keeps reading
    # behind until a later refill looks past the last item: here the count of items on disk
    # says when the cursor is done, so new items go to memory again at once.
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    assert [take(queue), take(queue)] == [0, 1]
    assert counts(queue) == (8, 1024, 8, 1024)
    assert not queue.reading_behind
    queue.add(b"x" * 128)
    assert queue.reading_behind


def test_replay_enters_read_behind_and_leaves_it_after_draining(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10), behind_from=8)
    assert [take(queue) for _ in range(10)] == list(range(10))
    assert not queue.reading_behind
    assert counts(queue) == (0, 0, 0, 0)

    queue = harness.restart(queue, **KIB)
    assert not queue.reading_behind
    assert counts(queue) == (0, 0, 0, 0)


def test_replay_leaves_read_behind_when_the_removes_in_the_journal_drain_the_backlog(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    assert [take(queue) for _ in range(3)] == [0, 1, 2]

    queue = harness.restart(queue, **KIB)
    assert not queue.reading_behind
    assert counts(queue) == (7, 896, 7, 896)
    assert [number_of(data) for data in drain(queue)] == list(range(3, 10))


def test_replay_stays_in_read_behind_while_the_backlog_is_on_disk(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(12))
    assert take(queue) == 0

    queue = harness.restart(queue, **KIB)
    assert queue.reading_behind
    assert counts(queue) == (11, 1408, 8, 1024)
    assert [number_of(data) for data in drain(queue)] == list(range(1, 12))


def test_open_transactions_in_read_behind_are_rolled_back_on_restart(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    assert [take(queue, transaction=True) for _ in range(3)] == [0, 1, 2]

    queue = harness.restart(queue, **KIB)
    assert (queue.items, queue.open_transactions) == (10, 0)
    assert [number_of(data) for data in drain(queue)] == list(range(10))


def test_replay_with_a_running_writer_thread_rebuilds_the_same_queue(harness):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    for _ in range(9):
        take(queue)
    queue.close()
    harness.settle()

    # A writer thread that is idle runs a batch at once; the reactor hears of it later.
    runner = ThreadLikeRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    replayed = PersistentQueue("test", QueueConfig(**KIB), Journal(harness.directory, "test", writer, harness.clock), harness.clock)
    replayed.replay()

    def let_the_reactor_run():
        harness.clock.advance(0)
        while runner.pending:
            runner.deliver()
            harness.clock.advance(0)

    let_the_reactor_run()
    assert replayed.items == 1
    taken = []
    while (item := replayed.remove()) is not None:
        taken.append(number_of(item.data))
        let_the_reactor_run()
    assert taken == [9]


def test_read_behind_survives_the_rotation_of_its_primary_file(harness):
    options = dict(max_memory_size=512, max_journal_size=1024)
    queue = harness.queue(**options)
    fill(queue, range(10), behind_from=4)
    assert queue.journal_rotations >= 2
    assert [take(queue) for _ in range(10)] == list(range(10))
    assert not queue.reading_behind
    assert counts(queue) == (0, 0, 0, 0)


def test_read_behind_follows_several_rotated_files(harness):
    options = dict(max_memory_size=1024, max_journal_size=512)
    queue = harness.queue(**options)
    fill(queue, range(30), behind_from=8)
    assert len(harness.journal_files()) > 2

    assert [take(queue) for _ in range(10)] == list(range(10))
    assert queue.reading_behind
    fill(queue, range(30, 40))
    assert queue.reading_behind

    assert [take(queue) for _ in range(29)] == list(range(10, 39))
    assert not queue.reading_behind

    queue = harness.restart(queue, **options)
    assert (queue.items, queue.reading_behind) == (1, False)
    assert [number_of(data) for data in drain(queue)] == [39]


class PackingScenario:
    """
    A queue held in read-behind for good (128-byte items, 1 KiB of memory, 4 KiB of journal)
    under a mix of adds, removes, opens, confirms and aborts, checked against a model.
    """

    OPTIONS = dict(max_memory_size=1024, max_journal_size=4096)

    def __init__(self, harness):
        self.harness = harness
        self.queue = harness.queue(**self.OPTIONS)
        self.model: list[int] = []
        self.open: dict[int, int] = {}
        self.next_number = 0

    def add(self) -> None:
        number = self.next_number % 1000
        self.next_number += 1
        assert self.queue.add(numbered(number))
        self.model.append(number)

    def remove(self) -> None:
        assert take(self.queue) == self.model.pop(0)

    def open_read(self) -> int:
        item = self.queue.remove(transaction=True)
        assert number_of(item.data) == self.model.pop(0)
        self.open[item.xid] = number_of(item.data)
        return item.xid

    def confirm(self, xid: int) -> None:
        assert self.queue.confirm(xid)
        del self.open[xid]

    def abort(self, xid: int) -> None:
        assert self.queue.unremove(xid)
        self.model.insert(0, self.open.pop(xid))

    def cycle(self, index: int) -> None:
        self.add()
        self.add()
        self.remove()
        xid = self.open_read()
        if index % 4 == 0:
            self.abort(xid)
            self.remove()
        else:
            self.confirm(xid)

    def restart(self) -> None:
        self.queue = self.harness.restart(self.queue, **self.OPTIONS)
        # Reads left open come back to the head, lowest xid first.
        self.model[:0] = [self.open[xid] for xid in sorted(self.open)]
        self.open.clear()
        assert (self.queue.items, self.queue.open_transactions) == (len(self.model), 0)

    def journal_footprint(self) -> tuple[int, int]:
        names = journal_file_names(self.harness.directory, "test")
        return len(names), sum(os.path.getsize(os.path.join(self.harness.directory, name)) for name in names)


def test_item_opened_by_the_remove_that_packs_survives_a_restart(harness):
    options = dict(max_memory_size=256, max_journal_size=512)
    queue = harness.queue(**options)
    fill(queue, range(4))
    assert queue.reading_behind
    assert take(queue) == 0
    fill(queue, range(4, 9))
    files_before = len(harness.journal_files())
    assert files_before >= 4

    assert [take(queue, transaction=True) for _ in range(4)] == [1, 2, 3, 4]
    assert len(harness.journal_files()) < files_before, "no pack happened"

    queue = harness.restart(queue, **options)
    assert drain(queue) == [numbered(i) for i in range(1, 9)]


def test_packing_keeps_a_queue_that_is_always_read_behind(harness):
    scenario = PackingScenario(harness)
    for _ in range(20):
        scenario.add()
    assert scenario.queue.reading_behind
    written = 20 * 149

    for phase in range(6):
        for index in range(40):
            scenario.cycle(index)
        # Two reads stay open over the restart.
        scenario.open_read()
        scenario.open_read()
        assert scenario.queue.reading_behind
        scenario.restart()
        written += 40 * (2 * 149 + 1 + 5 + 5) + 10 * 149

        # Packing keeps the files to a few times max_journal_size, far below what was written.
        file_count, total_bytes = scenario.journal_footprint()
        assert file_count <= 8, phase
        assert total_bytes <= 2 * 4096, phase

    assert written > 5 * 2 * 4096
    assert [number_of(data) for data in drain(scenario.queue)] == scenario.model


def test_a_restarted_queue_packs_the_files_its_cursor_passes(harness):
    # The queue stays behind across a restart; the files it replayed get checkpoints, so once
    # the cursor has read past them they are packed away, not kept forever (Kestrel #124).
    options = dict(max_memory_size=512, max_journal_size=1024)
    queue = harness.queue(**options)
    fill(queue, range(60))
    files_before = len(harness.journal_files())
    assert files_before > 10
    queue = harness.restart(queue, **options)
    assert [take(queue) for _ in range(50)] == list(range(50))
    harness.settle()
    assert len(harness.journal_files()) < files_before / 2
    queue = harness.restart(queue, **options)
    assert [take(queue) for _ in range(10)] == list(range(50, 60))


# When the journal cannot be read back (issue 10)


def failing_reads(monkeypatch, failures: list[BaseException]) -> None:
    """The read-behind cursor raises each of `failures` in turn, then reads as usual."""
    real = ReadBehindCursor.read_items

    def read_items(cursor, *args):
        if failures:
            raise failures.pop(0)
        return real(cursor, *args)

    monkeypatch.setattr(ReadBehindCursor, "read_items", read_items)


def test_a_failing_refill_is_retried_with_back_off_and_logged_once(harness, monkeypatch, captured_logs):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    failing_reads(monkeypatch, [OSError(5, "Input/output error"), OSError(5, "Input/output error")])

    assert [take(queue) for _ in range(8)] == list(range(8))
    assert (queue.items, queue.memory_items, stat(queue, "read_behind_errors")) == (2, 0, 1)
    # While the retry waits, a read that would wait for the disk alone is answered at once.
    assert queue.fetch(transaction=False, peek=False, deadline=None) is None
    harness.clock.advance(1)  # the first retry fails too
    assert stat(queue, "read_behind_errors") == 2
    harness.clock.advance(1)
    assert queue.memory_items == 0
    harness.clock.advance(1)  # the second waits twice as long, and works
    assert queue.memory_items == 2
    assert [take(queue) for _ in range(2)] == [8, 9]
    failures = [message for message in captured_logs.messages() if "read-behind of test failed" in message]
    assert len(failures) == 1
    assert any("read-behind of test works again" in message for message in captured_logs.messages())


def test_a_read_waiting_for_the_disk_keeps_its_deadline(harness, monkeypatch):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    failing_reads(monkeypatch, [OSError(5, "Input/output error")] * 10)
    for _ in range(8):
        take(queue)
    waiting = queue.fetch(transaction=False, peek=False, deadline=harness.clock.seconds() + 0.2)
    answers = fired(waiting)
    assert answers == []
    harness.clock.advance(0.2)
    assert answers == [None]


def test_a_missing_journal_file_loses_only_what_it_held_and_says_so(harness, captured_logs):
    options = dict(max_memory_size=512, max_journal_size=1024)
    queue = harness.queue(**options)
    fill(queue, range(12))
    harness.settle()
    rotated = [name for name in journal_file_names(harness.directory, "test") if name != "test"]
    os.unlink(os.path.join(harness.directory, rotated[-1]))

    taken = []
    while (item := queue.remove()) is not None:
        taken.append(number_of(item.data))
    assert taken[:4] == [0, 1, 2, 3]
    assert stat(queue, "lost_items") == 12 - len(taken)
    assert stat(queue, "read_behind_errors") == 1
    assert (queue.items, queue.reading_behind) == (0, False)
    assert any("DATA MAY HAVE BEEN LOST" in message and "is missing" in message for message in captured_logs.messages())

    fill(queue, [20, 21])
    queue = harness.restart(queue, **options)
    assert [number_of(data) for data in drain(queue)] == [20, 21]


def test_a_damaged_record_met_by_read_behind_is_kept_as_evidence(harness, captured_logs):
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    harness.settle()
    path = os.path.join(harness.directory, "test")
    with open(path, "r+b") as journal:
        journal.seek(-2 * len(records.encode_addx(numbered(0), 0, 0)), os.SEEK_END)
        journal.write(bytes([127]))

    assert [take(queue) for _ in range(8)] == list(range(8))
    assert queue.remove() is None
    assert stat(queue, "lost_items") == 2
    copies = [name for name in os.listdir(harness.directory) if "damaged" in name]
    assert len(copies) == 1
    assert any("DATA MAY HAVE BEEN LOST" in message and copies[0] in message for message in captured_logs.messages())
    fill(queue, [30])
    queue = harness.restart(queue, **KIB)
    assert [number_of(data) for data in drain(queue)] == [30]


def test_a_torn_tail_cut_at_start_up_leaves_no_bytes_in_the_cursor(harness, captured_logs):
    """
    Replay's read-behind reads ahead in the current file, torn tail included, before replay
    reaches that tail and cuts it off. What it read beyond the cut must be forgotten: the
    records written after the restart start where the cut was, not after the torn bytes.
    """
    queue = harness.queue(**KIB)
    fill(queue, range(10))
    assert take(queue) == 0
    queue.close()
    harness.settle()
    with open(os.path.join(harness.directory, "test"), "ab") as journal:
        journal.write(records.encode_addx(b"torn", 0, 0)[:7])

    queue = harness.queue(**KIB)
    assert queue.reading_behind
    fill(queue, [10, 11])
    assert [take(queue) for _ in range(11)] == list(range(1, 12))
    assert queue.remove() is None
    assert (stat(queue, "read_behind_errors"), stat(queue, "lost_items")) == (0, 0)
    assert sum("DATA MAY HAVE BEEN LOST" in message for message in captured_logs.messages()) == 1
