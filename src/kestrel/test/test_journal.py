"""Journal files at the engine level (doc/compatibility.md §4.1 to §4.3, §5): bytes on disk, sizes, packing, damage."""

import os
import struct

import pytest

from kestrel.journal import records
from kestrel.journal.journal import Journal
from kestrel.test.support import (
    START,
    drain,
    dump,
    journal_file_names,
)

NOW_MS = int(START * 1000)


def file_bytes(harness, name: str) -> bytes:
    harness.settle()
    with open(os.path.join(harness.directory, name), "rb") as file:
        return file.read()


def write_file(harness, name: str, content: bytes) -> None:
    with open(os.path.join(harness.directory, name), "wb") as file:
        file.write(content)


def test_dump_renders_the_spec_notation():
    journal = b"".join([
        struct.pack("<biqq", 2, 16 + 5, NOW_MS, 0) + b"alpha",
        struct.pack("<b", 1),
        struct.pack("<bi", 9, 2),
        struct.pack("<bi", 5, 1),
        struct.pack("<bi", 6, 2),
        struct.pack("<bi", 4, 7),
        struct.pack("<biqq", 2, 16 + 3, NOW_MS, 0) + bytes(3),
    ])
    assert dump(journal) == (
        "add(5:0:alpha), remove, remove-tentative(2), unremove(1), confirm-remove(2), xid(7), add(3:0)"
    )


# What the engine writes, compared with the record table of doc/journal.md packed by hand.


def test_engine_writes_the_spec_layout_for_every_operation(harness):
    queue = harness.queue()
    queue.add(b"hello")
    queue.add(b"world", expiry=NOW_MS + 5000)
    first = queue.remove(transaction=True)
    queue.confirm(first.xid)
    second = queue.remove(transaction=True)
    queue.unremove(second.xid)
    queue.remove()
    queue.add(b"job")
    job = queue.remove(transaction=True)
    queue.continue_transaction(job.xid, b"next step")

    assert file_bytes(harness, "test") == b"".join([
        struct.pack("<biqq", 2, 16 + 5, NOW_MS, 0) + b"hello",
        struct.pack("<biqq", 2, 16 + 5, NOW_MS, NOW_MS + 5000) + b"world",
        struct.pack("<bi", 9, 1),
        struct.pack("<bi", 6, 1),
        struct.pack("<bi", 9, 2),
        struct.pack("<bi", 5, 2),
        struct.pack("<b", 1),
        struct.pack("<biqq", 2, 16 + 3, NOW_MS, 0) + b"job",
        struct.pack("<bi", 9, 3),
        struct.pack("<biiqq", 8, 3, 16 + 9, NOW_MS, 0) + b"next step",
    ])


def test_add_times_are_taken_from_the_clock(harness):
    queue = harness.queue()
    harness.clock.advance(1.5)
    queue.add(b"x")
    assert file_bytes(harness, "test") == struct.pack("<biqq", 2, 17, NOW_MS + 1500, 0) + b"x"


@pytest.mark.parametrize(("size", "journal_size"), [(1, 22), (11, 32), (8192, 8213)])
def test_journal_size_of_one_add(harness, size, journal_size):
    queue = harness.queue()
    queue.add(bytes(size))
    assert queue.journal.size == journal_size
    assert len(file_bytes(harness, "test")) == journal_size
    assert dict(queue.stats())["logsize"] == journal_size


def test_logsize_after_replay_is_the_size_of_the_current_file(harness):
    queue = harness.queue(max_memory_size=64)
    for _ in range(3):
        queue.add(bytes(32))
    assert len(harness.journal_files()) == 2
    queue = harness.restart(queue, max_memory_size=64)
    assert queue.journal.size == 53
    assert queue.journal.archived == 106


# Journal sizes and files through rotate, rewrite and pack


@pytest.fixture
def journal(harness) -> Journal:
    return Journal(harness.directory, "q", harness.writer, harness.clock, None)


def empty_addx() -> bytes:
    return records.encode_addx(b"", NOW_MS, 0)


def sizes(journal: Journal) -> tuple[int, int]:
    return journal.size, journal.archived


def test_sizes_through_rotate_and_rewrite(harness, journal):
    journal.append(empty_addx())
    assert sizes(journal) == (21, 0)
    journal.rotate()
    assert sizes(journal) == (0, 21)
    journal.append(empty_addx())
    assert sizes(journal) == (21, 21)
    harness.settle()
    assert [os.path.getsize(os.path.join(harness.directory, name)) for name in journal.filenames()] == [21, 21]

    journal.rewrite([], [])
    assert sizes(journal) == (0, 0)
    harness.settle()
    assert os.listdir(harness.directory) == ["q"]
    assert file_bytes(harness, "q") == b""


def test_pack_replaces_the_rotated_files_up_to_the_checkpoint(harness, journal):
    journal.append(empty_addx())
    journal.rotate()
    journal.append(empty_addx())
    checkpoint = journal.rotate()
    harness.settle()
    assert [os.path.getsize(os.path.join(harness.directory, name)) for name in journal.filenames()] == [21, 21, 0]

    journal.pack(checkpoint, [], [])
    harness.settle()
    names = journal_file_names(harness.directory, "q")
    assert names == journal.filenames()
    assert len(names) == 2
    assert [os.path.getsize(os.path.join(harness.directory, name)) for name in names] == [0, 0]
    assert sizes(journal) == (0, 0)

    replayed = Journal(harness.directory, "q", harness.writer, harness.clock, None)
    assert list(replayed.replay()) == []


def test_rewrite_writes_open_reads_first_then_the_queue(harness):
    queue = harness.queue(max_journal_size=120)
    for data in (b"a", b"b", b"c", b"d", b"e"):
        queue.add(data)
    queue.remove(transaction=True)
    queue.remove(transaction=True)
    assert queue.journal.size == 5 * 22 + 5 + 5 == 120
    assert queue.journal_rewrites == 0
    queue.remove()
    assert queue.journal_rewrites == 1
    queue.close()
    # Open reads in descending xid order, each an add and its open, then the queued items.
    assert dump(file_bytes(harness, "test")) == (
        "add(1:0:b), remove-tentative(2), add(1:0:a), remove-tentative(1), add(1:0:d), add(1:0:e)"
    )


# Damaged journals


def test_garbage_byte_at_the_end_of_the_journal_is_cut_off(harness, captured_logs):
    queue = harness.queue()
    queue.add(b"one")
    queue.add(b"two")
    queue.close()
    harness.settle()
    good = file_bytes(harness, "test")
    write_file(harness, "test", good + bytes([127]))

    queue = harness.queue()
    assert drain(queue) == [b"one", b"two"]
    assert file_bytes(harness, "test")[: len(good)] == good
    assert file_bytes(harness, "test")[len(good)] == records.REMOVE
    assert any("DATA MAY HAVE BEEN LOST" in message for message in captured_logs.messages())


def test_torn_tail_in_a_rotated_file_is_cut_off_in_that_file(harness, captured_logs):
    a, b, c, d = (records.encode_addx(data, NOW_MS, 0) for data in (b"a", b"b", b"c", b"d"))
    write_file(harness, "test.1000", a + b + c[:10])
    write_file(harness, "test", d)

    queue = harness.queue()
    assert queue.items == 3
    assert file_bytes(harness, "test.1000") == a + b
    assert file_bytes(harness, "test") == d
    assert any("DATA MAY HAVE BEEN LOST" in message for message in captured_logs.messages())
    assert drain(queue) == [b"a", b"b", b"d"]


def test_unknown_opcode_in_a_rotated_file_drops_the_rest_of_that_file_only(harness):
    a, b, c = (records.encode_addx(data, NOW_MS, 0) for data in (b"a", b"b", b"c"))
    write_file(harness, "test.1000", a + bytes([42]) + b)
    write_file(harness, "test", c)

    queue = harness.queue()
    assert drain(queue) == [b"a", b"c"]
    assert file_bytes(harness, "test.1000") == a


def test_missing_current_file_replays_as_empty(harness):
    write_file(harness, "test.1000", records.encode_addx(b"a", NOW_MS, 0))
    queue = harness.queue()
    assert queue.journal.size == 0
    assert drain(queue) == [b"a"]
