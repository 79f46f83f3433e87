"""Session: the protocol-independent rules of a connection (doc/compatibility.md §1.5, §1.6; Kestrel's KestrelHandlerSpec, §5)."""

import pytest
from twisted.internet.defer import CancelledError, Deferred

from kestrel.config import QueueConfig
from kestrel.session import ReadStillOpen, Session, TooManyOpenReads, Unavailable
from kestrel.test.support import ServerHarness, fired, pending_calls


@pytest.fixture
def kestrel(harness) -> ServerHarness:
    return ServerHarness(harness, max_open_transactions=10)


@pytest.fixture
def session(kestrel) -> Session:
    return Session(kestrel.server)


def data(result) -> bytes | None:
    assert not isinstance(result, Deferred)
    return None if result is None else result.data


class Monitor:
    """What a monitor delivered, and whether its stream ended."""

    def __init__(self, session: Session, name: str, timeout: float, max_items: int | None = None):
        self.items: list[bytes] = []
        self.ended = fired(session.monitor(name, timeout, max_items, lambda item: self.items.append(item.data)))


def counters(kestrel: ServerHarness, *names: str) -> list[int]:
    return [getattr(kestrel.stats, name) for name in names]


def test_set_and_get_count_exactly(kestrel, session):
    assert session.set("test", b"one") is True
    assert session.set("test", b"two") is True
    assert counters(kestrel, "cmd_set", "cmd_get", "get_hits", "get_misses") == [2, 0, 0, 0]
    assert data(session.fetch("test")) == b"one"
    assert counters(kestrel, "cmd_set", "cmd_get", "get_hits", "get_misses") == [2, 1, 1, 0]
    assert data(session.fetch("test")) == b"two"
    assert counters(kestrel, "cmd_set", "cmd_get", "get_hits", "get_misses") == [2, 2, 2, 0]
    assert data(session.fetch("test2")) is None
    assert counters(kestrel, "cmd_set", "cmd_get", "get_hits", "get_misses") == [2, 3, 2, 1]
    assert data(session.fetch("test", peek=True)) is None
    assert counters(kestrel, "cmd_get", "cmd_peek", "get_misses") == [3, 1, 2]


def test_monitor_counts_exactly(kestrel, session):
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
    first = Monitor(session, "test", 10, 2)
    assert (first.items, first.ended) == ([b"one", b"two"], [None])
    assert counters(kestrel, "cmd_monitor", "cmd_monitor_get", "get_misses") == [1, 2, 0]

    second = Monitor(session, "test", 1, 2)
    assert (second.items, second.ended) == ([b"three"], [])
    kestrel.clock.advance(1)
    assert second.ended == [None]
    assert counters(kestrel, "cmd_monitor", "cmd_monitor_get", "get_misses") == [2, 4, 1]

    third = Monitor(session, "test", 1, 2)
    kestrel.clock.advance(1)
    assert (third.items, third.ended) == ([], [None])
    assert counters(kestrel, "cmd_monitor", "cmd_monitor_get", "get_misses") == [3, 5, 2]
    assert session.open_reads("test") == 3


def test_monitor_obeys_max_items(session):
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
    monitor = Monitor(session, "test", 10, 2)
    assert (monitor.items, monitor.ended) == ([b"one", b"two"], [None])


def test_monitor_stops_at_the_open_read_limit(harness):
    kestrel = ServerHarness(harness, max_open_transactions=1)
    session = Session(kestrel.server)
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
    monitor = Monitor(session, "test", 10, 2)
    assert (monitor.items, monitor.ended) == ([b"one"], [None])
    assert kestrel.stats.cmd_monitor_get == 1


def test_open_abort_close(session):
    session.set("test", b"one")
    assert data(session.fetch("test", transaction=True)) == b"one"
    assert data(session.fetch("test", transaction=True)) is None
    assert session.abort_oldest("test") is True
    assert data(session.fetch("test", transaction=True)) == b"one"
    assert session.confirm_oldest("test") is True
    assert data(session.fetch("test", transaction=True)) is None
    assert session.confirm_oldest("test") is False
    assert session.abort_oldest("test") is False


def test_several_open_reads_on_one_queue(session):
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
    assert data(session.fetch("test", transaction=True)) == b"one"
    assert data(session.fetch("test", transaction=True)) == b"two"
    assert session.abort_oldest("test")  # one
    assert data(session.fetch("test", transaction=True)) == b"one"
    assert session.confirm_oldest("test")  # two
    assert data(session.fetch("test", transaction=True)) == b"three"
    assert session.abort_oldest("test")  # one
    assert data(session.fetch("test", transaction=True)) == b"one"
    assert session.open_reads("test") == 2


def test_several_queues_are_independent(kestrel, session):
    for name in ("red", "green", "blue"):
        session.set(name, name.encode() + b"1")
        session.set(name, name.encode() + b"2")
    for name in ("red", "green", "blue", "red"):
        assert session.fetch(name, transaction=True) is not None
    assert session.abort_oldest("green")
    assert session.confirm_oldest("red") and session.confirm_oldest("red")
    assert session.confirm_oldest("red") is False
    assert [session.open_reads(name) for name in ("red", "green", "blue")] == [0, 0, 1]
    assert [kestrel.queue_stat(name, "items") for name in ("red", "green", "blue")] == [0, 2, 1]


def test_limit_one_refuses_a_second_open_read(harness):
    kestrel = ServerHarness(harness, max_open_transactions=1)
    session = Session(kestrel.server)
    session.set("test", b"one")
    session.set("test", b"two")
    assert data(session.fetch("test", transaction=True)) == b"one"
    with pytest.raises(TooManyOpenReads):
        session.fetch("test", transaction=True)
    assert data(session.fetch("other", transaction=True)) is None
    assert kestrel.queue_stat("test", "items") == 1


def test_a_plain_read_while_holding_an_open_read_is_refused(session):
    session.set("test", b"one")
    session.set("test", b"two")
    session.fetch("test", transaction=True)
    with pytest.raises(ReadStillOpen):
        session.fetch("test")
    assert data(session.fetch("test", peek=True)) == b"two"


def test_confirm_count(kestrel, session):
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
        session.fetch("test", transaction=True)
    assert session.confirm("test", 4) is False
    assert session.confirm("test", 0) is False
    assert session.open_reads("test") == 3
    assert session.confirm("test", 2) is True
    assert session.open_reads("test") == 1
    assert session.confirm_all("test") == 1
    assert session.confirm_all("test") == 0
    assert kestrel.queue_stat("test", "open_transactions") == 0


def test_confirm_all_then_abort_finds_nothing(session):
    session.set("test", b"one")
    session.set("test", b"two")
    session.fetch("test", transaction=True)
    session.fetch("test", transaction=True)
    assert session.confirm_all("test") == 2
    assert session.abort_oldest("test") is False


def test_deleting_a_queue_with_an_open_read_then_aborting_does_not_recreate_it(kestrel, session):
    session.set("test", b"one")
    session.fetch("test", transaction=True)
    assert kestrel.collection.delete("test")
    assert session.abort_oldest("test") is False
    assert "test" not in kestrel.collection
    session.finish()
    assert "test" not in kestrel.collection


def test_reads_opened_on_a_deleted_queue_do_not_touch_its_successor(kestrel, session):
    session.set("test", b"old")
    session.fetch("test", transaction=True)
    kestrel.collection.delete("test")
    other = Session(kestrel.server)
    other.set("test", b"new")
    assert data(other.fetch("test", transaction=True)) == b"new"
    assert session.abort_oldest("test") is False
    session.finish()
    assert kestrel.queue_stat("test", "open_transactions") == 1
    assert kestrel.queue_stat("test", "items") == 0
    assert other.confirm_oldest("test") is True


def test_finish_aborts_open_reads_oldest_at_the_head(kestrel, session):
    for item in (b"one", b"two", b"three"):
        session.set("test", item)
    session.fetch("test", transaction=True)
    session.fetch("test", transaction=True)
    session.set("other", b"x")
    session.fetch("other", transaction=True)
    assert kestrel.stats.curr_connections == 1
    session.finish()
    assert kestrel.contents("test") == [b"one", b"two", b"three"]
    assert kestrel.contents("other") == [b"x"]
    assert kestrel.stats.curr_connections == 0
    session.finish()
    assert kestrel.stats.curr_connections == 0


@pytest.mark.parametrize("wait", ["monitor", "get", "open"])
def test_finishing_a_session_with_a_pending_read_drops_its_waiter(kestrel, session, wait):
    if wait == "monitor":
        pending = Monitor(session, "test", 3600).ended
    else:
        pending = fired(session.fetch("test", transaction=wait == "open", deadline=kestrel.clock.seconds() + 3600))
    assert kestrel.queue_stat("test", "waiters") == 1
    session.finish()
    assert kestrel.queue_stat("test", "waiters") == 0
    kestrel.settle()
    assert pending_calls(kestrel.clock) == []
    Session(kestrel.server).set("test", b"one")
    assert kestrel.contents("test") == [b"one"]
    if wait == "monitor":
        assert pending == [None]
    else:
        assert len(pending) == 1 and pending[0].check(CancelledError)


def test_a_blocking_read_is_answered_by_a_later_set(kestrel, session):
    result = fired(session.fetch("test", transaction=True, deadline=kestrel.clock.seconds() + 10))
    assert result == []
    Session(kestrel.server).set("test", b"one")
    assert [item.data for item in result] == [b"one"]
    assert session.open_reads("test") == 1
    assert counters(kestrel, "get_hits", "get_misses") == [1, 0]


def test_a_blocking_read_times_out_at_its_deadline(kestrel, session):
    result = fired(session.fetch("test", deadline=kestrel.clock.seconds() + 10))
    kestrel.clock.advance(9.999)
    assert result == []
    kestrel.clock.advance(0.001)
    assert result == [None]
    assert counters(kestrel, "get_hits", "get_misses") == [0, 1]


def test_reads_of_an_alias_find_nothing_and_count_nothing(harness):
    kestrel = ServerHarness(harness, aliases={"all": ("a", "b")})
    session = Session(kestrel.server)
    assert session.set("all", b"x") is True
    assert data(session.fetch("all")) is None
    assert counters(kestrel, "cmd_get", "get_hits", "get_misses") == [1, 0, 0]
    assert kestrel.contents("a") == kestrel.contents("b") == [b"x"]


def test_blocked_reads_and_writes_raise(harness, tmp_path):
    kestrel = ServerHarness(harness, status_file=str(tmp_path / "state" / "status"))
    session = Session(kestrel.server)
    session.set("test", b"one")
    kestrel.server.status.set("readonly")
    with pytest.raises(Unavailable):
        session.set("test", b"two")
    assert data(session.fetch("test", transaction=True)) == b"one"
    kestrel.server.status.set("quiescent")
    for read in (lambda: session.fetch("test"), lambda: session.fetch("test", peek=True),
                 lambda: session.monitor("test", 1, None, print)):
        with pytest.raises(Unavailable):
            read()
    assert session.confirm_oldest("test") is True
    assert counters(kestrel, "cmd_set", "cmd_get", "cmd_peek", "cmd_monitor") == [1, 1, 0, 0]


def test_sessions_opened_over_a_connection_limit_refuse_for_their_lifetime(harness):
    kestrel = ServerHarness(harness, connection_limit_refuse_writes=1, connection_limit_refuse_reads=2)
    first = Session(kestrel.server)
    second = Session(kestrel.server)
    third = Session(kestrel.server)
    first.finish()
    second.finish()
    with pytest.raises(Unavailable):
        third.set("test", b"x")
    with pytest.raises(Unavailable):
        third.fetch("test")
    third.finish()
    fourth = Session(kestrel.server)
    assert fourth.set("test", b"x") is True
    assert data(fourth.fetch("test")) == b"x"


def test_a_sync_journal_set_fires_once_the_batch_ran(harness):
    kestrel = ServerHarness(harness, default_queue=QueueConfig(sync_journal=0.0))
    session = Session(kestrel.server)
    stored = fired(session.set("test", b"one"))
    assert stored == []
    kestrel.settle()
    assert stored == [True]


def test_reads_on_a_recreated_queue_are_tracked_on_the_new_queue(kestrel, session):
    session.set("test", b"old")
    session.fetch("test", transaction=True)
    assert session.confirm_oldest("test")
    kestrel.collection.delete("test")
    session.set("test", b"new")
    assert data(session.fetch("test", transaction=True)) == b"new"
    assert session.open_reads("test") == 1
    assert session.abort_oldest("test") is True
    assert kestrel.contents("test") == [b"new"]


def test_a_whitelisted_queue_serves_only_the_listed_client_ids(harness):
    kestrel = ServerHarness(harness, queue_overrides={
        "billing": {"whitelist_client_id_for_enqueue": ("producer",), "whitelist_client_id_for_dequeue": ("consumer",)},
    })
    session = Session(kestrel.server)
    for client_id in (None, "consumer"):
        session.client_id = client_id
        with pytest.raises(Unavailable, match="operation set"):
            session.set("billing", b"x")
    session.client_id = "producer"
    assert session.set("billing", b"one") is True
    assert session.set("other", b"anyone may") is True
    with pytest.raises(Unavailable, match="operation get"):
        session.fetch("billing")
    assert data(session.fetch("billing", peek=True)) == b"one"  # a peek removes nothing
    session.client_id = "consumer"
    assert data(session.fetch("billing", transaction=True)) == b"one"
    session.client_id = None
    assert data(session.fetch("other")) == b"anyone may"
