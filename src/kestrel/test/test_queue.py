"""PersistentQueue with its journal: the concrete cases of Kestrel's PersistentQueueSpec (doc/compatibility.md §5)."""

import os

import pytest
from twisted.internet.defer import CancelledError

from kestrel.config import QueueConfig
from kestrel.test.support import (
    drain,
    dump,
    fired,
    journal_file_names,
    number_of,
    numbered,
    pending_calls,
    stat,
)

SEVEN_DAYS = 7 * 24 * 3600.0


def now_ms(harness) -> int:
    return int(harness.clock.seconds() * 1000)


# Adding and removing


def test_add_and_remove_one_item(harness):
    queue = harness.queue()
    assert (queue.items, queue.total_items, queue.bytes, queue.journal.size) == (0, 0, 0, 0)

    assert queue.add(b"hello kitty")
    assert (queue.items, queue.total_items, queue.put_bytes, queue.bytes) == (1, 1, 11, 11)
    assert queue.journal.size == 32
    assert len(harness.journal_bytes()) == 32

    assert queue.remove().data == b"hello kitty"
    assert (queue.items, queue.total_items, queue.bytes, queue.journal.size) == (0, 1, 0, 33)
    queue.close()
    assert dump(harness.journal_bytes()) == "add(11:0:hello kitty), remove"


def test_flush_removes_every_item_and_journals_a_remove_for_each(harness):
    queue = harness.queue()
    for data in (b"alpha", b"beta", b"gamma"):
        queue.add(data)
    assert queue.items == 3

    queue.flush()
    assert queue.items == 0
    assert queue.total_flushes == 1
    assert queue.remove() is None
    queue.close()
    assert dump(harness.journal_bytes()) == (
        "add(5:0:alpha), add(4:0:beta), add(5:0:gamma), remove, remove, remove"
    )


def test_restart_keeps_the_journal_byte_for_byte(harness):
    queue = harness.queue()
    queue.add(b"first")
    queue.add(b"second")
    assert queue.remove().data == b"first"
    assert queue.journal.size == 5 + 6 + 16 + 16 + 5 + 5 + 1 == 54

    queue = harness.restart(queue)
    assert queue.journal.size == 54
    assert queue.remove().data == b"second"
    assert queue.journal.size == 55
    assert queue.items == 0

    queue = harness.restart(queue)
    assert queue.journal.size == 55
    assert queue.items == 0
    assert len(harness.journal_bytes()) == 55


# Transactions


def test_transactions_interleave_in_the_journal(harness):
    queue = harness.queue(max_memory_size=1024)
    queue.add(b"house")
    queue.add(b"cat")
    assert dump(harness.journal_bytes()) == "add(5:0:house), add(3:0:cat)"

    house = queue.remove(transaction=True)
    assert (house.data, house.xid) == (b"house", 1)
    assert dump(harness.journal_bytes()).endswith("add(3:0:cat), remove-tentative(1)")

    cat = queue.remove(transaction=True)
    assert (cat.data, cat.xid) == (b"cat", 2)
    assert dump(harness.journal_bytes()).endswith("remove-tentative(1), remove-tentative(2)")

    assert queue.unremove(house.xid)
    assert dump(harness.journal_bytes()).endswith("remove-tentative(2), unremove(1)")

    assert queue.confirm(cat.xid)
    assert dump(harness.journal_bytes()).endswith("unremove(1), confirm-remove(2)")
    assert (queue.items, queue.bytes) == (1, 5)

    assert queue.remove().data == b"house"
    assert (queue.items, queue.bytes) == (0, 0)
    queue.close()
    assert dump(harness.journal_bytes()) == (
        "add(5:0:house), add(3:0:cat), remove-tentative(1), remove-tentative(2), "
        "unremove(1), confirm-remove(2), remove"
    )

    queue = harness.restart(queue, max_memory_size=1024)
    assert (queue.items, queue.bytes, queue.open_transactions) == (0, 0, 0)


def test_restart_rolls_back_open_transactions_in_xid_order(harness):
    queue = harness.queue()
    for data in (b"one", b"two", b"three", b"four", b"five"):
        queue.add(data)
    opened = [queue.remove(transaction=True) for _ in range(4)]
    assert [item.data for item in opened] == [b"one", b"two", b"three", b"four"]
    assert queue.confirm(opened[1].xid)
    assert queue.confirm(opened[3].xid)

    queue = harness.restart(queue)
    assert queue.items == 3
    assert queue.open_transactions == 0
    assert drain(queue) == [b"one", b"three", b"five"]


def test_restart_journals_the_rollback_as_unremoves_in_descending_xid_order(harness):
    queue = harness.queue()
    for data in (b"a", b"b", b"c"):
        queue.add(data)
    for _ in range(3):
        queue.remove(transaction=True)

    queue = harness.restart(queue)
    queue.close()
    assert dump(harness.journal_bytes()).endswith(
        "remove-tentative(3), unremove(3), unremove(2), unremove(1)"
    )


def test_continue_confirms_the_open_read_and_adds_the_new_item(harness):
    queue = harness.queue()
    queue.add(b"one")
    one = queue.remove(transaction=True)
    assert one.data == b"one"

    assert queue.continue_transaction(one.xid, b"two")
    assert (queue.items, queue.open_transactions) == (1, 0)

    queue = harness.restart(queue)
    assert queue.items == 1
    assert queue.open_transactions == 0
    assert drain(queue) == [b"two"]


def test_xids_count_from_one_and_continue_after_a_restart(harness):
    queue = harness.queue()
    for data in (b"house", b"cat", b"dog"):
        queue.add(data)
    house = queue.remove(transaction=True)
    cat = queue.remove(transaction=True)
    assert (house.data, house.xid) == (b"house", 1)
    assert (cat.data, cat.xid) == (b"cat", 2)
    queue.confirm(house.xid)
    queue.confirm(cat.xid)

    queue = harness.restart(queue)
    dog = queue.remove(transaction=True)
    assert (dog.data, dog.xid) == (b"dog", 3)


def test_unknown_xids_are_ignored(harness):
    queue = harness.queue()
    queue.add(b"x")
    size = queue.journal.size
    assert not queue.confirm(42)
    assert not queue.unremove(42)
    assert queue.journal.size == size
    assert queue.canceled_transactions == 0


def test_unremove_puts_the_item_back_at_the_head_and_counts_a_cancel(harness):
    queue = harness.queue()
    queue.add(b"first")
    queue.add(b"second")
    first = queue.remove(transaction=True)
    assert (queue.items, queue.open_transactions) == (1, 1)

    assert queue.unremove(first.xid)
    assert queue.canceled_transactions == 1
    assert (queue.items, queue.open_transactions) == (2, 0)
    assert drain(queue) == [b"first", b"second"]


def test_timed_out_transactions_are_delivered_again_first_in_order(harness):
    queue = harness.queue(open_transaction_timeout=0.010)
    for data in (b"one", b"two", b"three", b"four", b"five"):
        queue.add(data)
    assert [queue.remove(transaction=True).data for _ in range(3)] == [b"one", b"two", b"three"]

    harness.clock.advance(0.006)
    assert queue.remove(transaction=True).data == b"four"

    harness.clock.advance(0.006)
    assert [queue.remove(transaction=True).data for _ in range(3)] == [b"one", b"two", b"three"]
    assert queue.canceled_transactions == 3


# Delivery counts and dead letters (doc/configuration.md)


def test_a_reliable_read_counts_its_deliveries_and_an_abort_keeps_the_count(harness):
    queue = harness.queue()
    queue.add(b"job")
    first_read = now_ms(harness)
    item = queue.remove(transaction=True)
    assert (item.deliveries, item.first_delivery_time) == (1, first_read)

    harness.clock.advance(5)
    queue.unremove(item.xid)
    item = queue.remove(transaction=True)
    assert (item.deliveries, item.first_delivery_time) == (2, first_read)


def test_plain_reads_and_peeks_count_no_delivery(harness):
    queue = harness.queue()
    queue.add(b"job")
    peeked = queue.peek()
    assert (peeked.deliveries, peeked.first_delivery_time) == (0, 0)
    taken = queue.remove()
    assert (taken.deliveries, taken.first_delivery_time) == (0, 0)


def test_a_timed_out_read_keeps_the_count(harness):
    queue = harness.queue(open_transaction_timeout=0.010)
    queue.add(b"job")
    queue.remove(transaction=True)
    harness.clock.advance(0.020)
    assert queue.remove(transaction=True).deliveries == 2


def test_counts_start_again_after_a_restart(harness):
    queue = harness.queue()
    for data in (b"aborted", b"left open"):
        queue.add(data)
    queue.unremove(queue.remove(transaction=True).xid)
    queue.remove(transaction=True)
    queue.remove(transaction=True)

    queue = harness.restart(queue)
    assert [(item.data, item.deliveries) for item in queue.memory()] == [(b"aborted", 0), (b"left open", 0)]


def read_and_abort(queue, times: int) -> None:
    for _ in range(times):
        queue.unremove(queue.remove(transaction=True).xid)


def test_an_item_read_max_deliveries_times_is_dropped_without_a_dead_letter_queue(harness):
    queue = harness.queue(max_deliveries=2)
    for data in (b"poison", b"fine"):
        queue.add(data)
    read_and_abort(queue, 2)

    fine = queue.remove(transaction=True)
    assert fine.data == b"fine"
    assert (queue.items, stat(queue, "dead_lettered")) == (0, 1)
    assert dump(harness.journal_bytes()).endswith("unremove(2), remove, remove-tentative(3)")

    queue = harness.restart(queue, max_deliveries=2)
    assert drain(queue) == [b"fine"]


def test_a_spent_item_goes_to_the_dead_letter_sink_and_the_read_takes_the_next(harness):
    queue = harness.queue(max_deliveries=1)
    received = []
    queue.dead_letter_sink = lambda item: received.append((item.data, item.deliveries)) is None
    for data in (b"poison", b"fine"):
        queue.add(data)
    read_and_abort(queue, 1)

    assert queue.remove(transaction=True).data == b"fine"
    assert received == [(b"poison", 1)]
    assert stat(queue, "dead_lettered") == 1


def test_plain_reads_hand_out_spent_items(harness):
    queue = harness.queue(max_deliveries=1)
    queue.add(b"spent")
    read_and_abort(queue, 1)
    assert queue.remove().data == b"spent"
    assert stat(queue, "dead_lettered") == 0


def test_a_refused_dead_letter_stays_and_goes_out_again_and_the_refusal_is_logged_once(harness, captured_logs):
    queue = harness.queue(max_deliveries=1, dead_letter_queue="dead")
    accepting = False
    queue.dead_letter_sink = lambda item: accepting
    queue.add(b"spent")
    read_and_abort(queue, 3)
    assert queue.remove(transaction=True).deliveries == 4
    refusals = [message for message in captured_logs.messages() if "refuses them" in message]
    assert refusals == ["items of test that reached max_deliveries (1) stay in it: dead refuses them"]

    queue.unremove(queue.open_xids()[0])
    accepting = True
    assert queue.remove(transaction=True) is None
    assert stat(queue, "dead_lettered") == 1
    assert any("move to dead again" in message for message in captured_logs.messages())


def test_expired_items_behind_a_dead_letter_are_swept_too(harness):
    queue = harness.queue(max_deliveries=1)
    queue.add(b"spent")
    queue.add(b"stale", expiry=now_ms(harness) + 1000)
    queue.add(b"fresh")
    read_and_abort(queue, 1)
    harness.clock.advance(2)
    assert queue.remove(transaction=True).data == b"fresh"
    assert (stat(queue, "dead_lettered"), stat(queue, "expired_items")) == (1, 1)


def test_a_dead_letter_read_behind_makes_room_for_the_next_item_from_disk(harness):
    queue = harness.queue(max_deliveries=1, max_memory_size=128)
    for index in range(3):
        queue.add(numbered(index))
    assert queue.reading_behind
    read_and_abort(queue, 1)
    assert number_of(queue.fetch(transaction=True, peek=False, deadline=None).data) == 1
    assert (queue.items, stat(queue, "dead_lettered")) == (1, 1)


# Journal rotation and rewriting (doc/compatibility.md §3.7)


def test_journal_rotates_once_it_outgrows_max_memory_size(harness):
    queue = harness.queue(max_memory_size=64)
    counts = []
    for _ in range(3):
        queue.add(bytes(32))
        counts.append(len(harness.journal_files()))
    assert counts == [1, 1, 2]
    assert queue.journal_rotations == 1


@pytest.mark.parametrize("open_transaction", [False, True], ids=["remove", "remove-open"])
def test_journal_of_an_empty_queue_is_rewritten(harness, open_transaction):
    queue = harness.queue(default_journal_size=64)
    queue.add(bytes(32))
    queue.add(bytes(64))
    assert (queue.items, queue.total_items, queue.bytes) == (2, 2, 96)
    assert queue.journal.size > 96

    queue.remove()
    assert (queue.items, queue.bytes) == (1, 64)
    assert queue.journal.size > 96

    queue.remove(transaction=open_transaction)
    assert (queue.items, queue.bytes) == (0, 0)
    assert queue.journal_rewrites == 1
    if open_transaction:
        assert queue.open_transactions == 1
        assert queue.journal.size < 96
        assert dump(harness.journal_bytes()) == "add(64:0), remove-tentative(1)"
    else:
        assert queue.journal.size < 10
        assert harness.journal_bytes() == b""


def test_journal_is_rewritten_when_it_outgrows_max_journal_size(harness):
    queue = harness.queue(max_journal_size=128, default_journal_size=64)
    queue.add(bytes(64))
    queue.add(bytes(64))
    queue.remove()
    assert queue.journal.size < 128
    assert queue.journal_rewrites == 1
    assert dump(harness.journal_bytes()) == "add(64:0)"


def test_large_journal_is_rewritten_down_to_the_one_item_left(harness):
    queue = harness.queue(max_journal_size=3 * 1024)
    queue.add(bytes(512))
    for _ in range(4):
        queue.add(bytes(512))
        assert len(queue.remove().data) == 512
    queue.add(bytes(512))
    assert queue.items == 2
    assert queue.journal.size == 512 * 6 + 6 * 21 + 4 == 3202

    assert len(queue.remove().data) == 512
    assert queue.items == 1
    assert queue.journal.size == 512 + 21 == 533
    queue.close()
    assert dump(harness.journal_bytes()) == "add(512:0)"


def test_journal_is_not_compacted_while_the_queue_is_read_behind(harness):
    queue = harness.queue(max_memory_size=1024, max_journal_size=3 * 1024)
    for _ in range(8):
        queue.add(bytes(512))
    assert (queue.items, queue.bytes) == (8, 4096)
    assert queue.journal.size < queue.journal.size + queue.journal.archived
    assert queue.journal_rewrites == 0


def test_rewrite_keeps_an_open_transaction_and_its_confirm_replays(harness):
    queue = harness.queue(max_journal_size=90)
    for data in (b"zero", b"first", b"second"):
        queue.add(data)
    zero = queue.remove(transaction=True)
    assert (zero.data, zero.xid) == (b"zero", 1)
    queue.confirm(zero.xid)
    first = queue.remove(transaction=True)
    assert (first.data, first.xid) == (b"first", 2)
    assert queue.journal_rewrites == 1
    queue.confirm(first.xid)

    queue = harness.restart(queue, max_journal_size=90)
    assert queue.remove().data == b"second"
    queue.close()
    assert dump(harness.journal_bytes()) == (
        "add(5:0:first), remove-tentative(2), add(6:0:second), confirm-remove(2), remove"
    )


def test_size_triggered_rewrites_wait_for_min_journal_compact_delay(harness):
    options = dict(default_journal_size=16, max_journal_size=160, max_memory_size=128, min_journal_compact_delay=5.0)
    queue = harness.queue(**options)
    for _ in range(8):
        queue.add(b"x")
    assert queue.journal.size + queue.journal.archived == 8 * 22 == 176
    assert queue.journal_rewrites == 0

    queue.add(b"x")
    assert queue.journal_rewrites == 1
    queue.add(b"x")
    assert queue.journal_rewrites == 1

    harness.clock.advance(4.9)
    queue.add(b"x")
    assert queue.journal_rewrites == 1

    harness.clock.advance(0.1)
    queue.add(b"x")
    assert queue.journal_rewrites == 2
    assert queue.items == 12


def test_size_triggered_rewrites_wait_a_minute_by_default(harness):
    queue = harness.queue(default_journal_size=16, max_journal_size=160, max_memory_size=128)
    for _ in range(10):
        queue.add(b"x")
    assert queue.journal_rewrites == 1
    harness.clock.advance(59)
    queue.add(b"x")
    assert queue.journal_rewrites == 1
    harness.clock.advance(1)
    queue.add(b"x")
    assert queue.journal_rewrites == 2


def test_journal_of_an_empty_queue_is_rewritten_aggressively(harness):
    queue = harness.queue(default_journal_size=160)
    for _ in range(8):
        queue.add(b"x")
        queue.remove()
    assert queue.journal_rewrites == 1
    for _ in range(8):
        queue.add(b"x")
        queue.remove()
    assert queue.journal_rewrites == 2


def test_disabled_aggressive_rewrites_wait_for_the_delay_with_open_transactions(harness):
    queue = harness.queue(default_journal_size=160, disable_aggressive_rewrites=True, min_journal_compact_delay=5.0)
    for _ in range(8):
        queue.add(b"x")
        queue.remove(transaction=True)
    assert queue.open_transactions == 8
    assert queue.journal_rewrites == 1

    queue.add(b"x")
    queue.remove(transaction=True)
    assert queue.journal_rewrites == 1

    harness.clock.advance(5)
    queue.add(b"x")
    queue.remove(transaction=True)
    assert queue.journal_rewrites == 2


@pytest.mark.parametrize("transactional", [False, True], ids=["remove", "open-confirm"])
def test_rotated_and_packed_journal_keeps_the_queue_across_restarts(harness, transactional):
    options = dict(default_journal_size=16, max_journal_size=256, max_memory_size=64)
    queue = harness.queue(**options)
    model = []
    counter = 0

    def add():
        nonlocal counter
        data = f"{counter:032d}".encode()
        counter += 1
        assert queue.add(data)
        model.append(data)

    def cycle():
        item = queue.remove(transaction=transactional)
        assert item.data == model.pop(0)
        if transactional:
            assert queue.confirm(item.xid)
        add()

    for _ in range(16):
        add()
    for _ in range(15):
        cycle()
    assert queue.items == 16

    queue = harness.restart(queue, **options)
    assert queue.items == 16
    for _ in range(31):
        cycle()

    queue = harness.restart(queue, **options)
    assert queue.items == 16
    assert queue.open_transactions == 0
    assert drain(queue) == model


# Limits (doc/compatibility.md §3.2)


def test_max_items_refuses_the_next_add(harness):
    queue = harness.queue(max_items=1)
    assert queue.add(b"sunny")
    assert not queue.add(b"rainy")
    assert queue.items == 1
    assert drain(queue) == [b"sunny"]


def test_max_size_is_checked_before_adding(harness):
    queue = harness.queue(max_size=510)
    assert queue.add(b"a" * 256)
    assert queue.add(b"b" * 256)
    assert not queue.add(b"television")
    assert (queue.items, queue.bytes) == (2, 512)
    assert queue.remove().data == b"a" * 256


def test_discard_old_when_full_drops_the_head(harness):
    queue = harness.queue(max_items=3, discard_old_when_full=True)
    for data in (b"sunny", b"rainy", b"cloudy", b"snowy"):
        assert queue.add(data)
    assert queue.items == 3
    assert queue.discarded == 1
    assert drain(queue) == [b"rainy", b"cloudy", b"snowy"]


def test_discarded_item_is_journaled_as_a_remove(harness):
    queue = harness.queue(max_items=1, discard_old_when_full=True)
    queue.add(b"sunny")
    queue.add(b"rainy")
    queue.close()
    assert dump(harness.journal_bytes()) == "add(5:0:sunny), remove, add(5:0:rainy)"


@pytest.mark.parametrize(("size", "accepted"), [(127, True), (128, True), (129, False)])
def test_max_item_size_boundary(harness, size, accepted):
    queue = harness.queue(max_item_size=128)
    assert queue.add(bytes(size)) is accepted
    assert queue.items == int(accepted)


def test_closed_queue_refuses_adds_and_reads(harness):
    queue = harness.queue()
    queue.add(b"x")
    queue.close()
    assert not queue.add(b"y")
    assert queue.remove() is None


# Expiry (doc/compatibility.md §3.3)


def test_max_age_expires_items(harness):
    queue = harness.queue(max_age=3.0)
    assert queue.add(b"sunny")
    assert queue.items == 1
    harness.clock.advance(4)
    assert queue.remove() is None
    assert queue.expired_items == 1


def test_max_age_is_taken_from_the_current_config(harness):
    queue = harness.queue(max_age=60.0)
    assert queue.add(b"rainy")
    queue.reconfigure(QueueConfig(max_age=1.0))
    harness.clock.advance(5)
    assert queue.remove() is None
    assert queue.expired_items == 1


def test_item_expires_only_after_its_expiry(harness):
    queue = harness.queue()
    queue.add(b"hello", expiry=now_ms(harness) + 5000)
    harness.clock.advance(5)
    assert queue.peek().data == b"hello"
    harness.clock.advance(0.001)
    assert queue.peek() is None


def test_expired_items_go_into_the_ether(harness):
    queue = harness.queue(keep_journal=False)
    expiry = now_ms(harness) + 1000
    for data in (b"rza", b"gza", b"ol dirty bastard"):
        assert queue.add(data, expiry=expiry)
    assert queue.add(b"raekwon")
    harness.clock.advance(2)
    assert queue.discard_expired() == 3
    assert queue.items == 1
    assert queue.expired_items == 3
    assert queue.remove().data == b"raekwon"


def test_expired_items_are_journaled_as_removes(harness):
    queue = harness.queue()
    queue.add(b"old", expiry=now_ms(harness) + 1000)
    queue.add(b"new")
    harness.clock.advance(2)
    assert queue.discard_expired() == 1
    queue.close()
    assert dump(harness.journal_bytes()) == "add(3:0:old), add(3:0:new), remove"


def test_only_expired_items_at_the_head_are_swept(harness):
    queue = harness.queue()
    queue.add(b"keeper")
    queue.add(b"expires", expiry=now_ms(harness) + 1000)
    harness.clock.advance(2)
    assert queue.discard_expired() == 0
    assert queue.items == 2


def test_max_expire_sweep_limits_one_sweep(harness):
    queue = harness.queue(keep_journal=False, max_expire_sweep=3)
    expiry = now_ms(harness) + 1000
    for data in (b"rza", b"gza", b"ol dirty bastard", b"cappadonna"):
        assert queue.add(data, expiry=expiry)
    assert queue.add(b"raekwon")
    harness.clock.advance(2)
    assert queue.discard_expired() == 3
    assert queue.items == 2
    assert queue.remove().data == b"raekwon"
    assert queue.items == 0
    assert queue.expired_items == 4


def test_without_max_expire_sweep_one_sweep_takes_all(harness):
    queue = harness.queue(keep_journal=False)
    expiry = now_ms(harness) + 1000
    for data in (b"miku", b"rin", b"len", b"luka"):
        queue.add(data, expiry=expiry)
    queue.add(b"geso")
    harness.clock.advance(2)
    assert queue.discard_expired() == 4
    assert drain(queue) == [b"geso"]


# No journal (doc/compatibility.md §3.6)


def test_queue_without_journal_creates_no_file(harness):
    queue = harness.queue("mem", keep_journal=False)
    queue.add(b"coffee")
    harness.settle()
    assert not os.path.exists(os.path.join(harness.directory, "mem"))
    assert queue.remove().data == b"coffee"


def test_queue_without_journal_loses_its_items_on_restart(harness):
    queue = harness.queue("mem", keep_journal=False)
    queue.add(b"coffee")
    queue = harness.restart(queue, keep_journal=False)
    assert queue.remove() is None
    assert os.listdir(harness.directory) == []


def test_queue_without_journal_erases_an_old_journal(harness):
    queue = harness.queue("mem")
    queue.add(b"coffee")
    queue = harness.restart(queue, keep_journal=False)
    assert queue.items == 0
    assert journal_file_names(harness.directory, "mem") == []


# Blocking reads


def test_blocking_read_gets_an_item_added_before_its_deadline(harness):
    queue = harness.queue(max_memory_size=1024)
    deadline = harness.clock.seconds() + 0.250
    waiting = queue.fetch(False, False, deadline)
    results = fired(waiting)
    assert [call.getTime() for call in pending_calls(harness.clock)] == [pytest.approx(deadline)]
    assert results == []
    assert stat(queue, "waiters") == 1

    queue.add(b"hello")
    assert [item.data for item in results] == [b"hello"]
    assert stat(queue, "waiters") == 0
    assert queue.items == 0


def test_blocking_read_gets_nothing_at_its_deadline(harness):
    queue = harness.queue(max_memory_size=1024)
    results = fired(queue.fetch(False, False, harness.clock.seconds() + 0.250))
    harness.clock.advance(0.249)
    assert results == []
    harness.clock.advance(0.001)
    assert results == [None]
    assert stat(queue, "waiters") == 0
    assert queue.get_misses == 1


def test_read_with_a_past_deadline_answers_at_once(harness):
    queue = harness.queue()
    assert queue.fetch(False, False, harness.clock.seconds()) is None
    assert queue.fetch(False, False, None) is None
    assert stat(queue, "waiters") == 0


def test_long_wait_is_cancelled_when_an_item_arrives(harness):
    queue = harness.queue()
    results = fired(queue.fetch(False, False, harness.clock.seconds() + SEVEN_DAYS))
    assert stat(queue, "waiters") == 1
    assert len(pending_calls(harness.clock)) == 1

    queue.add(b"hi")
    assert [item.data for item in results] == [b"hi"]
    harness.settle()
    assert stat(queue, "waiters") == 0
    assert pending_calls(harness.clock) == []


def test_long_wait_cancelled_by_the_client_leaves_no_waiter_and_no_timer(harness):
    queue = harness.queue()
    waiting = queue.fetch(False, False, harness.clock.seconds() + SEVEN_DAYS)
    results = fired(waiting)
    assert stat(queue, "waiters") == 1

    waiting.cancel()
    assert results[0].check(CancelledError)
    assert stat(queue, "waiters") == 0
    assert pending_calls(harness.clock) == []

    queue.add(b"later")
    assert queue.items == 1


def test_transactional_blocking_read_opens_the_item(harness):
    queue = harness.queue()
    results = fired(queue.fetch(True, False, harness.clock.seconds() + 1))
    queue.add(b"job")
    assert results[0].data == b"job"
    assert results[0].xid == 1
    assert queue.open_transactions == 1


def test_each_add_wakes_one_waiter_in_arrival_order(harness):
    queue = harness.queue()
    deadline = harness.clock.seconds() + 10
    first = fired(queue.fetch(False, False, deadline))
    second = fired(queue.fetch(False, False, deadline))
    queue.add(b"a")
    assert [item.data for item in first] == [b"a"]
    assert second == []
    queue.add(b"b")
    assert [item.data for item in second] == [b"b"]


def test_aborted_transaction_wakes_a_waiter(harness):
    queue = harness.queue()
    queue.add(b"job")
    job = queue.remove(transaction=True)
    results = fired(queue.fetch(False, False, harness.clock.seconds() + 10))
    queue.unremove(job.xid)
    assert [item.data for item in results] == [b"job"]


def test_closing_the_queue_answers_waiters_with_nothing(harness):
    queue = harness.queue()
    results = fired(queue.fetch(False, False, harness.clock.seconds() + 10))
    queue.close()
    assert results == [None]
    harness.settle()
    assert pending_calls(harness.clock) == []


# Age


def test_age_of_an_empty_queue_is_zero(harness):
    queue = harness.queue()
    assert stat(queue, "age") == 0
    queue.add(bytes(128))
    harness.clock.advance(0.010)
    assert len(queue.remove().data) == 128
    assert queue.items == 0
    assert stat(queue, "age") == 0


def test_head_age_is_the_age_of_the_oldest_item_waiting(harness):
    queue = harness.queue()
    assert stat(queue, "head_age") == 0
    queue.add(b"a")
    harness.clock.advance(0.010)
    queue.add(b"b")
    harness.clock.advance(0.005)
    assert stat(queue, "head_age") == 15
    queue.remove()
    assert stat(queue, "head_age") == 5
    queue.remove()
    assert stat(queue, "head_age") == 0


def test_age_grows_with_the_clock_after_a_remove(harness):
    queue = harness.queue()
    queue.add(b"a")
    queue.add(b"b")
    queue.remove()
    assert stat(queue, "age") == 0
    harness.clock.advance(0.010)
    assert stat(queue, "age") == 10
    harness.clock.advance(0.010)
    assert stat(queue, "age") == 20


# Closing while the server is out of service (read-only or quiescent) rewrites empty queues


def test_graceful_close_empties_the_journal_of_an_empty_queue(harness):
    queue = harness.queue()
    queue.add(b"first")
    queue.remove()
    queue.close(rewrite_if_empty=True)
    assert harness.journal_bytes() == b""
    assert harness.queue().items == 0


def test_graceful_close_keeps_the_journal_of_a_queue_with_items(harness):
    queue = harness.queue()
    queue.add(b"first")
    queue.add(b"second")
    queue.remove()
    before = harness.journal_bytes()
    queue.close(rewrite_if_empty=True)
    assert harness.journal_bytes() == before


def test_graceful_close_keeps_the_open_read_of_an_empty_queue(harness):
    queue = harness.queue()
    queue.add(b"first")
    queue.add(b"second")
    assert queue.confirm(queue.remove(transaction=True).xid)
    assert queue.remove(transaction=True).xid == 2
    queue.close(rewrite_if_empty=True)
    assert dump(harness.journal_bytes()) == "add(6:0:second), remove-tentative(2)"
    harness.queue()  # the restart rolls the read back
    assert dump(harness.journal_bytes()) == "add(6:0:second), remove-tentative(2), unremove(2)"


def test_queues_without_open_reads_share_none_and_each_open_read_stays_with_its_queue(harness):
    # Most of a million queues never have an open read, and hold no dict for them (issue 15).
    reading, idle = harness.queue("reading"), harness.queue("idle")
    reading.add(b"a")
    idle.add(b"b")
    xid = reading.remove(transaction=True).xid
    assert (reading.open_xids(), idle.open_xids()) == ([xid], [])
    assert reading.confirm(xid) and not idle.confirm(xid)
    restarted = harness.restart(harness.queue("replayed"))
    restarted.add(b"c")
    restarted.remove(transaction=True)
    assert len(harness.restart(restarted).memory()) == 1 and idle.open_transactions == 0
