"""QueueCollection (spec 3.1, 3.5, 3.6, 6.7): names, loading, deletion, fanout, aliases, sweeps, reload."""

import os

import pytest

from kestrel.collection import InvalidQueueName, QueueCollection
from kestrel.config import QueueConfig, ServerConfig
from kestrel.test.support import (
    collection_on,
    drain,
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


def data_of(item):
    return None if item is None else item.data


# Creating and loading queues


def test_adds_create_queues(harness):
    collection = collection_on(harness)
    assert collection.names() == []
    assert collection.add("work1", b"stuff")
    assert collection.add("work2", b"other stuff")

    assert collection.names() == ["work1", "work2"]
    assert (collection.current_bytes(), collection.current_items(), collection.total_items()) == (16, 2, 2)
    assert collection.queue_creates == 2

    assert data_of(collection.fetch("work1")) == b"stuff"
    assert collection.fetch("work1") is None
    assert data_of(collection.fetch("work2")) == b"other stuff"
    assert collection.fetch("work2") is None
    assert (collection.current_bytes(), collection.current_items(), collection.total_items()) == (0, 0, 2)


@pytest.mark.parametrize("name", ["hello.there", "a/b", "a~b", "", "+child", "the_queue+fanout/open/close"])
def test_illegal_names_are_refused_without_breaking_other_queues(harness, name):
    collection = collection_on(harness)
    collection.add("the_queue", b"before")
    with pytest.raises(InvalidQueueName):
        collection.add(name, b"x")
    with pytest.raises(InvalidQueueName):
        collection.fetch(name)

    assert collection.names() == ["the_queue"]
    assert collection.children("the_queue") == []
    assert collection.queue_creates == 1
    assert collection.add("the_queue", b"after")
    assert drain(collection.queue("the_queue")) == [b"before", b"after"]
    assert spool(harness) == ["the_queue"]


def test_queues_are_loaded_from_their_journals_after_a_restart(harness):
    collection = collection_on(harness)
    for name in (b"huey", b"dewey", b"louie"):
        collection.add("ducklings", name)
    assert (collection.current_bytes(), collection.current_items()) == (14, 3)

    collection = restart_collection(harness, collection)
    assert collection.names() == ["ducklings"]
    assert (collection.current_bytes(), collection.current_items()) == (14, 3)
    assert data_of(collection.fetch("ducklings")) == b"huey"
    assert (collection.current_bytes(), collection.current_items()) == (10, 2)


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


# Operations that must not create a queue (spec 3.1, since 2.3.1)


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
    assert collection.children("jobs") == ["jobs+client1"]


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
    assert collection.children("jobs") == []

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


def test_reload_attaches_a_new_expire_to_queue(harness):
    collection = collection_on(harness)
    collection.add("jobs", b"late", expiry=now_ms(harness) + 1000)
    collection.reload(ServerConfig(queue_path=harness.directory, queue_overrides={"jobs": {"expire_to_queue": "dead"}}))
    harness.clock.advance(2)
    assert collection.fetch("jobs") is None
    assert drain(collection.queue("dead")) == [b"late"]
