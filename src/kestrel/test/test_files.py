import os
from bisect import bisect_right
from itertools import accumulate

import pytest

from kestrel.journal import records
from kestrel.journal.files import (
    SETTINGS_FILE,
    fsync_directory,
    settle_queue_files,
    keep_damaged_copy,
    list_spool,
    pack_name,
    read_records,
    rotated_name,
    rotated_timestamp,
    temp_name,
)
from kestrel.journal.records import Record

ADD_TIME_MS = 1_700_000_000_000


def queue_names(directory: str) -> list[str]:
    """The queues the start-up listing finds."""
    return sorted(list_spool(directory))


def make_files(directory, contents_by_name: dict[str, bytes]) -> None:
    for name, contents in contents_by_name.items():
        (directory / name).write_bytes(contents)


def make_empty_files(directory, *names: str) -> None:
    make_files(directory, dict.fromkeys(names, b""))


def file_names(directory) -> set[str]:
    return set(os.listdir(directory))


class BrokenCalls:
    def __init__(self):
        self.calls: list[tuple[str, int, str]] = []
        self.copies: list[str] = []

    def __call__(self, path: str, offset: int, reason: str, copy: str) -> None:
        self.calls.append((path, offset, reason))
        self.copies.append(copy)


@pytest.mark.parametrize(
    ("make_name", "expected"),
    [(rotated_name, "q.1234"), (temp_name, "q~~1234"), (pack_name, "q.1234.pack")],
)
def test_file_names(make_name, expected):
    assert make_name("q", 1234) == expected


@pytest.mark.parametrize(
    ("filename", "timestamp"),
    [
        ("q.12", 12),
        ("q.0", 0),
        ("q.1700000000000", 1_700_000_000_000),
        ("q", None),
        ("q.", None),
        ("q.12.pack", None),
        ("qq.12", None),
        ("q2.12", None),
        ("q+fan.12", None),
        ("q.abc", None),
        ("q.-12", None),
        ("q.1²", None),
        ("q~~12", None),
    ],
)
def test_rotated_timestamp(filename, timestamp):
    assert rotated_timestamp("q", filename) == timestamp


@pytest.mark.parametrize(
    ("files", "queues"),
    [
        (["apples", "oranges.101", "oranges.133", "oranges~~900"], ["apples", "oranges"]),
        (["j1", "j1.1000", "j1.2000", "j2~~"], ["j1"]),
        (["q.12.pack"], ["q"]),
        (["q+fan", "q", "q2.5"], ["q", "q+fan", "q2"]),
        ([".hidden", ".DS_Store.1"], []),
        ([SETTINGS_FILE, SETTINGS_FILE + ".new"], []),
        ([SETTINGS_FILE, "queue-settings", "queue-settings.7"], ["queue-settings"]),
        ([], []),
    ],
)
def test_queue_names(tmp_path, files, queues):
    make_empty_files(tmp_path, *files)
    assert queue_names(str(tmp_path)) == queues


def test_queue_names_ignores_directories(tmp_path):
    make_empty_files(tmp_path, "apples")
    (tmp_path / "bananas").mkdir()
    (tmp_path / "cherries.5").mkdir()
    assert queue_names(str(tmp_path)) == ["apples"]


def test_queue_names_of_missing_directory(tmp_path):
    assert queue_names(str(tmp_path / "missing")) == []


@pytest.mark.parametrize(
    ("files", "listing", "remaining"),
    [
        pytest.param(
            ["test.50", "test.100", "test.100.pack", "test.3000", "test"],
            ["test.100", "test.3000", "test"],
            {"test.100", "test.3000", "test"},
            id="spec-pack",
        ),
        pytest.param(
            ["test.50", "test.100"],
            ["test.50", "test.100", "test"],
            {"test.50", "test.100"},
            id="spec-missing-current",
        ),
        pytest.param([], ["test"], set(), id="nothing"),
        pytest.param(
            ["test.9", "test.100", "test.10", "test"],
            ["test.9", "test.10", "test.100", "test"],
            {"test.9", "test.100", "test.10", "test"},
            id="numeric-order",
        ),
        pytest.param(
            ["test.5", "test.10.pack", "test.20", "test.30.pack", "test.40", "test"],
            ["test.30", "test.40", "test"],
            {"test.30", "test.40", "test"},
            id="two-packs",
        ),
        pytest.param(
            ["test.100.pack", "test.200"],
            ["test.100", "test.200", "test"],
            {"test.100", "test.200"},
            id="pack-alone",
        ),
        pytest.param(
            ["test~~1", "test~~", "test.7", "test"],
            ["test.7", "test"],
            {"test.7", "test"},
            id="temp-files",
        ),
    ],
)
def test_settle_queue_files(tmp_path, files, listing, remaining):
    make_empty_files(tmp_path, *files)
    assert settle_queue_files(str(tmp_path), "test") == listing
    assert file_names(tmp_path) == remaining


def test_pack_replaces_the_contents_of_rotated_files(tmp_path):
    make_files(tmp_path, {"q.50": b"old", "q.100": b"older", "q.100.pack": b"packed", "q.3000": b"new"})
    settle_queue_files(str(tmp_path), "q")
    assert (tmp_path / "q.100").read_bytes() == b"packed"
    assert (tmp_path / "q.3000").read_bytes() == b"new"


def test_settle_queue_files_leaves_other_queues_alone(tmp_path):
    others = ["q2", "q2.10", "q2.10.pack", "q2~~3", "q+fan.5", "q+fan~~6", "qq.1.pack", "other.1"]
    make_empty_files(tmp_path, "q", "q.20", "q.30.pack", "q~~40", *others)
    assert settle_queue_files(str(tmp_path), "q") == ["q.30", "q"]
    assert file_names(tmp_path) == {"q", "q.30", *others}


def test_settle_queue_files_of_missing_directory(tmp_path):
    assert settle_queue_files(str(tmp_path / "missing"), "q") == ["q"]


ITEMS = [b"first", b"second item", b"the third and longest item of all"]
THREE_RECORD_PARTS = [records.encode_addx(item, ADD_TIME_MS + i, 0) for i, item in enumerate(ITEMS)]
THREE_RECORD_JOURNAL = b"".join(THREE_RECORD_PARTS)
THREE_RECORD_ENDS = list(accumulate(len(part) for part in THREE_RECORD_PARTS))
THREE_RECORDS = [Record(records.ADDX, data=item, add_time=ADD_TIME_MS + i) for i, item in enumerate(ITEMS)]


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 21, 26, 1 << 20])
def test_read_records_streams_across_chunk_boundaries(tmp_path, chunk_size):
    journal = tmp_path / "q"
    journal.write_bytes(THREE_RECORD_JOURNAL)
    broken = BrokenCalls()
    assert list(read_records(str(journal), broken, chunk_size)) == list(zip(THREE_RECORDS, THREE_RECORD_ENDS))
    assert broken.calls == []
    assert journal.read_bytes() == THREE_RECORD_JOURNAL


def test_read_records_reads_a_record_many_chunks_long(tmp_path):
    big_item = bytes(range(256)) * 40
    journal = tmp_path / "q"
    journal.write_bytes(
        records.REMOVE_BYTES + records.encode_addx(big_item, ADD_TIME_MS, 0) + records.REMOVE_BYTES
    )
    assert [record for record, _ in read_records(str(journal), chunk_size=16)] == [
        Record(records.REMOVE),
        Record(records.ADDX, data=big_item, add_time=ADD_TIME_MS),
        Record(records.REMOVE),
    ]


@pytest.mark.parametrize("cut", range(len(THREE_RECORD_JOURNAL) + 1))
def test_torn_tail_is_truncated_to_the_last_whole_record(tmp_path, cut):
    journal = tmp_path / "q.1000"
    journal.write_bytes(THREE_RECORD_JOURNAL[:cut])
    whole_records = bisect_right(THREE_RECORD_ENDS, cut)
    last_whole_end = THREE_RECORD_ENDS[whole_records - 1] if whole_records else 0
    broken = BrokenCalls()

    read = list(read_records(str(journal), broken, chunk_size=8))

    assert read == list(zip(THREE_RECORDS, THREE_RECORD_ENDS))[:whole_records]
    assert journal.stat().st_size == last_whole_end
    if last_whole_end == cut:
        assert broken.calls == []
    else:
        assert [(path, offset) for path, offset, _ in broken.calls] == [(str(journal), last_whole_end)]


def test_garbage_opcode_truncates_that_file_only(tmp_path):
    rotated = tmp_path / "q.1000"
    current = tmp_path / "q"
    good = records.encode_addx(b"kept", ADD_TIME_MS, 0)
    rotated.write_bytes(good + bytes([127]) + records.encode_addx(b"lost", ADD_TIME_MS, 0))
    current.write_bytes(THREE_RECORD_JOURNAL)
    broken = BrokenCalls()

    read = list(read_records(str(rotated), broken))

    assert read == [(Record(records.ADDX, data=b"kept", add_time=ADD_TIME_MS), len(good))]
    assert rotated.read_bytes() == good
    assert current.read_bytes() == THREE_RECORD_JOURNAL
    [(path, offset, reason)] = broken.calls
    assert (path, offset) == (str(rotated), len(good))
    assert "127" in reason


def test_a_damaged_file_is_copied_whole_before_it_is_cut(tmp_path):
    rotated = tmp_path / "q.1000"
    damaged = records.encode_addx(b"kept", ADD_TIME_MS, 0) + bytes([127]) + records.encode_addx(b"evidence", ADD_TIME_MS, 0)
    rotated.write_bytes(damaged)
    broken = BrokenCalls()

    list(read_records(str(rotated), broken))

    [copy] = broken.copies
    assert os.path.dirname(copy) == str(tmp_path)
    assert "damaged" in os.path.basename(copy)
    assert open(copy, "rb").read() == damaged


def test_damaged_copies_are_no_queue_and_no_journal_file(tmp_path):
    (tmp_path / "q").write_bytes(THREE_RECORD_JOURNAL)
    (tmp_path / "q.1000.1700000000000.damaged").write_bytes(b"\x7f")
    (tmp_path / "gone.1700000000000.damaged").write_bytes(b"\x7f")
    assert queue_names(str(tmp_path)) == ["q"]
    assert list_spool(str(tmp_path)) == {"q": ["q"]}
    assert settle_queue_files(str(tmp_path), "q") == ["q"]


def test_broken_record_is_truncated_without_a_callback(tmp_path):
    journal = tmp_path / "q"
    journal.write_bytes(THREE_RECORD_JOURNAL + bytes([127]))
    assert len(list(read_records(str(journal)))) == len(THREE_RECORDS)
    assert journal.read_bytes() == THREE_RECORD_JOURNAL


def test_read_records_of_missing_file_yields_nothing(tmp_path):
    broken = BrokenCalls()
    assert list(read_records(str(tmp_path / "q"), broken)) == []
    assert broken.calls == []
    assert file_names(tmp_path) == set()


def test_fsync_directory(tmp_path):
    fsync_directory(str(tmp_path))


def test_two_damaged_copies_in_one_millisecond_are_both_kept(tmp_path, monkeypatch):
    monkeypatch.setattr("time.time_ns", lambda: 1_700_000_000_000_000_000)
    journal = tmp_path / "q"
    journal.write_bytes(b"first")
    first = keep_damaged_copy(str(journal))
    journal.write_bytes(b"second")
    second = keep_damaged_copy(str(journal))
    assert first != second
    assert (open(first, "rb").read(), open(second, "rb").read()) == (b"first", b"second")
