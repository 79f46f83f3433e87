"""QueueCollection (doc/compatibility.md §3.1, §3.3, §3.4, §5): names, loading, deletion, fanout, aliases, sweeps, reload."""

import gc
import os

import pytest

from twisted.python.failure import Failure

from kestrel.collection import InvalidQueueName, QueueCollection
from kestrel.config import QueueConfig, ServerConfig
from kestrel.journal import files
from kestrel.journal.disk import JournalFiles
from kestrel.journal.writer import WRITE_RETRY_INTERVAL, JournalWriter
from kestrel.queue import QueueUnavailable
from kestrel.test.support import (
    RecordingRunner,
    collection_on,
    drain,
    numbered,
    restart_collection,
)


def now_ms(harness) -> int:
    return int(harness.clock.seconds() * 1000)


def touch(harness, *names: str) -> None:
    for name in names:
        open(os.path.join(harness.directory, name), "wb").close()


def spool(harness) -> list[str]:
    harness.settle()
    return sorted(os.listdir(harness.directory))


def children_of(collection, name: str) -> str | None:
    """The fanout children of a queue as `stats` reports them (None when it has none)."""
    return dict(collection.queue_stats([name])[0][1]).get("children")


def data_of(item):
    return None if item is None else item.data


# Creating and loading queues


def test_adds_create_queues(harness):
    collection = collection_on(harness)
    assert collection.names() == []
    assert collection.add("work1", b"stuff")
    assert collection.add("work2", b"other stuff")

    assert collection.names() == ["work1", "work2"]
    assert (collection.totals().bytes, collection.totals().items, collection.totals().total_items) == (16, 2, 2)
    assert collection.queue_creates == 2

    assert data_of(collection.fetch("work1")) == b"stuff"
    assert collection.fetch("work1") is None
    assert data_of(collection.fetch("work2")) == b"other stuff"
    assert collection.fetch("work2") is None
    assert (collection.totals().bytes, collection.totals().items, collection.totals().total_items) == (0, 0, 2)


@pytest.mark.parametrize("name", ["hello.there", "a/b", "a~b", "", "+child", "the_queue+fanout/open/close"])
def test_illegal_names_are_refused_without_breaking_other_queues(harness, name):
    collection = collection_on(harness)
    collection.add("the_queue", b"before")
    with pytest.raises(InvalidQueueName):
        collection.add(name, b"x")
    with pytest.raises(InvalidQueueName):
        collection.fetch(name)

    assert collection.names() == ["the_queue"]
    assert children_of(collection, "the_queue") is None
    assert collection.queue_creates == 1
    assert collection.add("the_queue", b"after")
    assert drain(collection.queue("the_queue")) == [b"before", b"after"]
    assert spool(harness) == ["the_queue"]


def test_queues_are_loaded_from_their_journals_after_a_restart(harness):
    collection = collection_on(harness)
    for name in (b"huey", b"dewey", b"louie"):
        collection.add("ducklings", name)
    assert (collection.totals().bytes, collection.totals().items) == (14, 3)

    collection = restart_collection(harness, collection)
    assert collection.names() == ["ducklings"]
    assert (collection.totals().bytes, collection.totals().items) == (14, 3)
    assert data_of(collection.fetch("ducklings")) == b"huey"
    assert (collection.totals().bytes, collection.totals().items) == (10, 2)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_waits_while_queues_load_and_is_left_as_it_was(harness, monkeypatch, enabled):
    # Each collection during a load walks every queue loaded so far (issue 15).
    collection = collection_on(harness)
    for name in ("a", "b"):
        collection.add(name, b"x")
    collection.close()
    harness.settle()
    read_records, collecting = files.read_records, []

    def spy(*args):
        collecting.append(gc.isenabled())
        return read_records(*args)

    monkeypatch.setattr(files, "read_records", spy)
    (gc.enable if enabled else gc.disable)()
    try:
        collection_on(harness)
        assert collecting == [False, False] and gc.isenabled() == enabled
    finally:
        gc.enable()


def test_a_start_logs_one_line_for_the_queues_it_loads(harness, captured_logs):
    """Issue 12: 3,005 queues made 3,005 "created queue" lines at start."""
    collection = collection_on(harness)
    for name, count in (("a", 2), ("b", 1), ("c", 0)):
        for item in range(count):
            collection.add(name, b"%d" % item)
        collection.queue(name)
    collection = restart_collection(harness, collection)
    loads = [message for message in captured_logs.messages() if message.startswith("loaded ")]
    assert len(loads) == 2, "one line for each start"
    assert loads[1].startswith(f"loaded 2 queues (3 items) from {harness.directory} in ")
    created = [message for message in captured_logs.messages() if message.startswith("created queue")]
    assert created == ["created queue a (0 items)", "created queue b (0 items)", "created queue c (0 items)"]


def test_load_finds_queues_by_file_name_and_ignores_temp_files(harness):
    touch(harness, "apples", "oranges.101", "oranges.133", "oranges~~900")
    collection = collection_on(harness)
    assert collection.names() == ["apples", "oranges"]
    assert collection.queue_creates == 2
    assert "oranges~~900" not in spool(harness)


def hits_and_misses(collection) -> tuple[int, int]:
    queues = [collection.queue(name) for name in collection.names()]
    return sum(queue.get_hits for queue in queues), sum(queue.get_misses for queue in queues)


def test_load_skips_a_file_with_an_illegal_queue_name(harness, captured_logs):
    touch(harness, "apples", "bad+name+twice")
    collection = collection_on(harness)
    assert collection.names() == ["apples"]
    assert any("illegal queue name" in message for message in captured_logs.messages())


def test_hit_and_miss_counters(harness):
    collection = collection_on(harness)
    collection.add("ducklings", b"ugly1")
    collection.add("ducklings", b"ugly2")
    assert hits_and_misses(collection) == (0, 0)
    steps = []
    for name in ("ducklings", "zombie", "ducklings", "ducklings", "ducklings"):
        collection.fetch(name)
        steps.append(hits_and_misses(collection))
    assert steps == [(1, 0), (1, 1), (2, 1), (2, 2), (2, 3)]


# Deleting


def test_delete_removes_the_queue_and_its_files(harness):
    touch(harness, "apples", "oranges")
    collection = collection_on(harness)
    assert collection.delete("oranges")
    assert spool(harness) == ["apples"]
    assert collection.names() == ["apples"]
    assert collection.queue_deletes == 1


def test_delete_removes_rotated_files_too(harness):
    collection = collection_on(harness, default_queue=QueueConfig(max_memory_size=64))
    for _ in range(3):
        collection.add("rolling", bytes(32))
    assert len(spool(harness)) == 2
    assert collection.delete("rolling")
    assert spool(harness) == []


# Operations that must not create a queue (doc/compatibility.md §3.1, Kestrel 2.3.1 on)


@pytest.mark.parametrize(
    ("operation", "answer"),
    [
        (lambda c: c.unremove("ghost", 1), False),
        (lambda c: c.confirm("ghost", 1), False),
        (lambda c: c.flush("ghost"), None),
        (lambda c: c.delete("ghost"), False),
        (lambda c: c.flush_expired("ghost"), 0),
        (lambda c: c.queue_stats(["ghost"]), []),
    ],
    ids=["unremove", "confirm", "flush", "delete", "flush_expired", "queue_stats"],
)
def test_operations_on_a_missing_queue_create_nothing(harness, operation, answer):
    collection = collection_on(harness)
    assert operation(collection) == answer
    assert collection.names() == []
    assert collection.queue_creates == 0
    assert spool(harness) == []


# Expiry


def test_items_expire_only_after_their_expiry(harness):
    collection = collection_on(harness)
    collection.add("expired", b"hello", expiry=now_ms(harness) + 5000)
    harness.clock.advance(4)
    assert data_of(collection.fetch("expired")) == b"hello"
    collection.add("expired", b"hello", expiry=now_ms(harness) + 5000)
    harness.clock.advance(6)
    assert collection.fetch("expired") is None


def test_expired_items_move_to_the_expire_to_queue_on_the_next_read(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"expire_to_queue": "expired"}})
    collection.queue("expired")
    collection.add("jobs", b"hello", expiry=now_ms(harness) + 1000)
    jobs, expired = collection.queue("jobs"), collection.queue("expired")
    assert (jobs.items, expired.items) == (1, 0)

    harness.clock.advance(2)
    assert (jobs.items, expired.items) == (1, 0)
    assert collection.fetch("jobs") is None
    assert (jobs.items, expired.items) == (0, 1)
    moved = collection.fetch("expired")
    assert moved.data == b"hello"
    assert moved.expiry == 0
    assert moved.add_time == now_ms(harness)


def test_expired_items_keep_their_order_in_the_expire_to_queue(harness):
    collection = collection_on(harness, queue_overrides={"wu_tang": {"expire_to_queue": "rappers"}})
    expiry = now_ms(harness) + 1000
    for name in (b"method man", b"ghostface killah", b"u-god"):
        collection.add("wu_tang", name, expiry=expiry)
    collection.add("wu_tang", b"masta killa")
    harness.clock.advance(2)

    assert collection.flush_expired("wu_tang") == 3
    assert drain(collection.queue("wu_tang")) == [b"masta killa"]
    assert drain(collection.queue("rappers")) == [b"method man", b"ghostface killah", b"u-god"]


def test_expire_to_queue_is_created_when_first_needed(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"expire_to_queue": "later"}})
    collection.add("jobs", b"x", expiry=now_ms(harness) + 1000)
    assert "later" not in collection
    harness.clock.advance(2)
    collection.flush_all_expired()
    assert drain(collection.queue("later", create=False)) == [b"x"]


@pytest.mark.parametrize(
    ("elapsed", "drained", "deleted"),
    [(0, False, False), (30, False, False), (91, False, False), (91, True, True), (89, True, False)],
)
def test_max_queue_age_deletes_only_old_empty_queues(harness, elapsed, drained, deleted):
    collection = collection_on(harness, queue_overrides={"wu_tang": {"max_queue_age": 90.0}})
    collection.add("wu_tang", b"method man")
    harness.clock.advance(elapsed)
    if drained:
        assert drain(collection.queue("wu_tang")) == [b"method man"]

    collection.sweep()
    assert ("wu_tang" not in collection) is deleted
    assert (collection.queue_expires, collection.queue_deletes) == ((1, 1) if deleted else (0, 0))


def test_empty_queue_is_not_deleted_before_max_queue_age(harness):
    collection = collection_on(harness, queue_overrides={"wu_tang": {"max_queue_age": 90.0}})
    collection.queue("wu_tang")
    collection.sweep()
    assert "wu_tang" in collection
    harness.clock.advance(91)
    collection.sweep()
    assert "wu_tang" not in collection


def test_background_sweeper_runs_on_the_expiration_timer(harness):
    config = ServerConfig(
        queue_path=harness.directory,
        expiration_timer_frequency=1.0,
        queue_overrides={"temp": {"max_queue_age": 5.0}},
    )
    collection = QueueCollection(config, harness.writer, harness.clock)
    collection.startService()
    collection.add("jobs", b"soon gone", expiry=now_ms(harness) + 1500)
    collection.queue("temp")

    harness.clock.advance(1)
    assert collection.queue("jobs").items == 1
    harness.clock.advance(1)
    assert collection.queue("jobs").items == 0
    assert collection.queue("jobs").expired_items == 1
    harness.clock.advance(4)
    assert "temp" not in collection
    collection.stopService()


# Fanout


def test_fanout_child_gets_items_added_after_it_was_created(harness):
    collection = collection_on(harness)
    collection.add("jobs", b"job1")
    assert collection.fetch("jobs+client1") is None
    collection.add("jobs", b"job2")

    assert data_of(collection.fetch("jobs+client1")) == b"job2"
    assert data_of(collection.fetch("jobs")) == b"job1"
    assert data_of(collection.fetch("jobs")) == b"job2"
    assert children_of(collection, "jobs") == "jobs+client1"


def test_fanout_children_found_on_disk_are_registered(harness):
    touch(harness, "jobs", "jobs+client1")
    collection = collection_on(harness)
    collection.add("jobs", b"job1")
    assert data_of(collection.fetch("jobs+client1")) == b"job1"
    collection.add("jobs", b"job2")
    assert data_of(collection.fetch("jobs+client1")) == b"job2"
    assert drain(collection.queue("jobs")) == [b"job1", b"job2"]


def test_deleting_a_fanout_child_detaches_it(harness):
    touch(harness, "jobs", "jobs+client1")
    collection = collection_on(harness)
    collection.add("jobs", b"job1")
    assert collection.delete("jobs+client1")
    assert spool(harness) == ["jobs"]
    assert children_of(collection, "jobs") is None

    collection.add("jobs", b"job2")
    assert spool(harness) == ["jobs"]
    assert "jobs+client1" not in collection
    assert drain(collection.queue("jobs")) == [b"job1", b"job2"]


def test_fanout_only_master_stores_nothing(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"fanout_only": True}})
    assert collection.add("jobs", b"into the void")
    assert collection.queue("jobs").items == 0

    collection.queue("jobs+worker")
    assert collection.add("jobs", b"job")
    assert collection.queue("jobs").items == 0
    assert drain(collection.queue("jobs+worker")) == [b"job"]


def test_fanout_child_inherits_the_masters_config_and_keeps_its_own_limits(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"max_items": 1}})
    child = collection.queue("jobs+slow")
    assert child.config.max_items == 1
    assert collection.add("jobs", b"a")
    collection.fetch("jobs")
    assert collection.add("jobs", b"b")
    assert drain(collection.queue("jobs")) == [b"b"]
    assert drain(child) == [b"a"]


# Aliases


def test_alias_adds_to_its_destination(harness):
    collection = collection_on(harness, aliases={"wx_updates": ("weather_updates",)})
    assert collection.add("wx_updates", b"sunny")
    assert drain(collection.queue("weather_updates")) == [b"sunny"]
    assert "wx_updates" not in collection
    assert collection.queue_stats(["wx_updates"]) == [
        ("wx_updates", [("put_items", 1), ("put_bytes", 5), ("children", "weather_updates")])
    ]


def test_alias_adds_to_every_destination(harness):
    collection = collection_on(harness, aliases={"spam_all": ("spam", "spam0")})
    assert collection.add("spam_all", b"eggs")
    assert drain(collection.queue("spam")) == [b"eggs"]
    assert drain(collection.queue("spam0")) == [b"eggs"]


def test_alias_to_a_fanout_only_master_reaches_its_children(harness):
    collection = collection_on(
        harness, aliases={"all": ("hello",)}, queue_overrides={"hello": {"fanout_only": True}}
    )
    collection.queue("hello+world")
    assert collection.add("all", b"hi")
    assert collection.queue("hello").items == 0
    assert drain(collection.queue("hello+world")) == [b"hi"]


def test_alias_add_fails_if_any_destination_refuses(harness):
    collection = collection_on(
        harness, aliases={"both": ("roomy", "full")}, queue_overrides={"full": {"max_items": 0}}
    )
    assert not collection.add("both", b"x")
    assert drain(collection.queue("roomy")) == [b"x"]


def test_alias_reads_find_nothing_and_create_nothing(harness):
    collection = collection_on(harness, aliases={"wx_updates": ("weather_updates",)})
    collection.add("wx_updates", b"sunny")
    assert collection.fetch("wx_updates") is None
    assert collection.fetch("wx_updates", peek=True) is None
    assert collection.fetch("wx_updates", deadline=harness.clock.seconds() + 10) is None
    assert collection.names() == ["weather_updates"]


def test_alias_masks_a_queue_of_the_same_name(harness, captured_logs):
    collection = collection_on(harness)
    collection.add("q1", b"hidden")
    collection = restart_collection(harness, collection, aliases={"q1": ("q2",)})
    assert any("queue name(s) masked by alias(es): q1" in message for message in captured_logs.messages())

    assert collection.add("q1", b"redirected")
    assert collection.fetch("q1") is None
    assert drain(collection.queue("q2")) == [b"redirected"]
    assert collection.queue("q1").items == 1


@pytest.mark.parametrize("operation", ["flush", "delete"])
def test_flush_and_delete_of_an_alias_name_are_no_ops(harness, operation):
    collection = collection_on(harness)
    collection.add("q1", b"hidden")
    collection = restart_collection(harness, collection, aliases={"q1": ("q2",)})
    getattr(collection, operation)("q1")
    assert "q1" in collection
    assert collection.queue("q1").items == 1


# Reload


def test_reload_changes_the_config_of_a_live_queue(harness):
    collection = collection_on(harness)
    queue = collection.queue("starship")
    assert queue.add(b"one")
    assert queue.add(b"two")

    collection.reload(ServerConfig(queue_path=harness.directory, queue_overrides={"starship": {"max_items": 2}}))
    assert queue.config.max_items == 2
    assert not collection.add("starship", b"three")
    assert collection.queue("starship") is queue


def test_reload_applies_new_defaults_and_aliases(harness):
    collection = collection_on(harness, queue_overrides={"weather_updates": {"max_items": 1_500_000}})
    weather = collection.queue("weather_updates")
    collection.reload(
        ServerConfig(
            queue_path=harness.directory,
            default_queue=QueueConfig(max_items=9999),
            aliases={"wx": ("weather_updates",)},
        )
    )
    assert weather.config.max_items == 9999
    assert collection.add("wx", b"rain")
    assert drain(weather) == [b"rain"]


# Dead letters (doc/configuration.md)


def read_and_abort(collection, name: str, times: int) -> None:
    for _ in range(times):
        collection.unremove(name, collection.fetch(name, transaction=True).xid)


def test_an_item_read_max_deliveries_times_moves_to_the_dead_letter_queue_with_its_add_time(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"max_deliveries": 2, "dead_letter_queue": "dead"}})
    collection.queue("dead+audit")
    added_at = now_ms(harness)
    collection.add("jobs", b"poison")
    collection.add("jobs", b"fine")
    harness.clock.advance(10)
    read_and_abort(collection, "jobs", 2)
    assert "dead" not in collection

    assert collection.fetch("jobs", transaction=True).data == b"fine"
    dead = collection.fetch("dead")
    assert (dead.data, dead.add_time, dead.expiry, dead.deliveries) == (b"poison", added_at, 0, 0)
    assert collection.fetch("dead+audit").add_time == added_at
    assert dict(collection.queue_stats(["jobs"])[0][1])["dead_lettered"] == 1

    collection = restart_collection(harness, collection)
    assert drain(collection.queue("jobs")) == [b"fine"]
    assert drain(collection.queue("dead")) == []


def test_dead_letters_stay_while_the_dead_letter_queue_refuses_them(harness, captured_logs):
    collection = collection_on(harness, queue_overrides={
        "jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"}, "dead": {"max_items": 1},
    })
    for data in (b"one", b"two", b"three"):
        collection.add("jobs", data)
    for _ in range(3):
        read_and_abort(collection, "jobs", 1)
        collection.unremove("jobs", collection.fetch("jobs", transaction=True).xid)
    # "one" went to dead; "two" stays at the head and goes out once more each time.
    assert [item.data for item in collection.queue("jobs").memory()] == [b"two", b"three"]
    assert collection.queue("jobs").memory()[0].deliveries == 5
    assert drain(collection.queue("dead")) == [b"one"]
    assert sum("refuses them" in message for message in captured_logs.messages()) == 1


def test_dead_letters_stay_while_the_dead_letter_queue_cannot_be_written(harness):
    collection = collection_on(harness, queue_overrides={"jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"}})
    collection.add("jobs", b"spent")
    read_and_abort(collection, "jobs", 1)
    collection.queue("dead").journal.failure = Failure(OSError(28, "No space left on device"))
    assert collection.fetch("jobs", transaction=True).data == b"spent"


def test_reload_attaches_a_new_dead_letter_queue(harness):
    collection = collection_on(harness, default_queue=QueueConfig(max_deliveries=1))
    collection.add("jobs", b"spent")
    read_and_abort(collection, "jobs", 1)
    collection.reload(ServerConfig(
        queue_path=harness.directory, queue_overrides={"jobs": {"max_deliveries": 1, "dead_letter_queue": "dead"}}
    ))
    assert collection.fetch("jobs", transaction=True) is None
    assert drain(collection.queue("dead")) == [b"spent"]


def test_reload_attaches_a_new_expire_to_queue(harness):
    collection = collection_on(harness)
    collection.add("jobs", b"late", expiry=now_ms(harness) + 1000)
    collection.reload(ServerConfig(queue_path=harness.directory, queue_overrides={"jobs": {"expire_to_queue": "dead"}}))
    harness.clock.advance(2)
    assert collection.fetch("jobs") is None
    assert drain(collection.queue("dead")) == [b"late"]


# Hardening (issue 10): each of these failed before its fix.


def held_collection(harness, **server_options):
    """
    A collection on a writer whose batches run only when the test says, as a busy writer
    thread would: it defers every write, the erase of a deleted queue's files included. It
    hands each batch over at the end of its reactor turn (write_delay=0).
    """
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner, write_delay=0)
    writer.startService()
    server_options.setdefault("queue_path", harness.directory)
    collection = QueueCollection(ServerConfig(**server_options), writer, harness.clock)
    collection.load()
    return collection, writer, runner


def end_turn(harness, runner) -> None:
    """End the reactor turn and let the writer run everything handed to it."""
    harness.clock.advance(0)
    runner.run_all()


def delete_command(harness, collection) -> None:
    assert collection.delete("race")


def max_queue_age(harness, collection) -> None:
    harness.clock.advance(61)
    collection.sweep()
    assert "race" not in collection


@pytest.mark.parametrize("deletion", [delete_command, max_queue_age])
def test_a_queue_made_again_before_the_erase_runs_has_only_its_new_items(harness, deletion):
    collection, writer, runner = held_collection(harness, queue_overrides={"race": {"max_queue_age": 60.0}})
    for _ in range(3):
        collection.add("race", b"old")
    end_turn(harness, runner)
    for _ in range(3):
        collection.fetch("race")

    # Deleted, then set on the same connection: the erase has not run when the set comes.
    deletion(harness, collection)
    assert collection.add("race", b"new")
    assert collection.queue("race").items == 1
    end_turn(harness, runner)

    collection.close()
    end_turn(harness, runner)
    assert drain(collection_on(harness).queue("race")) == [b"new"]


def test_the_new_queue_writes_only_after_the_erase_even_while_the_erase_is_retried(harness, monkeypatch):
    collection, writer, runner = held_collection(harness)
    collection.add("race", b"old")
    end_turn(harness, runner)
    failing = [True]
    real_erase = JournalFiles.erase

    def erase(files, filenames):
        if failing[0]:
            raise OSError(5, "Input/output error")
        real_erase(files, filenames)

    monkeypatch.setattr(JournalFiles, "erase", erase)
    collection.delete("race")
    end_turn(harness, runner)
    # The erase failed: the name's journal refuses writes until it has run.
    with pytest.raises(QueueUnavailable):
        collection.add("race", b"new")
    failing[0] = False
    harness.clock.advance(WRITE_RETRY_INTERVAL)
    end_turn(harness, runner)
    assert collection.add("race", b"new")
    end_turn(harness, runner)
    collection.close()
    end_turn(harness, runner)
    assert drain(collection_on(harness).queue("race")) == [b"new"]


def test_a_deleted_fanout_child_made_again_gets_only_new_items(harness):
    collection, writer, runner = held_collection(harness)
    collection.queue("jobs+audit")
    collection.add("jobs", b"old")
    end_turn(harness, runner)
    collection.delete("jobs+audit")
    collection.queue("jobs+audit")
    collection.add("jobs", b"new")
    end_turn(harness, runner)
    collection.close()
    end_turn(harness, runner)
    restarted = collection_on(harness)
    assert drain(restarted.queue("jobs+audit")) == [b"new"]
    assert drain(restarted.queue("jobs")) == [b"old", b"new"]


def test_creating_a_queue_lists_no_folder_and_a_start_lists_it_once(harness, monkeypatch):
    touch(harness, "a", "b.1000", "b", "c~~5")
    listings = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listings.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(os, "listdir", lambda path: pytest.fail("listdir of " + path))
    collection = collection_on(harness)
    assert collection.names() == ["a", "b"]
    assert listings == [harness.directory]

    for number in range(50):
        collection.add(f"new{number}", b"x")
    collection.queue("more")
    assert listings == [harness.directory]


def test_expired_items_stay_while_the_expire_to_queue_refuses_them(harness, captured_logs):
    collection = collection_on(
        harness, queue_overrides={"pending": {"expire_to_queue": "ready"}, "ready": {"max_items": 1}}
    )
    for data in (b"one", b"two", b"three"):
        collection.add("pending", data, expiry=now_ms(harness) + 1000)
    harness.clock.advance(2)

    assert collection.flush_expired("pending") == 1
    assert [item for item in drain(collection.queue("ready"))] == [b"one"]
    assert collection.queue("pending").items == 1 + 1
    warnings = [message for message in captured_logs.messages() if "refuses them" in message]
    assert len(warnings) == 1

    collection.sweep()
    collection.sweep()
    assert drain(collection.queue("ready")) == [b"two"]
    assert drain(collection.queue("ready")) == []
    collection.sweep()
    assert drain(collection.queue("ready")) == [b"three"]
    assert collection.queue("pending").items == 0


def test_expired_items_stay_while_the_expire_to_queue_cannot_be_written(harness):
    collection = collection_on(harness, queue_overrides={"pending": {"expire_to_queue": "ready"}})
    collection.add("pending", b"late", expiry=now_ms(harness) + 1000)
    collection.queue("ready").journal.failure = Failure(OSError(28, "No space left on device"))
    harness.clock.advance(2)
    collection.sweep()
    assert collection.queue("pending").items == 1
    collection.queue("ready").journal.failure = None
    collection.sweep()
    assert drain(collection.queue("ready")) == [b"late"]


def test_one_failing_queue_does_not_stop_the_sweep(harness, captured_logs, monkeypatch):
    config = ServerConfig(queue_path=harness.directory, expiration_timer_frequency=1.0)
    collection = QueueCollection(config, harness.writer, harness.clock)
    collection.startService()
    collection.add("a_broken", b"x", expiry=now_ms(harness) + 500)
    collection.add("b_fine", b"soon gone", expiry=now_ms(harness) + 1500)

    def broken(item):
        raise RuntimeError("sweep trouble")

    # The queue's expiry fails where it hands an expired item on (to expire_to_queue).
    monkeypatch.setattr(collection.queue("a_broken"), "expired_sink", broken)
    harness.clock.advance(1)
    harness.clock.advance(1)
    assert collection.queue("b_fine").items == 0
    assert sum("sweep of queue a_broken failed" in message for message in captured_logs.messages()) == 2
    collection.stopService()


def test_the_sweeper_goes_on_after_an_unexpected_failure(harness, captured_logs, monkeypatch):
    config = ServerConfig(queue_path=harness.directory, expiration_timer_frequency=1.0)
    collection = QueueCollection(config, harness.writer, harness.clock)
    collection.startService()
    calls = []

    def sweep():
        calls.append(harness.clock.seconds())
        if len(calls) == 1:
            raise RuntimeError("sweep trouble")

    monkeypatch.setattr(collection, "sweep", sweep)
    collection.stopService()
    collection.startService()  # the first sweep runs at once, and fails
    for _ in range(3):
        harness.clock.advance(1)
    assert len(calls) == 4
    assert any("the expiry sweep failed" in message for message in captured_logs.messages())
    collection.stopService()


def keep_journal(harness, keep: bool, **options) -> ServerConfig:
    return ServerConfig(queue_path=harness.directory, default_queue=QueueConfig(keep_journal=keep, **options))


def test_reload_turning_keep_journal_on_journals_what_the_queue_holds(harness):
    collection = collection_on(harness, default_queue=QueueConfig(keep_journal=False))
    for data in (b"one", b"two", b"three"):
        collection.add("q", data)
    opened = collection.fetch("q", transaction=True)
    harness.settle()
    assert spool(harness) == []

    collection.reload(keep_journal(harness, True))
    assert collection.add("q", b"four")
    assert data_of(collection.fetch("q")) == b"two"
    restarted = restart_collection(harness, collection, default_queue=QueueConfig())
    assert drain(restarted.queue("q")) == [opened.data, b"three", b"four"]


def test_reload_turning_keep_journal_off_erases_the_journal(harness):
    collection = collection_on(harness)
    collection.add("q", b"one")
    harness.settle()
    assert spool(harness) == ["q"]
    collection.reload(keep_journal(harness, False))
    assert spool(harness) == []
    assert collection.add("q", b"two")
    assert spool(harness) == []
    assert drain(collection.queue("q")) == [b"one", b"two"]


def test_reload_keeps_the_journal_of_a_queue_reading_behind(harness, captured_logs):
    collection = collection_on(harness, default_queue=QueueConfig(max_memory_size=64))
    for number in range(6):
        collection.add("q", numbered(number, 32))
    assert collection.queue("q").reading_behind
    collection.reload(keep_journal(harness, False, max_memory_size=64))
    assert collection.queue("q").config.keep_journal
    assert any("keeps its journal" in message for message in captured_logs.messages())
    assert collection.add("q", numbered(6, 32))
    restarted = restart_collection(harness, collection, default_queue=QueueConfig(max_memory_size=64))
    assert drain(restarted.queue("q")) == [numbered(number, 32) for number in range(7)]


def test_a_damaged_journal_is_copied_before_it_is_cut_and_the_copy_is_no_queue(harness, captured_logs):
    from kestrel.journal import records

    whole = records.encode_addx(b"kept", 1, 0)
    with open(os.path.join(harness.directory, "q"), "wb") as journal:
        journal.write(whole + bytes([127]) + records.encode_addx(b"after the damage", 1, 0))
    collection = collection_on(harness)
    copies = [name for name in spool(harness) if "damaged" in name]
    assert len(copies) == 1
    with open(os.path.join(harness.directory, copies[0]), "rb") as copy:
        assert copy.read().endswith(b"after the damage")
    assert any(copies[0] in message and "DATA MAY HAVE BEEN LOST" in message for message in captured_logs.messages())
    assert drain(collection.queue("q")) == [b"kept"]
    assert restart_collection(harness, collection).names() == ["q"]
