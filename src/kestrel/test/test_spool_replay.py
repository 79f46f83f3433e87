"""
Replaying a Kestrel spool directory built by hand (doc/compatibility.md §4.1 to §4.3, §5).

The journal bytes here come from struct.pack following the record table of doc/journal.md
(doc/compatibility.md §4.1), not from the engine's encoder, so that encoder and decoder
cannot agree on a mistake.
"""

import os
import struct

import pytest

from kestrel.test.support import (
    START,
    collection_on,
    drain,
    dump,
)

NOW_MS = int(START * 1000)
T0 = NOW_MS - 100_000  # add time of the items in the hand-built journal


# One function per opcode, straight from the record table of doc/journal.md (little-endian, signed).


def op_add(data: bytes, expiry_s: int) -> bytes:  # 0, legacy: i32 size, i32 expiry_s, data[size-4]
    return struct.pack("<bii", 0, 4 + len(data), expiry_s) + data


def op_remove() -> bytes:  # 1
    return struct.pack("<b", 1)


def op_addx(data: bytes, add_ms: int = T0, expiry_ms: int = 0) -> bytes:  # 2: i32 size, i64, i64, data
    return struct.pack("<biqq", 2, 16 + len(data), add_ms, expiry_ms) + data


def op_remove_tentative() -> bytes:  # 3, legacy: xid implied
    return struct.pack("<b", 3)


def op_save_xid(xid: int) -> bytes:  # 4, legacy
    return struct.pack("<bi", 4, xid)


def op_unremove(xid: int) -> bytes:  # 5
    return struct.pack("<bi", 5, xid)


def op_confirm_remove(xid: int) -> bytes:  # 6
    return struct.pack("<bi", 6, xid)


def op_add_xid(xid: int, data: bytes, add_ms: int = T0, expiry_ms: int = 0) -> bytes:  # 7, legacy
    return struct.pack("<biiqq", 7, xid, 16 + len(data), add_ms, expiry_ms) + data


def op_continue(xid: int, data: bytes, add_ms: int = T0, expiry_ms: int = 0) -> bytes:  # 8
    return struct.pack("<biiqq", 8, xid, 16 + len(data), add_ms, expiry_ms) + data


def op_remove_tentative_xid(xid: int) -> bytes:  # 9
    return struct.pack("<bi", 9, xid)


ANCIENT_EXPIRY_S = int(START) - 60

# The state after each record is in the comment: queue [..], open {xid: item}.
PACK = b"".join([
    op_addx(b"gone"),                # [gone]
    op_remove(),                     # []
    op_addx(b"one"),
    op_addx(b"two"),
    op_addx(b"three"),
    op_addx(b"four"),                # [one, two, three, four]
    op_save_xid(20),                 # xid counter 20
    op_remove_tentative(),           # open {21: one}: legacy open takes the next xid
    op_remove_tentative_xid(30),     # open {21: one, 30: two}
    op_remove_tentative_xid(25),     # open {.., 25: three}
    op_confirm_remove(25),           # [four], open {21: one, 30: two}
])
ROTATED = b"".join([
    op_remove_tentative_xid(31),     # [], open {.., 31: four}
    op_unremove(31),                 # [four]
    op_add(b"ancient", ANCIENT_EXPIRY_S),  # legacy add, expired a minute ago
    op_add(b"legacy", 0),            # legacy add without expiry
    op_add_xid(99, b"five"),         # [four, ancient, legacy, five]
    op_remove_tentative_xid(32),     # [ancient, legacy, five], open {.., 32: four}
])
CURRENT = b"".join([
    op_continue(32, b"six"),         # four done; [ancient, legacy, five, six]
    op_addx(b"seven"),               # [ancient, legacy, five, six, seven]
    op_save_xid(40),                 # xid counter 40
])
SPOOL = {
    "q.1000": op_addx(b"stale-1000"),  # replaced by the pack
    "q.2000": op_addx(b"stale-2000"),  # replaced by the pack
    "q.2000.pack": PACK,
    "q.3000": ROTATED,
    "q": CURRENT,
    "q~~900": op_addx(b"half-written temp file"),
    "r.5": op_addx(b"only in a rotated file"),
}

# After replay, the reads left open (21: one, 30: two) are rolled back to the head.
ITEMS_AFTER_REPLAY = [b"one", b"two", b"ancient", b"legacy", b"five", b"six", b"seven"]


def test_every_opcode_is_in_the_hand_built_spool():
    opcodes = set()
    for content in SPOOL.values():
        position = 0
        # A tiny walker over that record layout: enough to list the opcodes used.
        while position < len(content):
            op = content[position]
            opcodes.add(op)
            if op in (1, 3):
                position += 1
            elif op in (4, 5, 6, 9):
                position += 5
            elif op == 0:
                position += 5 + struct.unpack_from("<i", content, position + 1)[0]
            elif op == 2:
                position += 5 + struct.unpack_from("<i", content, position + 1)[0]
            else:
                position += 9 + struct.unpack_from("<i", content, position + 5)[0]
    assert opcodes == set(range(10))


def write_spool(directory: str) -> None:
    for name, content in SPOOL.items():
        with open(os.path.join(directory, name), "wb") as file:
            file.write(content)


@pytest.fixture(params=["queue", "collection"])
def loaded(request, harness):
    """Replays the spool through PersistentQueue alone or through QueueCollection.load."""
    write_spool(harness.directory)
    if request.param == "queue":
        return harness.queue("q")
    collection = collection_on(harness)
    assert collection.names() == ["q", "r"]
    return collection.queue("q", create=False)


def test_replay_cleans_up_the_spool_directory(harness, loaded):
    harness.settle()
    names = set(os.listdir(harness.directory)) - {"r.5", "r"}
    assert names == {"q.2000", "q.3000", "q"}
    with open(os.path.join(harness.directory, "q.2000"), "rb") as file:
        assert file.read() == PACK


def test_replay_rebuilds_the_items_in_order_with_open_reads_rolled_back(loaded):
    assert loaded.items == len(ITEMS_AFTER_REPLAY)
    assert loaded.open_transactions == 0
    assert loaded.bytes == sum(map(len, ITEMS_AFTER_REPLAY))
    assert [item.data for item in loaded._memory] == ITEMS_AFTER_REPLAY


def test_replay_journals_the_rollback_in_descending_xid_order(harness, loaded):
    assert dump(harness.journal_bytes("q")) == (
        "continue(32:3:six), add(5:0:seven), xid(40), unremove(30), unremove(21)"
    )


def test_xid_counter_continues_from_the_last_xid_in_the_journal(loaded):
    item = loaded.remove(transaction=True)
    assert (item.data, item.xid) == (b"one", 41)


def test_items_keep_their_add_times_and_legacy_adds_take_the_replay_time(loaded):
    times = {item.data: (item.add_time, item.expiry) for item in loaded._memory}
    assert times[b"one"] == (T0, 0)
    assert times[b"six"] == (T0, 0)
    assert times[b"legacy"] == (NOW_MS, 0)
    assert times[b"ancient"] == (NOW_MS, ANCIENT_EXPIRY_S * 1000)


def test_expired_legacy_item_is_swept_when_it_reaches_the_head(loaded):
    assert loaded.expired_items == 0
    assert drain(loaded) == [b"one", b"two", b"legacy", b"five", b"six", b"seven"]
    assert loaded.expired_items == 1


def test_queue_found_only_in_a_rotated_file_is_loaded(harness):
    write_spool(harness.directory)
    collection = collection_on(harness)
    assert drain(collection.queue("r")) == [b"only in a rotated file"]


def test_restart_after_replay_gives_the_same_queue(harness):
    write_spool(harness.directory)
    queue = harness.queue("q")
    queue = harness.restart(queue)
    assert queue.open_transactions == 0
    assert drain(queue) == [b"one", b"two", b"legacy", b"five", b"six", b"seven"]


def test_xid_counter_wraps_to_one_after_the_largest_i32(harness):
    largest = 2**31 - 1
    with open(os.path.join(harness.directory, "wrap"), "wb") as file:
        file.write(op_addx(b"a") + op_addx(b"b") + op_save_xid(largest - 1))
    queue = harness.queue("wrap")
    assert queue.remove(transaction=True).xid == largest
    assert queue.remove(transaction=True).xid == 1
