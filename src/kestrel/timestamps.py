"""
Instants as the history reads and rewinds take them (doc/history.md): epoch milliseconds, or
RFC 3339 date-times with their offset, `2026-12-02T22:30:00Z` or `2026-12-02T23:30:00.250+01:00`.

An RFC 3339 time must name its offset: a bare `2026-12-02T22:30:00` could be any of
twenty-six hours. Fractions of a millisecond are dropped (the engine keeps milliseconds).
Pure functions; no clock.
"""

from __future__ import annotations

import datetime
import re
from typing import Final

EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_MILLISECOND: Final = datetime.timedelta(milliseconds=1)
# RFC 3339 section 5.6's date-time; its `T` and `Z` may be lower case, and (its note) a space may stand for `T`.
_RFC_3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_EPOCH_MS: Final = re.compile(r"\d{1,15}", re.ASCII)


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds from ``text`` in either form; ValueError saying what a good one looks like."""
    text = text.strip()
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    match = _RFC_3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"expected epoch milliseconds or an RFC 3339 time such as 2026-12-02T22:30:00Z, got {text!r}"
        )
    date, clock, fraction, offset = match.groups()
    microseconds = (fraction or "")[:6].ljust(6, "0")
    try:
        instant = datetime.datetime.fromisoformat(f"{date}T{clock}.{microseconds}{_offset(offset)}")
    except ValueError as error:  # a month 13, a 30 February, an offset of 25 hours
        raise ValueError(f"{text!r} is no valid time: {error}") from None
    return (instant - EPOCH) // ONE_MILLISECOND


def format_timestamp(epoch_ms: int) -> str:
    """RFC 3339 in UTC to the millisecond: `2026-12-02T22:30:00.250Z`."""
    instant = EPOCH + epoch_ms * ONE_MILLISECOND
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def _offset(offset: str) -> str:
    return "+00:00" if offset in ("Z", "z") else offset
