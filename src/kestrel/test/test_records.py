import struct
from bisect import bisect_right
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.journal import records
from kestrel.journal.records import (
    ADD,
    ADD_XID,
    ADDX,
    CONFIRM_REMOVE,
    CONTINUE,
    REMOVE,
    REMOVE_TENTATIVE,
    REMOVE_TENTATIVE_XID,
    SAVE_XID,
    UNREMOVE,
    BrokenRecord,
    IncompleteRecord,
    Record,
    decode,
    encode,
    record_size,
)

ADD_TIME_MS = 1_700_000_000_123
EXPIRY_MS = 1_700_000_060_456

ONE_RECORD_PER_OPCODE = [
    Record(ADD, data=b"legacy", expiry=1_700_000_060_000),
    Record(REMOVE),
    Record(ADDX, data=b"hello", add_time=ADD_TIME_MS, expiry=EXPIRY_MS),
    Record(REMOVE_TENTATIVE),
    Record(SAVE_XID, xid=41),
    Record(UNREMOVE, xid=42),
    Record(CONFIRM_REMOVE, xid=43),
    Record(ADD_XID, xid=44, data=b"with xid", add_time=ADD_TIME_MS, expiry=0),
    Record(CONTINUE, xid=45, data=b"continued", add_time=ADD_TIME_MS, expiry=EXPIRY_MS),
    Record(REMOVE_TENTATIVE_XID, xid=46),
]


def decode_all(buf: bytes) -> tuple[list[Record], int]:
    """Decode whole records until the end of buf; return them and where decoding stopped."""
    decoded = []
    pos = 0
    while pos < len(buf):
        record, pos = decode(buf, pos)
        decoded.append(record)
    return decoded, pos


def test_one_record_per_opcode_covers_every_opcode():
    assert [record.op for record in ONE_RECORD_PER_OPCODE] == list(range(10))


@pytest.mark.parametrize("record", ONE_RECORD_PER_OPCODE, ids=lambda record: str(record.op))
def test_round_trip(record):
    encoded = encode(record)
    assert decode(encoded, 0) == (record, len(encoded))


@pytest.mark.parametrize("record", ONE_RECORD_PER_OPCODE, ids=lambda record: str(record.op))
def test_record_size_matches_encoding(record):
    assert record_size(record.op, len(record.data or b"")) == len(encode(record))


@pytest.mark.parametrize(
    ("op", "data_len", "size"),
    [
        (ADDX, 0, 21),
        (ADDX, 11, 32),
        (ADDX, 8192, 8213),
        (CONTINUE, 3, 28),
        (ADD_XID, 3, 28),
        (ADD, 3, 12),
        (SAVE_XID, 0, 5),
        (UNREMOVE, 0, 5),
        (CONFIRM_REMOVE, 0, 5),
        (REMOVE_TENTATIVE_XID, 0, 5),
        (REMOVE, 0, 1),
        (REMOVE_TENTATIVE, 0, 1),
    ],
)
def test_record_size(op, data_len, size):
    assert record_size(op, data_len) == size


def test_specialised_encoders_match_generic_encoder():
    assert records.encode_addx(b"item", ADD_TIME_MS, EXPIRY_MS) == encode(
        Record(ADDX, data=b"item", add_time=ADD_TIME_MS, expiry=EXPIRY_MS)
    )
    assert records.encode_continue(7, b"item", ADD_TIME_MS, 0) == encode(
        Record(CONTINUE, xid=7, data=b"item", add_time=ADD_TIME_MS)
    )
    assert records.REMOVE_BYTES == encode(Record(REMOVE)) == b"\x01"
    assert records.encode_remove_tentative(7) == encode(Record(REMOVE_TENTATIVE_XID, xid=7))
    assert records.encode_unremove(7) == encode(Record(UNREMOVE, xid=7))
    assert records.encode_confirm_remove(7) == encode(Record(CONFIRM_REMOVE, xid=7))


def test_journal_byte_counts_from_spec():
    add_11_bytes = records.encode_addx(b"x" * 11, ADD_TIME_MS, 0)
    assert len(add_11_bytes) == 32
    assert len(add_11_bytes + records.REMOVE_BYTES) == 33
    first_second_remove = (
        records.encode_addx(b"first", ADD_TIME_MS, 0)
        + records.encode_addx(b"second", ADD_TIME_MS, 0)
        + records.REMOVE_BYTES
    )
    assert len(first_second_remove) == 54
    assert len(records.encode_addx(b"x" * 8192, ADD_TIME_MS, 0)) == 8213


def test_decodes_journal_built_by_hand_from_spec_layout():
    journal = b"".join(
        [
            struct.pack("<bii", 0, 4 + 6, 1_700_000_060) + b"legacy",
            struct.pack("<b", 1),
            struct.pack("<biqq", 2, 16 + 5, ADD_TIME_MS, EXPIRY_MS) + b"hello",
            struct.pack("<b", 3),
            struct.pack("<bi", 4, 41),
            struct.pack("<bi", 5, 42),
            struct.pack("<bi", 6, 43),
            struct.pack("<biiqq", 7, 44, 16 + 8, ADD_TIME_MS, 0) + b"with xid",
            struct.pack("<biiqq", 8, 45, 16 + 9, ADD_TIME_MS, EXPIRY_MS) + b"continued",
            struct.pack("<bi", 9, 46),
        ]
    )
    assert decode_all(journal) == (ONE_RECORD_PER_OPCODE, len(journal))


def test_decodes_little_endian_signed_fields():
    journal = bytes([5, 0xFE, 0xFF, 0xFF, 0xFF]) + bytes([9, 0x01, 0x02, 0x00, 0x00])
    assert decode_all(journal)[0] == [Record(UNREMOVE, xid=-2), Record(REMOVE_TENTATIVE_XID, xid=0x201)]


def test_legacy_add_expiry_is_read_in_seconds():
    journal = struct.pack("<bii", ADD, 4 + 2, 1_234) + b"hi"
    assert decode(journal, 0) == (Record(ADD, data=b"hi", add_time=0, expiry=1_234_000), len(journal))


def test_decodes_from_memoryview_at_an_offset():
    journal = records.REMOVE_BYTES + records.encode_addx(b"item", ADD_TIME_MS, 0)
    record, end = decode(memoryview(journal), 1)
    assert (record, end) == (Record(ADDX, data=b"item", add_time=ADD_TIME_MS), len(journal))
    assert type(record.data) is bytes


def test_garbage_opcode_after_valid_records_is_broken():
    journal = records.encode_addx(b"item", ADD_TIME_MS, 0) + bytes([127])
    _, end = decode(journal, 0)
    with pytest.raises(BrokenRecord, match="127"):
        decode(journal, end)


@pytest.mark.parametrize(
    "journal",
    [
        pytest.param(struct.pack("<biqq", ADDX, 15, ADD_TIME_MS, 0) + b"x" * 15, id="addx-size-15"),
        pytest.param(struct.pack("<biqq", ADDX, -1, ADD_TIME_MS, 0), id="addx-negative-size"),
        pytest.param(struct.pack("<biiqq", ADD_XID, 1, 15, ADD_TIME_MS, 0), id="add_xid-size-15"),
        pytest.param(struct.pack("<biiqq", CONTINUE, 1, -100, ADD_TIME_MS, 0), id="continue-negative-size"),
        pytest.param(struct.pack("<bii", ADD, 3, 0) + b"xxx", id="add-size-3"),
        pytest.param(struct.pack("<bii", ADD, -4, 0), id="add-negative-size"),
        pytest.param(bytes([10]), id="opcode-10"),
        pytest.param(bytes([255]), id="opcode-255"),
    ],
)
def test_broken_records(journal):
    with pytest.raises(BrokenRecord):
        decode(journal, 0)


MULTI_RECORD_BYTES = b"".join(encode(record) for record in ONE_RECORD_PER_OPCODE)
RECORD_BOUNDARIES = list(accumulate((len(encode(record)) for record in ONE_RECORD_PER_OPCODE), initial=0))


@pytest.mark.parametrize("cut", range(len(MULTI_RECORD_BYTES) + 1))
def test_every_truncation_point_decodes_whole_records_then_is_incomplete(cut):
    whole_records = bisect_right(RECORD_BOUNDARIES, cut) - 1
    boundary = RECORD_BOUNDARIES[whole_records]
    torn = MULTI_RECORD_BYTES[:cut]

    decoded = []
    pos = 0
    while pos < boundary:
        record, pos = decode(torn, pos)
        decoded.append(record)

    assert (decoded, pos) == (ONE_RECORD_PER_OPCODE[:whole_records], boundary)
    if boundary < cut:
        with pytest.raises(IncompleteRecord):
            decode(torn, pos)


def test_decoding_at_the_end_of_the_buffer_is_incomplete():
    with pytest.raises(IncompleteRecord):
        decode(records.REMOVE_BYTES, 1)


@pytest.mark.parametrize("record", [Record(ADDX), Record(CONTINUE, xid=1), Record(ADD)], ids=str)
def test_encoding_an_item_record_without_data_fails(record):
    with pytest.raises(ValueError):
        encode(record)


@pytest.mark.parametrize("encoder", [encode, lambda record: record_size(record.op)])
def test_unknown_opcode_cannot_be_encoded_or_sized(encoder):
    with pytest.raises(ValueError):
        encoder(Record(10))


item_ops = st.sampled_from([ADDX, ADD_XID, CONTINUE])
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@given(op=item_ops, xid=i32, data=st.binary(max_size=64), add_time=i64, expiry=i64)
def test_item_records_round_trip(op, xid, data, add_time, expiry):
    record = Record(op, xid=0 if op == ADDX else xid, data=data, add_time=add_time, expiry=expiry)
    encoded = encode(record)
    assert len(encoded) == record_size(op, len(data))
    assert decode(encoded, 0) == (record, len(encoded))
