"""
History, retention and rewind in the engine (kestrel.history, issue 15): a collection on the
harness's clock and synchronous writer (support.synchronous_writer: batches run at once on
this thread, so a read's Deferred has fired once the turn is settled; it defers nothing
that the real writer thread would not).
"""

import os

import pytest
from twisted.python.failure import Failure

from kestrel.config import QueueConfig, ServerConfig
from kestrel.history import BadCursor, HistoryEntry, NoSuchQueue, NotRetained
from kestrel.history.log import SEGMENT_SPAN_MS
from kestrel.history.segments import history_directory
from kestrel.journal.writer import JournalWriter
from kestrel.test.support import (
    RecordingRunner,
    collection_on,
    drain,
    fired,
    number_of,
    numbered,
    restart_collection,
)

HOUR = 3600.0


def now_ms(harness) -> int:
    return int(harness.clock.seconds() * 1000)


def retaining(harness, retain: float = HOUR, **options):
    return collection_on(harness, default_queue=QueueConfig(retain=retain, **options))


def page(collection, name="q", since=0, until=None, limit=1000, cursor=None):
    result = fired(collection.history(name, since, until, limit, cursor))
    assert result, "the read did not fire"
    if isinstance(result[0], Exception) or hasattr(result[0], "raiseException"):
        result[0].raiseException()
    return result[0]


def read_all(collection, name="q", since=0, until=None, limit=1000):
    """Every entry of the window, page by page; and how many pages it took."""
    entries, cursor, pages = [], None, 0
    while True:
        found = page(collection, name, since, until, limit, cursor)
        entries += found.entries
        pages += 1
        if found.next is None:
            return entries, pages
        assert pages < 1000
        cursor = found.next


def segments(harness, name="q") -> list[str]:
    directory = history_directory(harness.directory, name)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# What history reads give


def test_a_read_gives_each_item_added_in_order_with_when_and_how_it_left(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    for data in (b"got", b"confirmed", b"aborted", b"queued"):
        kestrel.add("q", data)
        harness.clock.advance(1)
    assert kestrel.fetch("q").data == b"got"
    got_at = now_ms(harness)
    confirmed, aborted = kestrel.fetch("q", transaction=True), kestrel.fetch("q", transaction=True)
    harness.clock.advance(1)
    assert kestrel.confirm("q", confirmed.xid) and kestrel.unremove("q", aborted.xid)
    assert page(kestrel).entries == [
        HistoryEntry(start, got_at, "read", b"got", False),
        HistoryEntry(start + 1000, now_ms(harness), "read", b"confirmed", False),
        HistoryEntry(start + 2000, None, None, b"aborted", False),  # an aborted read is no leave
        HistoryEntry(start + 3000, None, None, b"queued", False),
    ]


def test_a_full_queue_discards_its_oldest(harness):
    kestrel = retaining(harness, max_items=2, discard_old_when_full=True)
    for data in (b"one", b"two", b"three"):
        kestrel.add("q", data)
    assert [(entry.data, entry.outcome) for entry in page(kestrel).entries] == [
        (b"one", "discarded"), (b"two", None), (b"three", None)]


def test_a_continued_read_leaves_and_adds(harness):
    kestrel = retaining(harness)
    kestrel.add("q", b"first")
    opened = kestrel.fetch("q", transaction=True)
    harness.clock.advance(1)
    assert kestrel.queue("q").continue_transaction(opened.xid, b"next")
    assert [(entry.data, entry.outcome) for entry in page(kestrel).entries] == [(b"first", "read"), (b"next", None)]


def test_expiry_flush_and_open_reads(harness):
    kestrel = retaining(harness)
    kestrel.add("q", b"expires", now_ms(harness) + 1000)
    for data in (b"open", b"flushed", b"flushed too"):
        kestrel.add("q", data)
    harness.clock.advance(2)
    assert kestrel.flush_expired("q") == 1
    expired_at = now_ms(harness)
    opened = kestrel.fetch("q", transaction=True)
    harness.clock.advance(1)
    kestrel.flush("q")
    flushed_at = now_ms(harness)
    harness.clock.advance(1)
    assert kestrel.confirm("q", opened.xid)  # the read the flush left open
    entries = page(kestrel).entries
    assert [(entry.data, entry.consumed, entry.outcome) for entry in entries] == [
        (b"expires", expired_at, "expired"),
        (b"open", now_ms(harness), "read"),
        (b"flushed", flushed_at, "flushed"),
        (b"flushed too", flushed_at, "flushed"),
    ]


def test_a_flush_of_a_queue_reading_behind_flushes_what_waits_on_disk(harness):
    kestrel = retaining(harness, max_memory_size=256)
    for index in range(6):
        kestrel.add("q", numbered(index))
        harness.clock.advance(40)  # across segments
    assert kestrel.queue("q").reading_behind
    kestrel.flush("q")
    assert [entry.outcome for entry in page(kestrel).entries] == ["flushed"] * 6


def test_identical_items_added_in_one_millisecond_are_matched_in_order(harness):
    kestrel = retaining(harness)
    for _ in range(3):
        kestrel.add("q", b"same")
    kestrel.fetch("q")
    harness.clock.advance(1)
    kestrel.fetch("q")
    assert [entry.outcome for entry in page(kestrel).entries] == ["read", "read", None]


def test_a_window_holds_the_adds_from_since_up_to_until(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    for index in range(10):
        kestrel.add("q", numbered(index))
        harness.clock.advance(30)  # two adds a segment
    def numbers(since, until):
        return [number_of(entry.data) for entry in read_all(kestrel, since=since, until=until)[0]]
    assert numbers(start, None) == list(range(10))
    assert numbers(start + 30_000, start + 90_000) == [1, 2]
    assert numbers(start + 29_999, start + 30_001) == [1]
    assert numbers(start + 30_001, start + 60_000) == []
    assert numbers(start + 300_000, None) == []
    assert numbers(0, start) == []


def test_pages_give_every_item_once_across_segments(harness):
    kestrel = retaining(harness)
    for index in range(25):
        kestrel.add("q", numbered(index))
        if index % 4 == 0:
            harness.clock.advance(SEGMENT_SPAN_MS / 1000)
        if index % 3 == 0:
            kestrel.fetch("q")
    assert len(segments(harness)) >= 6
    for limit in (1, 2, 3, 7, 25, 1000):
        entries, pages = read_all(kestrel, limit=limit)
        assert [number_of(entry.data) for entry in entries] == list(range(25))
        assert pages <= 25 // limit + 2
        assert [entry.outcome for entry in entries[:9]] == ["read"] * 9


def test_a_segment_rolls_at_its_size_but_never_within_one_millisecond(harness, monkeypatch):
    from kestrel.history import log

    monkeypatch.setattr(log, "SEGMENT_BYTES", 100)
    kestrel = retaining(harness)
    start = now_ms(harness)
    for index in range(3):
        kestrel.add("q", numbered(index, 80))
    harness.clock.advance(0.001)
    kestrel.add("q", numbered(3, 80))
    harness.settle()
    assert segments(harness) == [str(start), str(start + 1)]
    assert [number_of(entry.data) for entry in page(kestrel, since=start).entries] == [0, 1, 2, 3]
    assert [number_of(entry.data) for entry in page(kestrel, since=start, until=start + 1).entries] == [0, 1, 2]


def test_adds_keep_their_order_when_the_clock_steps_back(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    kestrel.add("q", b"one")
    harness.clock.advance(-5)
    kestrel.add("q", b"two")
    assert [(entry.data, entry.added) for entry in page(kestrel, since=start).entries] == [
        (b"one", start), (b"two", start)]


def test_a_page_stops_at_its_byte_budget(harness, monkeypatch):
    from kestrel.history import log

    monkeypatch.setattr(log, "PAGE_BYTES", 300)
    kestrel = retaining(harness)
    for index in range(5):
        kestrel.add("q", numbered(index, 200))
    first = page(kestrel)
    assert [number_of(entry.data) for entry in first.entries] == [0, 1]
    assert [number_of(entry.data) for entry in read_all(kestrel)[0]] == list(range(5))


def test_bad_reads_are_refused_with_a_reason(harness):
    kestrel = collection_on(harness, queue_overrides={"q": {"retain": HOUR}}, aliases={"both": ["q", "plain"]})
    kestrel.add("q", b"one")
    kestrel.add("plain", b"one")
    for name, error, reason in [
        ("missing", NoSuchQueue, "no such queue: missing"),
        ("both", NoSuchQueue, "no such queue: both"),
        ("plain", NotRetained, "queue plain keeps no history"),
    ]:
        with pytest.raises(error, match=reason):
            page(kestrel, name)
    assert "missing" not in kestrel
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="limit must be 1 to 1000"):
            page(kestrel, limit=limit)
    with pytest.raises(ValueError, match="since"):
        page(kestrel, since=10, until=9)
    assert page(kestrel, since=10, until=10).entries == []
    with pytest.raises(BadCursor):
        page(kestrel, cursor="junk")
    kestrel.add("q", b"two")
    cursor = page(kestrel, limit=1).next
    with pytest.raises(BadCursor, match="another window"):
        page(kestrel, since=1, cursor=cursor)
    from kestrel.history import cursor as cursors
    from kestrel.history.cursor import Position

    segment = int(segments(harness)[0])
    past_end = cursors.encode("q", 0, None, Position(segment, 10_000))
    with pytest.raises(BadCursor, match="past the end"):
        page(kestrel, cursor=past_end)
    never = cursors.encode("q", 0, None, Position(segment + 1, 0))
    with pytest.raises(BadCursor, match="never had"):
        page(kestrel, cursor=never)


def test_a_queue_without_retain_has_no_history_and_no_disk_stats(harness):
    kestrel = collection_on(harness)
    kestrel.add("q", b"one")
    queue = kestrel.queue("q")
    assert queue.history is None
    assert "disk_bytes" not in dict(queue.stats())
    assert not os.path.exists(os.path.join(harness.directory, ".history"))


# History through the journal's upkeep, and a restart


def test_history_holds_through_rotations_rewrites_packs_and_a_restart(harness):
    options = dict(max_memory_size=256, max_journal_size=512, default_journal_size=256, min_journal_compact_delay=0)
    kestrel = retaining(harness, **options)
    added = 0
    reads = []
    for round in range(6):
        for _ in range(5):
            kestrel.add("q", numbered(added))
            added += 1
            harness.clock.advance(7)
        for _ in range(3):
            item = kestrel.fetch("q", transaction=True)
            reads.append(number_of(item.data))
            assert kestrel.confirm("q", item.xid)
        if round == 2:  # empty, so that the journal is rewritten
            reads += [number_of(data) for data in drain(kestrel.queue("q"))]
    queue = kestrel.queue("q")
    assert queue.journal_rotations and queue.journal_rewrites and queue.reading_behind
    harness.settle()

    def check(collection, read):
        entries, _ = read_all(collection, limit=4)
        assert [number_of(entry.data) for entry in entries] == list(range(added))
        assert [number_of(entry.data) for entry in entries if entry.outcome == "read"] == read
        assert all(entry.outcome is None for entry in entries if number_of(entry.data) not in read)

    check(kestrel, reads)
    kestrel = restart_collection(harness, kestrel, default_queue=QueueConfig(retain=HOUR, **options))
    check(kestrel, reads)
    # After the restart, leaves are matched to adds made before it, and new adds go on.
    harness.clock.advance(1)
    reads += [number_of(data) for data in drain(kestrel.queue("q"))]
    kestrel.add("q", numbered(added))
    added += 1
    assert reads == list(range(added - 1))
    check(kestrel, reads)


def test_a_torn_tail_left_by_a_crash_is_cut_before_the_segment_is_written(harness, captured_logs):
    kestrel = retaining(harness)
    kestrel.add("q", b"one")
    kestrel.add("q", b"two")
    kestrel.close()
    harness.settle()
    path = os.path.join(history_directory(harness.directory, "q"), segments(harness)[0])
    with open(path, "ab") as segment:
        segment.write(b"\x01\x02")  # half a record
    kestrel = retaining(harness)
    assert kestrel.fetch("q").data == b"one"
    harness.settle()
    assert [(entry.data, entry.outcome) for entry in page(kestrel).entries] == [(b"one", "read"), (b"two", None)]
    assert any("cut 2 bytes" in message for message in captured_logs.messages())
    assert kestrel.queue("q").history.retained_bytes == os.path.getsize(path)


# Retention


def step(harness, seconds: int) -> None:
    """Advance the clock a second at a time, so that each sweep runs when it is due."""
    for _ in range(seconds):
        harness.clock.advance(1)
    harness.settle()


def test_segments_stay_while_an_add_in_them_is_retained_and_go_after(harness):
    kestrel = retaining(harness, retain=300)  # swept every 30 s
    start = now_ms(harness)
    for at, data in ((0, b"a"), (50, b"b"), (70, b"c"), (120, b"d")):  # c: 60 s after a, a new segment
        step(harness, at - (now_ms(harness) - start) // 1000)
        kestrel.add("q", data * 100)
    harness.settle()
    queue = kestrel.queue("q")
    assert segments(harness) == [str(start), str(start + 70_000)]
    retained = queue.history.retained_bytes
    assert retained == sum(os.path.getsize(os.path.join(history_directory(harness.directory, "q"), name))
                           for name in segments(harness))
    stats = dict(queue.stats())
    assert stats["retained_bytes"] == retained
    assert stats["disk_bytes"] == queue.journal.size + queue.journal.archived + retained

    # b, added at 50 s, keeps the first segment until it is 300 s old: the sweep at 360 s drops it.
    step(harness, 359 - 120)
    assert len(segments(harness)) == 2
    step(harness, 2)
    assert segments(harness) == [str(start + 70_000)]
    assert [entry.data[:1] for entry in page(kestrel).entries] == [b"c", b"d"]
    assert queue.history.retained_bytes < retained
    # The newest segment goes too once its last add (d, 120 s) is past retain; the items stay.
    step(harness, 449 - 361)
    assert len(segments(harness)) == 1
    step(harness, 2)
    assert segments(harness) == []
    assert (page(kestrel).entries, queue.history.retained_bytes, queue.items) == ([], 0, 4)
    kestrel.add("q", b"e")
    assert [entry.data for entry in page(kestrel).entries] == [b"e"]


def test_a_cursor_into_a_dropped_segment_goes_on_from_the_oldest_kept(harness):
    kestrel = retaining(harness, retain=1000)  # swept every 60 s
    for index in range(5):
        if index:
            step(harness, 61)
        kestrel.add("q", numbered(index))
    cursor = page(kestrel, limit=1).next
    step(harness, 1182 - 244)  # keeps the adds of the last 1,000 s: at 183 s and 244 s
    assert len(segments(harness)) == 2
    assert [number_of(entry.data) for entry in page(kestrel, cursor=cursor).entries] == [3, 4]
    step(harness, 100)
    assert page(kestrel, cursor=cursor).entries == []


def test_retain_turned_off_erases_the_history_and_turned_on_starts_one(harness):
    kestrel = retaining(harness)
    kestrel.add("q", b"one")
    harness.settle()
    assert segments(harness)
    kestrel.reload(ServerConfig(queue_path=harness.directory))
    harness.settle()
    assert segments(harness) == [] and kestrel.queue("q").history is None
    with pytest.raises(NotRetained):
        page(kestrel)
    kestrel.reload(ServerConfig(queue_path=harness.directory, default_queue=QueueConfig(retain=60)))
    kestrel.add("q", b"two")
    assert [entry.data for entry in page(kestrel).entries] == [b"two"]
    # A start without retain erases it too.
    kestrel = restart_collection(harness, kestrel)
    assert not os.path.exists(history_directory(harness.directory, "q"))


def test_retain_given_at_run_time_and_a_new_queue_lists_no_folder(harness, monkeypatch):
    kestrel = collection_on(harness)
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(path) or real_scandir(path))
    fired(kestrel.configure("q", {"retain": "1h"}))
    kestrel.add("q", b"one")
    assert [entry.data for entry in page(kestrel).entries] == [b"one"]
    assert listed == []
    kestrel = restart_collection(harness, kestrel)  # the runtime setting is kept
    assert [entry.data for entry in page(kestrel).entries] == [b"one"]


def test_a_queue_with_a_history_and_no_journal_comes_back_at_start(harness):
    kestrel = retaining(harness, keep_journal=False)
    kestrel.add("q", b"one")
    kestrel = restart_collection(harness, kestrel, default_queue=QueueConfig(retain=HOUR, keep_journal=False))
    assert "q" in kestrel
    assert [entry.data for entry in page(kestrel).entries] == [b"one"]


def retaining_on_held_writes(harness, **options):
    """A retaining collection whose writer's batches run only when the test says (RecordingRunner)."""
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    harness.writer = writer
    kestrel = retaining(harness, **options)
    runner.run_all()
    return kestrel, writer, runner


def test_a_deleted_queue_loses_its_history_even_when_made_again_at_once(harness):
    kestrel, writer, runner = retaining_on_held_writes(harness)
    kestrel.add("q", b"old")
    writer.flush()
    runner.run_all()
    assert kestrel.delete("q")
    kestrel.add("q", b"new")  # before the erase has run
    writer.flush()
    runner.run_all()
    read = fired(kestrel.history("q", 0, None, 10))
    writer.flush()
    runner.run_all()
    assert [entry.data for entry in read[0].entries] == [b"new"]


def test_history_files_count_against_the_cap_on_open_files(harness):
    writer = JournalWriter(harness.clock, runner=harness.writer._runner, max_open_journals=1)
    writer.startService()
    harness.writer = writer
    kestrel = retaining(harness)
    for name in ("a", "b", "c"):
        kestrel.add(name, b"x")
        writer.flush()
        assert len(writer.open_journals) == 1
    assert [entry.data for entry in page(kestrel, "a").entries] == [b"x"]


def test_history_files_close_when_idle(harness):
    from twisted.internet.defer import maybeDeferred

    writer = JournalWriter(harness.clock, runner=maybeDeferred, idle_journal_seconds=10.0)
    writer.startService()
    harness.writer = writer
    kestrel = retaining(harness)
    kestrel.add("q", b"x")
    writer.flush()
    assert len(writer.open_journals) == 2  # the journal's file and the history's
    for _ in range(4):  # a sweep finds them written since the last, a later one closes them
        harness.clock.advance(10)
    assert len(writer.open_journals) == 0
    kestrel.fetch("q")
    writer.flush()
    assert [entry.outcome for entry in page(kestrel).entries] == ["read"]


# Moves between queues


def test_expired_and_dead_lettered_items_leave_their_queue_and_join_the_next(harness):
    kestrel = collection_on(harness, default_queue=QueueConfig(retain=HOUR), queue_overrides={
        "pending": {"expire_to_queue": "ready"},
        "jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"},
    })
    kestrel.add("pending", b"late", now_ms(harness) + 500)
    kestrel.add("jobs", b"poison")
    opened = kestrel.fetch("jobs", transaction=True)
    assert kestrel.unremove("jobs", opened.xid)
    harness.clock.advance(1)
    assert kestrel.fetch("jobs", transaction=True) is None  # spent: dead-lettered
    assert kestrel.flush_expired("pending") == 1
    moved_at = now_ms(harness)
    assert [(entry.data, entry.consumed, entry.outcome) for entry in page(kestrel, "pending").entries] == [
        (b"late", moved_at, "expired")]
    assert [(entry.data, entry.consumed, entry.outcome) for entry in page(kestrel, "jobs").entries] == [
        (b"poison", moved_at, "dead_lettered")]
    for target, data in (("ready", b"late"), ("dead", b"poison")):
        assert [(entry.data, entry.added, entry.outcome) for entry in page(kestrel, target).entries] == [
            (data, moved_at, None)]
    harness.clock.advance(1)
    assert kestrel.fetch("ready").data == b"late"
    assert kestrel.fetch("dead").data == b"poison"
    for target in ("ready", "dead"):
        assert [(entry.consumed, entry.outcome) for entry in page(kestrel, target).entries] == [(now_ms(harness), "read")]


def test_a_dead_letter_is_matched_to_its_leave_filed_under_its_first_add_time(harness):
    kestrel = collection_on(harness, default_queue=QueueConfig(retain=HOUR), queue_overrides={
        "jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"},
    })
    kestrel.add("dead", b"older")  # the dead-letter queue's first segment
    harness.clock.advance(10)
    for data in (b"poison", b"flushed", b"open"):
        kestrel.add("jobs", data)
    opened = [kestrel.fetch("jobs", transaction=True).xid for _ in range(3)]
    assert kestrel.abort("jobs", opened) == 3
    harness.clock.advance(SEGMENT_SPAN_MS / 1000)
    assert kestrel.fetch("jobs", transaction=True) is None  # each is spent: moved to "dead" now
    assert [entry.outcome for entry in page(kestrel, "jobs").entries] == ["dead_lettered"] * 3
    moved_at = now_ms(harness)
    assert len(segments(harness, "dead")) == 2  # their adds are in the second, their add times in the first
    harness.clock.advance(1)
    assert kestrel.fetch("dead").data == b"older"
    assert kestrel.fetch("dead").data == b"poison"
    opened = kestrel.fetch("dead", transaction=True)
    assert opened.data == b"flushed"
    kestrel.unremove("dead", opened.xid)
    opened = kestrel.fetch("dead", transaction=True)
    kestrel.flush("dead")  # "open" is flushed; the open read of "flushed" is not
    harness.clock.advance(1)
    assert kestrel.confirm("dead", opened.xid)
    entries = page(kestrel, "dead").entries
    assert [(entry.data, entry.added, entry.outcome) for entry in entries] == [
        (b"older", moved_at - 10_000 - SEGMENT_SPAN_MS, "read"),
        (b"poison", moved_at, "read"),
        (b"flushed", moved_at, "read"),
        (b"open", moved_at, "flushed"),
    ]
    assert entries[2].consumed == now_ms(harness)


# Rewind


def test_rewind_adds_each_item_of_the_window_once_in_order_as_new_items(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    for index in range(5):
        kestrel.add("q", numbered(index))
        harness.clock.advance(40)
    assert [number_of(data) for data in drain(kestrel.queue("q"))] == [0, 1, 2, 3, 4]
    harness.clock.advance(1)
    assert fired(kestrel.rewind("q", start + 40_000, start + 160_000)) == [3]
    assert [(number_of(item.data), item.add_time) for item in kestrel.queue("q").memory()] == [
        (1, now_ms(harness)), (2, now_ms(harness)), (3, now_ms(harness))]


def test_a_history_read_shows_which_items_a_rewind_added_and_they_live_as_any_item(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    kestrel.add("q", b"one")
    kestrel.add("q", b"two")
    assert kestrel.fetch("q").data == b"one"
    harness.clock.advance(1)
    assert fired(kestrel.rewind("q", start)) == [2]
    rewound_at = now_ms(harness)
    harness.clock.advance(1)
    assert kestrel.queue("q").items == 3
    assert [kestrel.fetch("q").data for _ in range(2)] == [b"two", b"one"]  # the copy of "one" is delivered
    assert page(kestrel).entries == [
        HistoryEntry(start, start, "read", b"one", False),
        HistoryEntry(start, now_ms(harness), "read", b"two", False),
        HistoryEntry(rewound_at, now_ms(harness), "read", b"one", True),  # consumed on its own
        HistoryEntry(rewound_at, None, None, b"two", True),
    ]


def test_every_rewind_since_a_time_puts_back_each_item_added_then_once_not_the_copies(harness):
    kestrel = retaining(harness)
    start = now_ms(harness)
    added = [kestrel.add("q", numbered(index)) for index in range(3)]
    assert added == [True] * 3 and len(drain(kestrel.queue("q"))) == 3
    for rewind in range(3):
        harness.clock.advance(1)
        # Each window reaches the copies of the rewinds before: they are passed by.
        assert fired(kestrel.rewind("q", start)) == [3]
        assert [number_of(data) for data in drain(kestrel.queue("q"))] == [0, 1, 2]
    entries = page(kestrel).entries
    assert [(number_of(entry.data), entry.rewound) for entry in entries] == (
        [(index, False) for index in range(3)] + [(index, True) for index in range(3)] * 3)
    # A window that holds only copies (their originals added before it) puts back nothing.
    assert fired(kestrel.rewind("q", entries[3].added)) == [0]


def test_rewind_reads_up_to_where_it_started_while_the_queue_goes_on(harness):
    kestrel, writer, runner = retaining_on_held_writes(harness)
    kestrel.add("q", b"one")
    kestrel.add("q", b"two")
    rewound = fired(kestrel.rewind("q", 0))
    kestrel.add("q", b"after")  # while the rewind's read waits for the writer
    assert kestrel.fetch("q").data == b"one"
    runner.run_all()
    assert rewound == [2]
    assert drain(kestrel.queue("q")) == [b"two", b"after", b"one", b"two"]


def test_a_rewind_of_many_pages_reads_up_to_where_it_started(harness, monkeypatch):
    from kestrel.history import rewind

    monkeypatch.setattr(rewind, "MAX_PAGE_ENTRIES", 2)
    kestrel = retaining(harness, max_items=50)
    for index in range(5):
        kestrel.add("q", numbered(index))
    assert fired(kestrel.rewind("q", 0)) == [5]
    assert [number_of(data) for data in drain(kestrel.queue("q"))] == [0, 1, 2, 3, 4] * 2
    assert fired(kestrel.rewind("q", 0)) == [5]  # the copies, pages of them too, passed by
    assert [number_of(data) for data in drain(kestrel.queue("q"))] == [0, 1, 2, 3, 4]


def test_rewind_stops_at_a_full_queue_and_says_how_many_it_added(harness, captured_logs):
    kestrel = retaining(harness, max_items=3)
    for data in (b"a", b"b", b"c"):
        kestrel.add("q", data)
    drain(kestrel.queue("q"))
    kestrel.add("q", b"d")
    assert fired(kestrel.rewind("q", 0)) == [2]
    assert drain(kestrel.queue("q")) == [b"d", b"a", b"b"]
    assert any("stopped after 2 items" in message for message in captured_logs.messages())


def test_rewind_is_refused_like_a_read(harness):
    kestrel = collection_on(harness)
    kestrel.add("plain", b"x")
    for name, error in (("missing", NoSuchQueue), ("plain", NotRetained)):
        failure = fired(kestrel.rewind(name, 0))[0]
        assert failure.check(error)
    kestrel = retaining(harness)
    assert fired(kestrel.rewind("q2", 0))[0].check(NoSuchQueue)
    kestrel.add("q", b"x")
    assert fired(kestrel.rewind("q", 5, 4))[0].check(ValueError)
    assert fired(kestrel.rewind("q", 0, 0)) == [0]


def test_a_dead_letter_is_not_matched_to_the_leave_of_its_twin_before_it_came(harness):
    kestrel = collection_on(harness, default_queue=QueueConfig(retain=HOUR), queue_overrides={
        "jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"},
    })
    kestrel.add("dead", b"older")
    harness.clock.advance(10)
    kestrel.add("jobs", b"twin")
    kestrel.add("jobs", b"twin")  # the same item in the same millisecond
    assert kestrel.unremove("jobs", kestrel.fetch("jobs", transaction=True).xid)
    harness.clock.advance(SEGMENT_SPAN_MS / 1000)
    second = kestrel.fetch("jobs", transaction=True)  # the first twin is dead-lettered, the second handed out
    harness.clock.advance(1)
    assert kestrel.fetch("dead").data == b"older"
    assert kestrel.fetch("dead").data == b"twin"
    assert kestrel.unremove("jobs", second.xid)
    harness.clock.advance(SEGMENT_SPAN_MS / 1000)
    assert kestrel.fetch("jobs", transaction=True) is None  # the second twin is dead-lettered now
    since = now_ms(harness)
    harness.settle()
    assert len(segments(harness, "dead")) == 3
    assert [(entry.data, entry.outcome) for entry in page(kestrel, "dead", since=since).entries] == [(b"twin", None)]
    assert [entry.outcome for entry in page(kestrel, "dead").entries] == ["read", "read", None]


# Durability: the history is fsynced as its queue's journal is (sync_journal)


@pytest.fixture
def fsynced(harness, monkeypatch) -> list[str]:
    """
    The files fsynced, in order, by their path under the spool (a history segment's starts
    with .history/). The spy wraps os.fsync: the fsync still runs, on the same thread.
    """
    log: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        log.append(os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), harness.directory))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return log


def history_fsyncs(log: list[str]) -> list[str]:
    return [path for path in log if path.startswith(".history")]


def add_one(kestrel) -> None:
    kestrel.add("q", b"x")


def get_one(kestrel) -> None:
    kestrel.fetch("q")


def confirm_one(kestrel) -> None:
    assert kestrel.confirm("q", kestrel.fetch("q", transaction=True).xid)


@pytest.mark.parametrize("write", [add_one, get_one, confirm_one])
def test_with_sync_journal_0_a_reply_waits_for_the_history_fsync_after_the_journals(harness, fsynced, write):
    kestrel, writer, runner = retaining_on_held_writes(harness, sync_journal=0.0)
    if write is not add_one:
        kestrel.add("q", b"x")
        harness.clock.advance(0)
        runner.run_all()
    del fsynced[:]
    write(kestrel)
    durable = kestrel.durability("q", fanout=False)
    assert durable is not None
    durable.addCallback(lambda _: fsynced.append("reply"))
    harness.clock.advance(0)  # the batch goes to the (held) writer thread
    assert fsynced == []
    runner.run_all()
    [segment] = segments(harness)
    assert fsynced == ["q", os.path.join(".history", "q", segment), "reply"]


def test_with_sync_journal_0_a_reply_fails_when_the_history_cannot_be_written(harness, monkeypatch, captured_logs):
    from kestrel.history.segments import HistoryFiles

    kestrel, writer, runner = retaining_on_held_writes(harness, sync_journal=0.0)
    real_write = HistoryFiles.write
    failures = [OSError("disk full")]

    def failing_write(self, *args):
        if failures:
            raise failures.pop()
        real_write(self, *args)  # the retry succeeds

    monkeypatch.setattr(HistoryFiles, "write", failing_write)
    kestrel.add("q", b"x")
    reply = fired(kestrel.durability("q"))
    harness.clock.advance(0)
    runner.run_all()
    assert len(reply) == 1 and isinstance(reply[0], Failure), "the add was acknowledged without its history"
    harness.clock.advance(1)  # the history's retry goes to the writer
    harness.clock.advance(0.01)
    runner.run_all()
    read = fired(kestrel.history("q", 0, None, 10))
    runner.run_all()
    assert [entry.data for entry in read[0].entries] == [b"x"]


def test_with_a_sync_period_the_history_is_fsynced_within_it(harness, fsynced):
    # The harness's writer runs batches at once, and periodic fsyncs in line (no fsync thread).
    kestrel = retaining(harness, sync_journal=0.5)
    kestrel.add("q", b"x")
    assert kestrel.durability("q") is None, "a reply waits for no fsync"
    harness.clock.advance(0.499)
    harness.settle()
    assert history_fsyncs(fsynced) == []
    harness.clock.advance(0.001)
    harness.settle()
    assert history_fsyncs(fsynced) == [os.path.join(".history", "q", segments(harness)[0])]
    harness.clock.advance(10)
    harness.settle()
    assert len(history_fsyncs(fsynced)) == 1, "fsynced again with nothing written"


def test_with_sync_never_the_history_is_never_fsynced(harness, fsynced):
    kestrel = retaining(harness)
    kestrel.add("q", b"x")
    kestrel.fetch("q")
    assert kestrel.durability("q") is None
    harness.clock.advance(HOUR)
    kestrel.close()
    harness.settle()
    assert history_fsyncs(fsynced) == []
    assert segments(harness)


def test_the_history_follows_sync_journal_when_it_is_reloaded(harness, fsynced):
    kestrel = retaining(harness)
    kestrel.add("q", b"before")
    harness.settle()
    kestrel.reload(ServerConfig(queue_path=harness.directory, default_queue=QueueConfig(retain=HOUR, sync_journal=0.0)))
    kestrel.add("q", b"after")
    assert kestrel.durability("q") is not None
    harness.settle()
    assert history_fsyncs(fsynced) == [os.path.join(".history", "q", segments(harness)[0])]


def test_a_history_file_closed_for_the_cap_gets_the_fsync_its_period_owes_first(harness, fsynced):
    writer = JournalWriter(harness.clock, runner=harness.writer._runner, max_open_journals=1)
    writer.startService()
    harness.writer = writer
    kestrel = retaining(harness, sync_journal=60.0)
    kestrel.add("q", b"x")  # the history's file is written last: the journal's is closed for it
    writer.flush()
    assert history_fsyncs(fsynced) == []
    kestrel.add("other", b"y")
    writer.flush()
    assert history_fsyncs(fsynced) == [os.path.join(".history", "q", segments(harness)[0])]
