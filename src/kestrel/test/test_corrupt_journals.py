"""
Damaged journals never stop a queue from starting: replay keeps every record before the
damage, invents no items, and says what it dropped.

Kestrel's format has no checksums, so a flipped byte inside an item's payload is not
noticed: that item comes back with the flipped byte; and a flipped size can make one record
read a byte of its neighbour before the damage is noticed. Damage to the structure (an
opcode, a size, a torn tail) is then cut off at the last whole record.
"""

import functools
import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.journal import records
from kestrel.test.support import QueueHarness, drain

ITEMS = [b"item-%02d-" % n + b"abcdefghij"[: n % 10] for n in range(12)]


def history() -> tuple[bytes, list[tuple[int, int, bytes | None]]]:
    """
    A journal of adds, removes, open reads, confirms and aborts, and after each record the
    queue it leaves (as item list), so a damaged copy can be checked against the prefix it keeps.
    Returns the bytes and (record start, record end, payload) for each record.
    """
    steps = []
    for n, item in enumerate(ITEMS):
        steps.append(records.encode_addx(item, 1_700_000_000_000 + n, 0))
        if n % 3 == 2:
            steps.append(records.REMOVE_BYTES)
        if n % 4 == 3:
            steps.append(records.encode_remove_tentative(n))
            steps.append(records.encode_confirm_remove(n) if n % 8 == 3 else records.encode_unremove(n))
    spans, offset = [], 0
    for record in steps:
        decoded, _ = records.decode(record, 0)
        spans.append((offset, offset + len(record), decoded.data))
        offset += len(record)
    return b"".join(steps), spans


JOURNAL, SPANS = history()


def replay_state(journal: bytes) -> tuple[list[bytes], int]:
    """The items a queue replays from `journal`, and the journal's size after the replay."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "test")
        with open(path, "wb") as out:
            out.write(journal)
        items = drain(QueueHarness(directory).queue())
        return items, os.path.getsize(path)


@functools.cache
def expected_state(whole_records: int) -> list[bytes]:
    """What the first `whole_records` records replay to, from an undamaged journal."""
    end = SPANS[whole_records - 1][1] if whole_records else 0
    return replay_state(JOURNAL[:end])[0]


def test_truncation_at_every_offset_keeps_the_whole_records_before_it(captured_logs):
    for cut in range(len(JOURNAL) + 1):
        whole = sum(1 for _, end, _ in SPANS if end <= cut)
        items, size = replay_state(JOURNAL[:cut])
        assert items == expected_state(whole), cut
        # The damaged file was cut back to its last whole record (and then grew by the
        # rollback of reads left open, exactly as the undamaged prefix does).
        assert size == replay_state(JOURNAL[: SPANS[whole - 1][1] if whole else 0])[1], cut
    assert any("DATA MAY HAVE BEEN LOST" in message for message in captured_logs.messages())


@settings(max_examples=300, deadline=None)
@given(position=st.integers(0, len(JOURNAL) - 1), flip=st.integers(1, 255))
def test_a_flipped_byte_never_stops_replay_nor_invents_items(position, flip):
    damaged = bytearray(JOURNAL)
    damaged[position] ^= flip
    state, _ = replay_state(bytes(damaged))
    index = next(i for i, (start, end, _) in enumerate(SPANS) if start <= position < end)
    _, end, payload = SPANS[index]
    if payload is not None and position >= end - len(payload):
        # Undetectable without checksums: the same history, with one item's byte changed.
        original = expected_state(len(SPANS))
        assert len(state) == len(original)
        assert sum(a != b for a, b in zip(state, original)) <= 1
    else:
        # A damaged size or opcode can make one record read across the flipped byte (an item
        # with bytes of its neighbour), but the damage is then cut off: no other item is new...
        aliens = set(state) - set(ITEMS)
        assert len(aliens) <= 1
        # The alien is the payload of the damaged record itself, read as an add of some kind
        # (legacy ADD, ADDX, or ADD_XID/CONTINUE, whose headers differ in length).
        start = SPANS[index][0]
        headers = [records.record_size(op) for op in (records.ADD, records.ADDX, records.CONTINUE)]
        for alien in aliens:
            assert any(damaged[start + header : start + header + len(alien)] == alien for header in headers)
        # ...and every item the records before the damage left queued is still there,
        # unless a later record that survived (misread) removed it.
        assert len(set(expected_state(index)) - set(state)) <= len(SPANS) - index
