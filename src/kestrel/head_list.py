"""
HeadList: the items a queue holds in memory, head first, in a list and the index of its head.

A collections.deque costs about 600 bytes even empty, most of a one-item queue, and a
million-queue server is made of them (issue 15). A list costs a few words for a short queue
and stays O(1) at the head for a deep one: a slot taken from the head is cleared, and the
list is cut once the cleared slots are half of it; an item put back at the head goes into the
slot before it, or into room made in front for this one and a quarter of the list more, so
that putting back a run of items is not quadratic either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Iterator, cast

if TYPE_CHECKING:
    from kestrel.queue import Item

# Cleared slots at the head below which the list is not cut: short lists are not worth it.
MIN_CUT: Final = 32


class HeadList:
    __slots__ = ("_items", "_head")

    def __init__(self) -> None:
        self._items: list[Item | None] = []
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head

    def __bool__(self) -> bool:
        return len(self._items) > self._head

    def __getitem__(self, index: int) -> Item:
        """The item `index` places from the head (0 is the head; no negative indexes)."""
        if index < 0:
            raise IndexError(index)
        return cast("Item", self._items[self._head + index])

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items())

    def items(self) -> list[Item]:
        """A copy, head first."""
        return cast("list[Item]", self._items[self._head:])

    def append(self, item: Item) -> None:
        self._items.append(item)

    def popleft(self) -> Item:
        """Take the head; IndexError when there is none."""
        items = self._items
        head = self._head
        if head >= len(items):
            raise IndexError("pop from an empty HeadList")
        item = items[head]
        head += 1
        if head == len(items):
            items.clear()
            head = 0
        else:
            items[head - 1] = None
            if head >= MIN_CUT and 2 * head >= len(items):
                del items[:head]
                head = 0
        self._head = head
        return cast("Item", item)

    def appendleft(self, item: Item) -> None:
        items = self._items
        head = self._head
        if not head:
            head = 1 + len(items) // 4
            items[:0] = [None] * head
        head -= 1
        items[head] = item
        self._head = head

    def clear(self) -> None:
        self._items.clear()
        self._head = 0
