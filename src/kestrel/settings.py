"""
Queue settings given at run time (the SQS API's CreateQueue and SetQueueAttributes, issue 14)
and the metadata callers keep beside them, kept in the spool's ``queue-settings.log``.

The collection lays a queue's runtime settings over those of the config file, so a reload of
the file keeps them. Each change appends one line: the queue's whole entry (its settings and
metadata) or its deletion, so a change costs the same however many queues there are (issue
15). At start the lines are read back, the last one of each queue winning, and the file is
compacted to one line per queue once it has grown beyond twice that. Like the journals, the
file is written only by the journal writer thread (`kestrel.journal.writer`), and a change
counts as done once its line is fsynced.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from kestrel.clock import Clock
from kestrel.config import (
    QUEUE_OPTION_PARSERS,
    ConfigError,
    QueueConfig,
    layered_queue_config,
    parse_queue_settings,
    queue_setting_error,
    validate_queue_name,
)
from kestrel.journal import settings_file
from kestrel.journal.writer import JournalWriter, RetryingSource

# How a bad runtime setting is named in its error: "runtime settings: [queues.jobs] max_age: ...".
SOURCE = "runtime settings"


class QueueEntry:
    """
    One queue's runtime settings as given, the same parsed, and its callers' metadata; and the
    queue's whole settings as they were last laid over the config file's (`base`).
    """

    __slots__ = ("settings", "parsed", "metadata", "base", "config")

    def __init__(self, settings: dict[str, Any], parsed: dict[str, object], metadata: dict[str, Any]):
        self.settings = settings
        self.parsed = parsed
        self.metadata = metadata
        self.base: QueueConfig | None = None
        self.config: QueueConfig | None = None


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _entry_line(name: str, entry: QueueEntry) -> bytes:
    return _line({"queue": name, "settings": entry.settings, "metadata": entry.metadata})


def _stored_metadata(name: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `metadata` as the file gives it back; ValueError for what JSON would not give back the same."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata of queue {name} must be a mapping, got {metadata!r}")
    given = dict(metadata)
    try:
        stored = json.loads(json.dumps(given, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata of queue {name} cannot be stored: {error}") from None
    if stored != given:
        raise ValueError(f"metadata of queue {name} cannot be stored as it is: JSON would give back {stored!r}")
    return stored


class RuntimeSettings(RetryingSource):
    """
    The runtime settings and metadata of every queue that has any, by name, and the settings
    file that keeps them, whose writes it queues for the journal writer (and retries).
    """

    log = Logger()

    def __init__(self, directory: str, writer: JournalWriter, clock: Clock):
        super().__init__(writer, clock)
        self._directory = directory
        self._file = settings_file.SettingsFile(directory)
        self._entries: dict[str, QueueEntry] = {}
        self._lines = 0  # in the file, deletions and replaced entries included

    def __repr__(self) -> str:
        return f"<RuntimeSettings {self._file.path}>"

    def describe(self) -> str:
        return self._file.path

    # Start-up

    def load(self) -> None:
        """Read the file back (before the writer thread touches it); compact it when it holds much that no longer counts."""
        lines, torn = settings_file.read_lines(self._directory)
        damaged = 0
        for number, line in enumerate(lines, 1):
            try:
                self._replay(json.loads(line))
            except (ValueError, TypeError, KeyError) as error:
                damaged += 1
                self.log.warn("ignoring line {number} of {path}: {error}", number=number, path=self._file.path, error=error)
        if torn:
            self.log.warn(
                "ignoring the last line of {path}, cut short by a crash while it was written (its change was never confirmed)",
                path=self._file.path,
            )
        self._lines = len(lines)
        if torn or damaged or settings_file.compaction_interrupted(self._directory) or self._lines > 2 * len(self._entries):
            self._compact()

    def _replay(self, record: Any) -> None:
        name = record["queue"]
        if not isinstance(name, str):
            raise ValueError(f"expected a queue name, got {name!r}")
        validate_queue_name(name)
        if record.get("deleted"):
            self._entries.pop(name, None)
            return
        settings, metadata = record["settings"], record["metadata"]
        if not isinstance(settings, dict) or not isinstance(metadata, dict):
            raise ValueError(f"expected settings and metadata of queue {name}, got {record!r}")
        entry = self._entries[name] = QueueEntry({}, {}, metadata)
        for key, value in settings.items():
            # A setting this version no longer takes costs only itself.
            try:
                entry.parsed.update(parse_queue_settings(name, {key: value}, SOURCE))
            except ConfigError as error:
                self.log.warn("ignoring a setting of {path}: {error}", path=self._file.path, error=error)
                continue
            entry.settings[key] = value

    def _compact(self) -> None:
        """Rewrite the file as one line per queue."""
        self._schedule(self._file.replace, b"".join(_entry_line(name, entry) for name, entry in self._entries.items()))
        self._lines = len(self._entries)

    # Reading

    def names(self) -> list[str]:
        """The queues that have an entry (runtime settings or metadata, even empty ones)."""
        return list(self._entries)

    def settings(self, name: str) -> dict[str, Any]:
        """The runtime settings of queue `name` as they were given, or {}."""
        entry = self._entries.get(name)
        return {} if entry is None else copy.deepcopy(entry.settings)

    def queue_config(self, name: str, base: QueueConfig) -> QueueConfig:
        """
        Queue `name`'s settings: its runtime settings over `base`, the config file's. Kept
        while `base` stays the same object (the config caches it until a reload replaces
        it), so a request that needs them (a whitelist check) builds nothing.
        """
        entry = self._entries.get(name)
        if entry is None:
            return base
        if entry.base is not base or entry.config is None:
            entry.config = layered_queue_config(name, base, entry.parsed)
            entry.base = base
        return entry.config

    def metadata(self, name: str) -> dict[str, Any]:
        entry = self._entries.get(name)
        return {} if entry is None else copy.deepcopy(entry.metadata)

    def sets_any(self, keys: Iterable[str]) -> bool:
        """Whether any queue has a runtime setting of one of `keys`."""
        keys = tuple(keys)
        return any(key in entry.parsed for entry in self._entries.values() for key in keys)

    # Changes

    def configure(self, name: str, settings: Mapping[str, object]) -> Deferred:
        """
        Lay `settings` over queue `name`'s runtime settings (a value of None takes that key's
        runtime setting away, back to the config file's). Raises ConfigError for an unknown
        key or a bad value, changing nothing; otherwise fires once the change is on disk.
        """
        unset = [key for key, value in settings.items() if value is None]
        for key in unset:
            if key not in QUEUE_OPTION_PARSERS:
                raise queue_setting_error(SOURCE, name, key, "unknown option")
        given = {key: value for key, value in settings.items() if value is not None}
        parsed = parse_queue_settings(name, given, SOURCE)
        entry = self._entry(name)
        for key in unset:
            entry.settings.pop(key, None)
            entry.parsed.pop(key, None)
        entry.settings.update(copy.deepcopy(given))
        entry.parsed.update(parsed)
        entry.config = None
        return self._save(name, entry)

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> Deferred:
        """
        Keep `metadata` (anything JSON gives back as it is) as queue `name`'s, in place of what
        it had. Raises ValueError for what cannot be stored; otherwise fires once it is on disk.
        """
        entry = self._entry(name)
        entry.metadata = _stored_metadata(name, metadata)
        return self._save(name, entry)

    def forget(self, name: str) -> None:
        """The queue is deleted: so are its settings and metadata."""
        if self._entries.pop(name, None) is not None:
            self._append(_line({"queue": name, "deleted": True}))

    def close(self) -> None:
        self._schedule(self._file.close)

    def _entry(self, name: str) -> QueueEntry:
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = QueueEntry({}, {}, {})
        return entry

    def _save(self, name: str, entry: QueueEntry) -> Deferred:
        self._append(_entry_line(name, entry))
        if self.failure is not None:
            # The line waits for the retry; the caller learns that it is not on disk yet.
            return fail(self.failure)
        return self._writer.when_done(self)

    def _append(self, line: bytes) -> None:
        # The lines of one reactor turn go to the file in one write and one fsync.
        if self._buffer is None:
            buffer = bytearray()
            self._schedule(self._file.append, buffer)
            self._buffer = buffer
        self._buffer += line
        self._lines += 1
