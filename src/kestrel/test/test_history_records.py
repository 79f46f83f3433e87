"""The byte codecs of history (kestrel.history.records, kestrel.history.cursor) and segment scans."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.history import BadCursor, cursor, records
from kestrel.history.cursor import Position
from kestrel.history.segments import HistoryFiles, scan
from kestrel.journal.disk import OpenJournals

times = st.integers(min_value=-(2**63), max_value=2**63 - 1)
keys = st.tuples(times, st.integers(min_value=0, max_value=2**32 - 1))
any_record = st.one_of(
    st.builds(records.Added, times, times, st.binary(max_size=300), st.booleans()),
    st.builds(records.Left, times, st.sampled_from(sorted(records.OUTCOMES)), keys),
    st.builds(records.Flushed, times, st.lists(keys, max_size=5).map(tuple)),
)


@given(st.lists(any_record, max_size=8))
def test_records_round_trip_back_to_back(recorded):
    encoded = b"".join(records.encode(record) for record in recorded)
    decoded, position = [], 0
    while position < len(encoded):
        record, position = records.decode(encoded, position)
        decoded.append(record)
    assert decoded == recorded


@given(any_record, st.data())
def test_every_torn_record_is_incomplete_never_misread(record, data):
    encoded = records.encode(record)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(records.IncompleteRecord):
        records.decode(encoded[:cut], 0)


def test_the_added_key_is_the_add_time_and_the_crc_of_the_data():
    added = records.Added(5, 3, b"body", False)
    assert added.key == records.key_of(b"body", 3) != records.key_of(b"body", 4) != records.key_of(b"bodz", 3)
    assert records.Added(5, 3, b"body", True).key == added.key  # a rewind's copy leaves as any item does


def test_an_add_says_whether_a_rewind_made_it_in_its_flags_byte():
    copy, plain = records.encode_added(1, 2, b"x", rewound=True), records.encode_added(1, 2, b"x")
    assert copy[1] == records.REWOUND and plain[1] == 0 and copy[2:] == plain[2:]
    assert records.decode(copy + plain, 0) == (records.Added(1, 2, b"x", True), len(copy))
    assert records.decode(copy + plain, len(copy)) == (records.Added(1, 2, b"x", False), len(copy + plain))


@given(st.integers(min_value=0, max_value=255).filter(lambda flags: flags & ~records.REWOUND))
def test_an_add_with_a_flag_this_server_does_not_know_is_broken(flags):
    encoded = records.encode_added(1, 2, b"x")
    with pytest.raises(records.BrokenRecord, match=f"unknown flags {flags:#04x}"):
        records.decode(encoded[:1] + bytes([flags]) + encoded[2:], 0)


@pytest.mark.parametrize("damaged, reason", [
    (b"\x00", "unknown opcode 0"),
    (b"\x09" + bytes(30), "unknown opcode 9"),
    (records.encode_left(1, 1, (2, 3))[:9] + b"\x07" + records.encode_left(1, 1, (2, 3))[10:], "unknown outcome 7"),
    (records.encode_added(1, 2, b"")[:18] + (-1).to_bytes(4, "little", signed=True), "length -1"),
    (records.encode_flushed(1, [])[:9] + (-2).to_bytes(4, "little", signed=True), "-2 open reads"),
])
def test_damaged_records_are_broken(damaged, reason):
    with pytest.raises(records.BrokenRecord, match=reason):
        records.decode(damaged, 0)


def write_segment(directory, name, *content: bytes) -> str:
    path = os.path.join(directory, str(name))
    with open(path, "wb") as segment:
        segment.write(b"".join(content))
    return path


def test_a_scan_stops_at_a_torn_or_damaged_tail_and_can_stop_early(tmp_path):
    first, second = records.encode_added(1, 1, b"one"), records.encode_left(2, records.READ, (1, 7))
    path = write_segment(tmp_path, 1, first, second, records.encode_added(3, 3, b"three")[:-2])
    assert [(record, start, end) for record, start, end in scan(path, 0)] == [
        (records.Added(1, 1, b"one", False), 0, len(first)),
        (records.Left(2, records.READ, (1, 7)), len(first), len(first + second)),
    ]
    assert [record for record, _, _ in scan(path, len(first))] == [records.Left(2, records.READ, (1, 7))]
    assert [record for record, _, _ in scan(path, 0, end=len(first))] == [records.Added(1, 1, b"one", False)]
    damaged = write_segment(tmp_path, 2, first, b"\x00" + second)
    assert [record for record, _, _ in scan(damaged, 0)] == [records.Added(1, 1, b"one", False)]
    assert list(scan(os.path.join(tmp_path, "404"), 0)) == []


def test_a_torn_tail_is_cut_before_a_segment_is_written_again(tmp_path):
    whole = records.encode_added(1, 1, b"one")
    write_segment(tmp_path, 1, whole, whole[:-1])
    files = HistoryFiles(str(tmp_path), OpenJournals(10))
    assert files.cut_torn_tail(1) == len(whole) - 1
    assert files.cut_torn_tail(1) == 0
    files.write(1, whole)
    files.release()
    assert [record for record, _, _ in scan(files.path(1), 0)] == [records.Added(1, 1, b"one", False)] * 2


# Cursors

def test_a_cursor_round_trips_for_its_own_queue_and_window():
    made = cursor.encode("jobs", 10, 20, Position(5, 300))
    assert made.isascii() and made.replace("-", "").replace("_", "").isalnum()
    assert cursor.decode(made, "jobs", 10, 20) == Position(5, 300)
    assert cursor.decode(cursor.encode("jobs", 10, None, Position(5, 0)), "jobs", 10, None) == Position(5, 0)


@pytest.mark.parametrize("given, reason", [
    ("", "wrong length"),
    ("not a cursor!", "not base64url"),
    ("é", "not base64url"),
    ("AAAA", "wrong length"),
    (cursor.encode("mail", 10, 20, Position(5, 300)), "not made by this server for this queue"),
    (cursor.encode("jobs", 11, 20, Position(5, 300)), "another window"),
    (cursor.encode("jobs", 10, None, Position(5, 300)), "another window"),
    (cursor.encode("jobs", 10, 20, Position(-1, 300)), "before the history"),
])
def test_a_cursor_of_another_read_or_none_at_all_is_refused(given, reason):
    with pytest.raises(BadCursor, match=reason):
        cursor.decode(given, "jobs", 10, 20)


def test_a_tampered_cursor_is_refused():
    made = cursor.encode("jobs", 10, 20, Position(5, 300))
    tampered = made[:10] + ("A" if made[10] != "A" else "B") + made[11:]
    with pytest.raises(BadCursor):
        cursor.decode(tampered, "jobs", 10, 20)
