"""
Rewind: the retained items added in a window, added to their queue again as new items, once
each and in the order they were added (redelivery, not undo: doc/history.md). The copies a
rewind adds are marked in the history (`HistoryEntry.rewound`), and a later rewind whose
window holds them passes them by: it puts back the items they copy, once.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from kestrel.history import HistoryEntry
from kestrel.history.cursor import Position
from kestrel.history.log import MAX_PAGE_ENTRIES, History


def rewind(history: History, add: Callable[[bytes], bool], since: int, until: int | None) -> Deferred[int]:
    """
    Give `add` (which adds an item to the queue as a rewind's copy) the data of every item
    `history` holds added in [since, until), but the copies of earlier rewinds, page by page;
    fires with how many it took. It reads up to where the history ended when it started, so
    the items it adds itself are not rewound again. It stops at the first item `add` refuses
    (a queue full or closed).
    """
    start, stop = history.start(since), history.end()
    if start is None or stop is None:
        return succeed(0)
    return Rewind(history, add, since, until, stop).run(start)


class Rewind:
    log = Logger()

    def __init__(self, history: History, add: Callable[[bytes], bool], since: int, until: int | None, stop: Position):
        self._history = history
        self._add = add
        self._since = since
        self._until = until
        self._stop = stop
        self.count = 0
        self._done: Deferred[int] = Deferred()

    def run(self, start: Position) -> Deferred[int]:
        self._read(start)
        return self._done

    def _read(self, position: Position) -> None:
        read = self._history.read_from(position, self._since, self._until, self._stop, MAX_PAGE_ENTRIES)
        read.addCallbacks(self._page, self._done.errback)

    def _page(self, found: tuple[list[HistoryEntry], Position | None]) -> None:
        entries, following = found
        for entry in entries:
            if entry.rewound:
                continue  # a copy: a rewind puts back the item it copies when its window holds that one's add
            try:
                taken = self._add(entry.data)
            except Exception:  # the queue cannot be written (QueueUnavailable)
                self._done.errback()
                return
            if not taken:
                self.log.warn(
                    "rewind of queue {queue} stopped after {count} items: the queue refused the next (full or closed)",
                    queue=self._history.name, count=self.count,
                )
                self._done.callback(self.count)
                return
            self.count += 1
        if following is None:
            self._done.callback(self.count)
        else:
            self._read(following)
