"""`kestrel dump` on hand-built journals."""

import io

import pytest

from kestrel import command
from kestrel.journal import records
from kestrel.journal.records import SAVE_XID, Record, encode
from kestrel.tools import qdump

NOW_MS = 1_700_000_000_000


def journal(tmp_path, *parts: bytes, name: str = "jobs") -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(parts))
    return str(path)


def dump(*paths: str, **options) -> str:
    out = io.StringIO()
    dumper = qdump.JournalDumper(out, now_ms=NOW_MS, **options)
    for path in paths:
        dumper.dump_file(path)
    dumper.summary()
    return out.getvalue()


def test_each_operation_of_a_2x_journal(tmp_path):
    path = journal(
        tmp_path,
        records.encode_addx(b"hello", NOW_MS, 0),  # 26 bytes
        records.encode_addx(b"world!", NOW_MS, NOW_MS + 30_000),  # 27
        records.encode_remove_tentative(1),  # 5
        records.REMOVE_BYTES,  # 1
        records.encode_unremove(1),
        records.encode_remove_tentative(2),
        records.encode_confirm_remove(2),
        records.encode_addx(b"late", NOW_MS - 60_000, NOW_MS - 1),
        records.encode_remove_tentative(3),
        records.encode_continue(3, b"next", NOW_MS, 0),
    )
    assert dump(path) == (
        "00000000  ADD 5\n"
        "0000001a  ADD 6      exp=30.000s\n"
        "00000035  RSV 1\n"
        "0000003a  REM\n"
        "0000003b  CAN 1\n"
        "00000040  RSV 2\n"
        "00000045  ACK 2\n"
        "0000004a  ADD 4      expired\n"
        "00000063  RSV 3\n"
        "00000068  CON 4      xid=3\n"
        "Journal size: 133 bytes, with 10 operations.\n"
        "1 items totalling 4 bytes.\n"
        "Open transactions: 0.\n"
    )


def test_legacy_records_and_open_transactions(tmp_path):
    path = journal(
        tmp_path,
        records.encode(records.Record(records.ADD, data=b"abc", expiry=0)),
        records.encode(records.Record(records.ADD_XID, xid=9, data=b"defg")),
        encode(Record(SAVE_XID, xid=6)),
        records.encode(records.Record(records.REMOVE_TENTATIVE)),
        records.encode_remove_tentative(8),
    )
    assert dump(path, offsets=False) == (
        "ADD 3\n"
        "ADD 4      xid=9\n"
        "XID 6\n"
        "RSV 7\n"
        "RSV 8\n"
        "Journal size: 52 bytes, with 5 operations.\n"
        "2 items totalling 7 bytes.\n"
        "Open transactions: 2 (xids 7, 8).\n"
    )


def test_data_is_printed_under_its_record(tmp_path):
    path = journal(tmp_path, records.encode_addx(b"tab\there\xff", NOW_MS, 0))
    assert dump(path, data=True, offsets=False).splitlines()[:2] == ["ADD 9", "    tab\\there\\xff"]


def test_quiet_prints_only_the_summary(tmp_path):
    path = journal(tmp_path, records.encode_addx(b"x", NOW_MS, 0))
    assert dump(path, quiet=True).splitlines() == [
        "Journal size: 22 bytes, with 1 operations.",
        "1 items totalling 1 bytes.",
        "Open transactions: 0.",
    ]


def test_files_given_together_are_one_history(tmp_path):
    rotated = journal(tmp_path, records.encode_addx(b"one", NOW_MS, 0), name="jobs.1")
    current = journal(tmp_path, records.encode_remove_tentative(1), records.encode_confirm_remove(1))
    assert dump(rotated, current, offsets=False).splitlines()[-3:] == [
        "Journal size: 34 bytes, with 3 operations.",
        "0 items totalling 0 bytes.",
        "Open transactions: 0.",
    ]
    # A current file alone may remove items it never saw.
    assert "0 items totalling 0 bytes." in dump(current)


def test_a_damaged_tail_is_reported_and_left_alone(tmp_path):
    whole = records.encode_addx(b"kept", NOW_MS, 0)
    path = journal(tmp_path, whole, records.encode_addx(b"torn", NOW_MS, 0)[:10])
    lines = dump(path).splitlines()
    assert lines[1].startswith("00000019  BROKEN (record needs")
    assert lines[2] == "Journal size: 25 bytes, with 1 operations."
    assert (tmp_path / "jobs").stat().st_size == len(whole) + 10


def test_an_empty_journal(tmp_path):
    assert dump(journal(tmp_path)).splitlines()[0] == "Journal size: 0 bytes, with 0 operations."


def test_exit_codes(tmp_path, capsys):
    good = journal(tmp_path, records.REMOVE_BYTES, name="good")
    broken = journal(tmp_path, bytes([42]), name="broken")
    assert command.main(["dump", good]) == 0
    assert command.main(["dump", good, broken]) == 1
    out = capsys.readouterr().out
    assert f"{good}:\n" in out and f"{broken}:\n" in out


def test_usage_needs_a_file(capsys):
    with pytest.raises(SystemExit) as exit:
        command.main(["dump"])
    assert exit.value.code == 2
