"""Runtime queue settings and metadata (kestrel.settings, issue 14): layering, reloads, deletes, the settings file."""

import json
import os

import pytest

from kestrel.collection import InvalidQueueName, QueueCollection
from kestrel.config import ConfigError, QueueConfig, ServerConfig
from kestrel.journal import files
from kestrel.journal.settings_file import SettingsFile
from kestrel.journal.writer import JournalWriter
from kestrel.session import Session, Unavailable
from kestrel.test.support import (
    RecordingRunner,
    ServerHarness,
    collection_on,
    drain,
    fired,
    restart_collection,
)


def settings_path(harness) -> str:
    return os.path.join(harness.directory, files.SETTINGS_FILE)


def settings_lines(harness) -> list[dict]:
    harness.settle()
    with open(settings_path(harness), "rb") as settings:
        return [json.loads(line) for line in settings.read().splitlines()]


def write_settings_file(harness, content: bytes) -> None:
    with open(settings_path(harness), "wb") as settings:
        settings.write(content)


def line(queue: str, settings: dict, metadata: dict | None = None) -> bytes:
    return json.dumps({"queue": queue, "settings": settings, "metadata": metadata or {}}).encode() + b"\n"


@pytest.fixture
def configured(harness) -> QueueCollection:
    """A collection whose config file sets limits for every queue and for `jobs`."""
    return collection_on(
        harness, default_queue=QueueConfig(max_items=100, max_size=1000), queue_overrides={"jobs": {"max_item_size": 10}}
    )


# Layering


def test_runtime_settings_lie_over_the_config_files(harness, configured):
    configured.configure("jobs", {"max_items": 5, "max_age": "30s"})
    config = configured.queue("jobs").config
    assert (config.max_items, config.max_age, config.max_size, config.max_item_size) == (5, 30.0, 1000, 10)
    assert configured.queue_config("jobs") == config
    assert configured.settings("jobs") == {"max_items": 5, "max_age": "30s"}
    assert configured.queue_config("other").max_items == 100


def test_a_second_change_adds_to_the_first_and_none_takes_one_away(configured):
    configured.configure("jobs", {"max_items": 5, "max_age": "30s"})
    configured.configure("jobs", {"max_age": None, "max_size": "2KB"})
    assert configured.settings("jobs") == {"max_items": 5, "max_size": "2KB"}
    config = configured.queue("jobs").config
    assert (config.max_items, config.max_age, config.max_size) == (5, None, 2048)


def test_the_queue_takes_them_at_once(configured):
    configured.configure("jobs", {"max_items": 1})
    assert configured.add("jobs", b"one")
    assert not configured.add("jobs", b"two")


def test_configure_creates_the_queue(configured):
    configured.configure("fresh", {})
    assert "fresh" in configured
    assert configured.settings("fresh") == {}


def test_a_reload_keeps_them(harness, configured):
    configured.configure("jobs", {"max_items": 5})
    configured.reload(ServerConfig(
        queue_path=harness.directory, default_queue=QueueConfig(max_size=77), queue_overrides={"jobs": {"max_items": 50}}
    ))
    config = configured.queue("jobs").config
    assert (config.max_items, config.max_size, config.max_item_size) == (5, 77, 2**63 - 1)


def test_a_runtime_dead_letter_queue_is_attached(configured):
    configured.configure("jobs", {"max_deliveries": 1, "dead_letter_queue": "dead"})
    configured.add("jobs", b"spent")
    configured.unremove("jobs", configured.fetch("jobs", transaction=True).xid)
    assert configured.fetch("jobs", transaction=True) is None
    assert drain(configured.queue("dead")) == [b"spent"]


def test_a_runtime_whitelist_is_enforced(harness):
    kestrel = ServerHarness(harness)
    kestrel.collection.configure("billing", {"whitelist_client_id_for_enqueue": ["billing"]})
    session = Session(kestrel.server)
    with pytest.raises(Unavailable):
        session.set("billing", b"invoice")
    session.client_id = "billing"
    assert session.set("billing", b"invoice")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_items": "ten"}, "[queues.jobs] max_items: expected a non-negative integer, got 'ten'"),
        ({"max_itemz": 1}, "[queues.jobs] max_itemz: unknown option"),
        ({"max_itemz": None}, "[queues.jobs] max_itemz: unknown option"),
        ({"max_deliveries": 0}, "[queues.jobs] max_deliveries: expected a positive integer, got 0"),
        ({"dead_letter_queue": "jobs"}, "[queues.jobs] dead_letter_queue: a queue cannot be its own dead-letter queue"),
        ({"max_items": 5, "sync_journal": "often"},
         "[queues.jobs] sync_journal: expected a duration such as '30s', '100ms', 0 or 'never', got 'often'"),
    ],
)
def test_a_bad_setting_is_named_and_changes_nothing(harness, configured, settings, message):
    with pytest.raises(ConfigError) as raised:
        configured.configure("jobs", settings)
    assert str(raised.value) == f"runtime settings: {message}"
    assert configured.settings("jobs") == {}
    assert "jobs" not in configured
    harness.settle()
    assert not os.path.exists(settings_path(harness))


@pytest.mark.parametrize("name", ["a.b", "", "everyone"])
def test_a_bad_name_or_an_alias_cannot_be_configured(harness, name):
    collection = collection_on(harness, aliases={"everyone": ("jobs",)})
    with pytest.raises(InvalidQueueName):
        collection.configure(name, {"max_items": 1})
    with pytest.raises(InvalidQueueName):
        collection.set_metadata(name, {"a": 1})
    assert len(collection) == 0


# Metadata


def test_metadata_is_kept_whole_and_replaced_whole(configured):
    configured.set_metadata("jobs", {"attributes": {"DelaySeconds": "0"}, "tags": {"team": "billing"}})
    assert configured.metadata("jobs") == {"attributes": {"DelaySeconds": "0"}, "tags": {"team": "billing"}}
    configured.set_metadata("jobs", {"tags": {}})
    assert configured.metadata("jobs") == {"tags": {}}
    assert configured.metadata("other") == {}


def test_the_metadata_returned_is_a_copy(configured):
    configured.set_metadata("jobs", {"tags": {"team": "billing"}})
    configured.metadata("jobs")["tags"]["team"] = "changed"
    assert configured.metadata("jobs") == {"tags": {"team": "billing"}}


@pytest.mark.parametrize("metadata", [{"pair": (1, 2)}, {1: "one"}, {"nan": float("nan")}, {"object": object()}, ["list"]])
def test_metadata_that_json_would_change_is_refused(configured, metadata):
    with pytest.raises(ValueError):
        configured.set_metadata("jobs", metadata)
    assert configured.metadata("jobs") == {}


# Persistence


def test_each_change_appends_the_queues_whole_entry(harness, configured):
    configured.configure("jobs", {"max_items": 5})
    configured.set_metadata("jobs", {"tags": {"team": "billing"}})
    assert settings_lines(harness) == [
        {"queue": "jobs", "settings": {"max_items": 5}, "metadata": {}},
        {"queue": "jobs", "settings": {"max_items": 5}, "metadata": {"tags": {"team": "billing"}}},
    ]


def test_a_restart_brings_back_settings_metadata_and_the_queues_that_have_them(harness, configured):
    configured.configure("jobs", {"max_items": 5})
    configured.configure("jobs", {"max_age": "1min"})
    configured.set_metadata("empty", {"created": 1700000000})
    collection = restart_collection(harness, configured)
    assert collection.names() == ["empty", "jobs"]
    assert collection.settings("jobs") == {"max_items": 5, "max_age": "1min"}
    assert (collection.queue("jobs").config.max_items, collection.queue("jobs").config.max_age) == (5, 60.0)
    assert collection.metadata("empty") == {"created": 1700000000}


def test_a_deleted_queue_loses_its_settings_and_metadata_for_good(harness, configured):
    configured.configure("jobs", {"max_items": 5})
    configured.set_metadata("jobs", {"tags": {}})
    assert configured.delete("jobs")
    assert (configured.settings("jobs"), configured.metadata("jobs")) == ({}, {})
    assert configured.queue("jobs").config.max_items == 100
    assert settings_lines(harness)[-1] == {"queue": "jobs", "deleted": True}

    collection = restart_collection(harness, configured)
    # The queue made again by the read above has no items, so no journal to come back from.
    assert (collection.settings("jobs"), "jobs" in collection) == ({}, False)


def test_deleting_a_queue_without_settings_writes_nothing(harness, configured):
    configured.add("plain", b"x")
    configured.delete("plain")
    harness.settle()
    assert not os.path.exists(settings_path(harness))


def test_closing_the_collection_closes_the_file(harness, configured):
    configured.configure("jobs", {"max_items": 5})
    harness.settle()
    path = settings_path(harness)

    def open_paths() -> list[str]:
        return [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")]

    assert path in open_paths()
    configured.close()
    harness.settle()
    assert path not in open_paths()


def test_the_change_fires_once_its_line_is_on_disk(harness):
    runner = RecordingRunner()
    writer = JournalWriter(harness.clock, runner=runner)
    writer.startService()
    collection = QueueCollection(ServerConfig(queue_path=harness.directory), writer, harness.clock)
    collection.load()
    first = fired(collection.configure("jobs", {"max_items": 5}))
    second = fired(collection.set_metadata("jobs", {"tags": {}}))
    harness.clock.advance(0)
    assert (first, second) == ([], [])
    assert not os.path.exists(settings_path(harness))

    (batch,) = runner.batches()
    (operations,) = [operations for source, operations in batch if source is collection._runtime]
    assert [function.__name__ for function, _, _ in operations] == ["append"]  # two lines, one write and fsync
    runner.run_all()
    assert (first, second) == ([None], [None])
    assert len(settings_lines(harness)) == 2


def test_a_failed_write_fails_the_change_and_is_retried(harness, configured, monkeypatch, captured_logs):
    real_append = SettingsFile.append
    failures = [OSError(28, "No space left on device")]

    def append(self, lines):
        if failures:
            raise failures.pop()
        real_append(self, lines)

    monkeypatch.setattr(SettingsFile, "append", append)
    first = fired(configured.configure("jobs", {"max_items": 5}))
    harness.settle()
    assert isinstance(first[0].value, OSError)
    assert fired(configured.configure("jobs", {"max_size": 50}))[0].value.args[0] == 28
    assert any("writing" in message and "failed; retrying" in message for message in captured_logs.messages())

    harness.clock.advance(1)
    assert [entry["settings"] for entry in settings_lines(harness)] == [{"max_items": 5}, {"max_items": 5, "max_size": 50}]
    later = fired(configured.configure("jobs", {"max_age": 1}))
    harness.settle()
    assert later == [None]
    assert any("writable again" in message for message in captured_logs.messages())


def test_a_failed_write_leaves_no_half_line(harness, configured, monkeypatch):
    configured.configure("jobs", {"max_items": 5})
    harness.settle()

    def write_half(fd, data):
        os.write(fd, bytes(data[:7]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kestrel.journal.settings_file.write_all", write_half)
    configured.configure("jobs", {"max_items": 6})
    harness.settle()
    monkeypatch.undo()
    harness.clock.advance(1)
    assert [entry["settings"] for entry in settings_lines(harness)] == [{"max_items": 5}, {"max_items": 6}]


# Replay


def test_a_torn_last_line_is_ignored_logged_and_cut_before_the_next_line(harness, captured_logs):
    write_settings_file(harness, line("jobs", {"max_items": 5}) + line("jobs", {"max_items": 6})[:20])
    collection = collection_on(harness)
    assert collection.settings("jobs") == {"max_items": 5}
    assert any("ignoring the last line" in message for message in captured_logs.messages())

    collection.configure("jobs", {"max_size": 9})
    collection = restart_collection(harness, collection)
    assert collection.settings("jobs") == {"max_items": 5, "max_size": 9}
    assert len(settings_lines(harness)) == 2


def test_a_damaged_line_costs_only_itself(harness, captured_logs):
    write_settings_file(harness, line("jobs", {"max_items": 5}) + b"{not json\n" + line("other", {"max_items": 6}))
    collection = collection_on(harness)
    assert (collection.settings("jobs"), collection.settings("other")) == ({"max_items": 5}, {"max_items": 6})
    assert any("ignoring line 2" in message for message in captured_logs.messages())


def test_a_setting_that_no_longer_parses_costs_only_itself(harness, captured_logs):
    write_settings_file(harness, line("jobs", {"max_items": -1, "max_size": 9}))
    collection = collection_on(harness)
    assert collection.settings("jobs") == {"max_size": 9}
    assert any("max_items: expected a non-negative integer" in message for message in captured_logs.messages())


def test_the_last_line_of_each_queue_wins(harness):
    write_settings_file(harness, line("a", {"max_items": 1}) + line("b", {"max_items": 2}) + line("a", {"max_items": 3}))
    collection = collection_on(harness)
    assert (collection.settings("a"), collection.settings("b")) == ({"max_items": 3}, {"max_items": 2})


def test_the_file_is_compacted_at_start_once_it_holds_over_twice_the_live_lines(harness):
    collection = collection_on(harness)
    for count in range(1, 4):
        collection.configure("jobs", {"max_items": count})
    collection.configure("gone", {})
    collection.delete("gone")
    collection = restart_collection(harness, collection)
    assert settings_lines(harness) == [{"queue": "jobs", "settings": {"max_items": 3}, "metadata": {}}]

    collection.configure("jobs", {"max_items": 4})
    collection = restart_collection(harness, collection)
    assert len(settings_lines(harness)) == 2
    assert collection.settings("jobs") == {"max_items": 4}


def test_a_compaction_cut_short_is_done_again(harness):
    write_settings_file(harness, line("jobs", {"max_items": 5}))
    with open(settings_path(harness) + ".new", "wb") as replacement:
        replacement.write(b"half")
    collection_on(harness)
    harness.settle()
    assert sorted(os.listdir(harness.directory)) == [files.SETTINGS_FILE]
    assert settings_lines(harness) == [{"queue": "jobs", "settings": {"max_items": 5}, "metadata": {}}]


def test_the_settings_file_is_no_queue_and_a_queue_may_share_its_stem(harness):
    write_settings_file(harness, line("queue-settings", {"max_items": 5}))
    collection = collection_on(harness)
    collection.add("queue-settings", b"x")
    collection = restart_collection(harness, collection)
    assert collection.names() == ["queue-settings"]
    assert drain(collection.queue("queue-settings")) == [b"x"]
    assert collection.settings("queue-settings") == {"max_items": 5}
