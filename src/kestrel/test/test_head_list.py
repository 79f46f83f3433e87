"""HeadList: a queue's items in memory, head first, that behaves as the deque it replaces (issue 15)."""

import random
from collections import deque

import pytest

from kestrel.head_list import MIN_CUT, HeadList
from kestrel.queue import Item


def item(number: int) -> Item:
    return Item(b"%d" % number, 0, 0, number)


def test_an_empty_list_has_no_head():
    items = HeadList()
    assert not items and len(items) == 0 and items.items() == []
    with pytest.raises(IndexError):
        items.popleft()
    with pytest.raises(IndexError):
        items[0]


def test_items_leave_from_the_head_in_the_order_they_came():
    items = HeadList()
    for number in range(3):
        items.append(item(number))
    assert [items.popleft().seq for _ in range(3)] == [0, 1, 2]
    assert not items


def test_an_item_put_back_is_the_next_to_leave():
    items = HeadList()
    items.append(item(1))
    items.appendleft(item(0))
    assert [entry.seq for entry in items] == [0, 1]
    assert items[0].seq == 0 and items[1].seq == 1


def test_negative_indexes_are_refused():
    items = HeadList()
    items.append(item(0))
    with pytest.raises(IndexError):
        items[-1]


def test_a_deep_list_is_cut_once_half_of_it_has_left_and_releases_what_left():
    items = HeadList()
    for number in range(4 * MIN_CUT):
        items.append(item(number))
    for _ in range(MIN_CUT):
        items.popleft()
    assert items._items[:MIN_CUT] == [None] * MIN_CUT  # not held before the cut either
    for _ in range(MIN_CUT):
        items.popleft()
    # Cut: nothing is held for the items that left.
    assert len(items._items) == 2 * MIN_CUT
    assert items[0].seq == 2 * MIN_CUT


def test_putting_back_a_run_of_items_makes_room_in_front_once():
    items = HeadList()
    for number in range(100, 200):
        items.append(item(number))
    for number in reversed(range(100)):
        items.appendleft(item(number))
    assert [entry.seq for entry in items] == list(range(200))
    # Room for a quarter of the list at a time, some of it left: a few moves of the list,
    # not one per item put back.
    assert items._head > 0 and len(items._items) < 300


def test_it_does_what_a_deque_does_under_random_operations():
    rng = random.Random(15)
    items, expected = HeadList(), deque()
    for number in range(20_000):
        operation = rng.random()
        if operation < 0.5:
            items.append(item(number))
            expected.append(number)
        elif operation < 0.9 and expected:
            assert items.popleft().seq == expected.popleft()
        elif operation < 0.99:
            items.appendleft(item(number))
            expected.appendleft(number)
        else:
            items.clear()
            expected.clear()
        assert len(items) == len(expected)
        if expected:
            assert items[0].seq == expected[0] and items[len(expected) - 1].seq == expected[-1]
    assert [entry.seq for entry in items] == list(expected)
