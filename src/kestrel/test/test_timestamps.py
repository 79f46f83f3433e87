"""kestrel.timestamps: the instants history reads and rewinds take, in both forms."""

import pytest

from kestrel.timestamps import format_timestamp, parse_timestamp

# 2026-12-02T22:30:00Z
MS = 1_796_250_600_000


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        (str(MS), MS),
        (f" {MS} ", MS),
        ("2026-12-02T22:30:00Z", MS),
        ("2026-12-02t22:30:00z", MS),
        ("2026-12-02 22:30:00Z", MS),
        ("2026-12-02T22:30:00.250Z", MS + 250),
        ("2026-12-02T22:30:00.2Z", MS + 200),
        ("2026-12-02T22:30:00.123456789Z", MS + 123),
        ("2026-12-02T23:30:00+01:00", MS),
        ("2026-12-02T20:00:00-02:30", MS),
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_epoch_milliseconds_and_rfc_3339_are_taken(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "-5", "1.5", "1e9", "now", "2026-12-02", "2026-12-02T22:30:00", "2026-12-02T22:30Z",
        "2026-13-02T22:30:00Z", "2026-02-30T22:30:00Z", "2026-12-02T22:30:00+25:00", "2026-12-02T22:30:00 Z",
        "٢٠٢٦-12-02T22:30:00Z", "1234567890123456",
    ],
)
def test_anything_else_is_refused_saying_what_is_taken(text):
    with pytest.raises(ValueError, match="RFC 3339|no valid time"):
        parse_timestamp(text)


def test_format_is_rfc_3339_in_utc_to_the_millisecond_and_parses_back():
    assert format_timestamp(MS + 7) == "2026-12-02T22:30:00.007Z"
    assert parse_timestamp(format_timestamp(MS + 7)) == MS + 7
