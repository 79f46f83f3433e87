"""
A crash between any two steps of the rewrite or pack file dance leaves files that replay to
the right queue: the old files or the new one, never both, never neither.
"""

import os

import pytest

from kestrel.journal import files, records
from kestrel.journal.disk import JournalFiles, OpenJournals
from kestrel.journal.writer import MAX_OPEN_JOURNALS
from kestrel.queue import Item
from kestrel.test.support import QueueHarness, drain


class Crash(BaseException):
    """The process dies here."""


def item(data: bytes) -> Item:
    return Item(data, 1_700_000_000_000, 0, 0)


def spool(directory: str) -> None:
    """Rotated files and a current file that replay to [c, d] with nothing open."""
    layout = {
        "q.100": [records.encode_addx(b"a", 1, 0), records.encode_addx(b"b", 2, 0)],
        "q.200": [records.REMOVE_BYTES, records.encode_addx(b"c", 3, 0)],
        "q": [records.REMOVE_BYTES, records.encode_addx(b"d", 4, 0)],
    }
    for name, content in layout.items():
        with open(os.path.join(directory, name), "wb") as out:
            out.write(b"".join(content))


def crash_after(monkeypatch, steps: int) -> list[int]:
    """Let `steps` renames, deletions and directory fsyncs happen, then crash at the next."""
    done = [0]

    def step(real):
        def stepped(*args, **kwargs):
            if done[0] == steps:
                raise Crash()
            done[0] += 1
            return real(*args, **kwargs)

        return stepped

    for name in ("rename", "replace", "unlink"):
        monkeypatch.setattr(os, name, step(getattr(os, name)))
    monkeypatch.setattr(files, "fsync_directory", step(files.fsync_directory))
    return done


def replayed(directory: str) -> list[bytes]:
    return drain(QueueHarness(directory).queue("q"))


def dance_steps(tmp_path, dance) -> int:
    directory = str(tmp_path / "count")
    os.makedirs(directory)
    spool(directory)
    with pytest.MonkeyPatch.context() as monkeypatch:
        done = crash_after(monkeypatch, 10**6)
        dance(JournalFiles(directory, "q", OpenJournals(MAX_OPEN_JOURNALS)))
    return done[0]


def rewrite(journal: JournalFiles) -> None:
    journal.rewrite([], [item(b"c"), item(b"d")], ["q.100", "q.200"], 300, 301)


def pack(journal: JournalFiles) -> None:
    # The state after q.200 is [b, c]; b is removed again by the first record of q, so the
    # pack holds a placeholder for it.
    journal.pack([], [None, item(b"c")], ["q.100", "q.200"], 400, 200)


@pytest.mark.parametrize("dance", [rewrite, pack])
def test_a_crash_at_any_step_replays_to_the_same_queue(tmp_path, dance):
    steps = dance_steps(tmp_path, dance)
    assert steps >= 4
    for crash_at in range(steps + 1):
        directory = str(tmp_path / f"crash{crash_at}")
        os.makedirs(directory)
        spool(directory)
        with pytest.MonkeyPatch.context() as monkeypatch:
            crash_after(monkeypatch, crash_at)
            with pytest.raises(Crash) if crash_at < steps else _no_crash():
                dance(JournalFiles(directory, "q", OpenJournals(MAX_OPEN_JOURNALS)))
        assert replayed(directory) == [b"c", b"d"], f"crash after step {crash_at} of {steps}"
        assert not [name for name in os.listdir(directory) if "~~" in name or name.endswith(".pack")]


class _no_crash:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
