"""
A queue's history (issue 15, doc/history.md): for queues with `retain` set, every item added
and when and how it left, kept on disk for `retain` after its add, read by time and rewound.

Public names: the values history reads give (`HistoryEntry`, `HistoryPage`) and the errors
they fail with. `kestrel.history.log` keeps one queue's history (the reactor's side),
`kestrel.history.segments` its files (the writer thread's side), `kestrel.history.records`
and `kestrel.history.cursor` are byte codecs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryEntry:
    added: int  # epoch ms the item was added to this queue
    consumed: int | None  # epoch ms it left the queue; None while it has not (or when unknown)
    outcome: str | None  # "read", "expired", "discarded", "flushed", "dead_lettered"; None while queued
    data: bytes  # the item as stored (an SQS message keeps its envelope)
    rewound: bool  # a rewind added it, as a copy of an earlier item (later rewinds pass it by)


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next: str | None  # opaque cursor (URL-safe ASCII) for the next page; None at the end of the window


class HistoryError(Exception):
    """A history read or rewind refused; str(error) is a one-line reason fit for a client."""


class NoSuchQueue(HistoryError):
    def __init__(self, name: str):
        super().__init__(f"no such queue: {name}")


class NotRetained(HistoryError):
    def __init__(self, name: str):
        super().__init__(f"queue {name} keeps no history (no retain set)")


class BadCursor(HistoryError):
    """A cursor that is not one this server made for this queue and window."""
