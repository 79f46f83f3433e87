"""kestrel.client.fleet and calls: server choice and retries, on an injected clock, with no I/O."""

import random

import pytest

from kestrel.client import calls
from kestrel.client.calls import Answered, Dropped, Exchange, Unreachable
from kestrel.client.fleet import Fleet, Membership, server_address
from kestrel.client.protocol import (
    ClientError,
    ConfirmFailed,
    NoServerAvailable,
    NotStored,
    Result,
    ServerError,
    WriteOutcomeUnknown,
    get_request,
    set_request,
)

SERVERS = ["a:1", "b:1", "c:1"]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def fleet_of(clock, servers=SERVERS, **options) -> Fleet:
    return Fleet(Membership(servers), clock=clock, choose=random.Random(7), **options)


def test_writes_stay_on_one_server_for_the_configured_count(clock):
    fleet = fleet_of(clock, writes_per_server=3)
    firsts = [fleet.write_servers()[0] for _ in range(30)]
    runs = [firsts[start : start + 3] for start in range(0, 30, 3)]
    assert all(len(set(run)) == 1 for run in runs)
    assert len(set(firsts)) > 1  # the choice moves on
    assert sorted(fleet.write_servers()) == sorted(SERVERS)  # the others follow, to retry on


def test_reads_start_one_server_further_each_time(clock):
    fleet = fleet_of(clock)
    assert [fleet.read_servers() for _ in range(4)] == [
        ["a:1", "b:1", "c:1"], ["b:1", "c:1", "a:1"], ["c:1", "a:1", "b:1"], ["a:1", "b:1", "c:1"],
    ]


def test_a_failed_server_is_left_alone_for_a_back_off_that_doubles(clock):
    fleet = fleet_of(clock, backoff_initial=1.0, backoff_max=3.0)
    fleet.failed("a:1")
    fleet.failed("a:1")  # a call that began before it went down doubles nothing
    assert "a:1" not in fleet.read_servers() and "a:1" not in fleet.write_servers()
    clock.now += 1.0
    assert "a:1" in fleet.read_servers()
    fleet.failed("a:1")
    clock.now += 1.5
    assert not fleet.is_up("a:1")
    clock.now += 0.5
    assert fleet.is_up("a:1")
    fleet.failed("a:1")
    fleet.failed("b:1")
    clock.now += 2.9  # a:1's fourth failure: 8 s, capped at 3
    assert not fleet.is_up("a:1") and fleet.is_up("b:1")
    fleet.succeeded("a:1")
    assert fleet.is_up("a:1")


def test_when_every_server_is_down_they_are_offered_soonest_back_first(clock):
    fleet = fleet_of(clock)
    for server in ["b:1", "a:1", "c:1"]:
        fleet.failed(server)
        clock.now += 0.1
    assert fleet.read_servers()[0] == "b:1"
    assert sorted(fleet.write_servers()) == sorted(SERVERS)


def test_membership_changes_apply_to_the_next_choice(clock):
    membership = Membership(SERVERS)
    fleet = Fleet(membership, clock=clock)
    membership.replace(read=["r:1"], write=["w:1", "w:2"])
    assert fleet.read_servers() == ["r:1"]
    assert set(fleet.write_servers()) == {"w:1", "w:2"}
    assert membership.all_servers() == ("w:1", "w:2", "r:1")
    with pytest.raises(ValueError):
        membership.replace(["nohost:"])


def test_server_addresses():
    assert server_address("10.0.0.7:22133") == ("10.0.0.7", 22133)
    assert server_address("[::1]:22133") == ("::1", 22133)
    assert server_address("queue.example") == ("queue.example", 22133)


# Calls, driven by hand: each test plays the servers' part


def drive(call, *outcomes):
    """Run a call, answering its exchanges with `outcomes` (callables of the Exchange); the exchanges and the result."""
    seen = []
    outcome = None
    try:
        for answer in outcomes:
            action = call.send(outcome)
            seen.append(action)
            outcome = answer(action)
        action = call.send(outcome)
    except StopIteration as done:
        return seen, done.value
    raise AssertionError(f"the call asked for more: {action}")


def replies(*values_or_errors):
    def answer(action: Exchange) -> Answered:
        return Answered([
            Result(request, error=value) if isinstance(value, Exception) else Result(request, value)
            for request, value in zip(action.requests, values_or_errors)
        ])
    return answer


def refused(action):
    return Unreachable(ConnectionRefusedError())


def dropped(action):
    return Dropped(ConnectionResetError())


def test_a_put_refused_by_status_or_unreachable_moves_on_and_marks_the_server_down(clock):
    fleet = fleet_of(clock)
    seen, _ = drive(calls.put(fleet, set_request("q", b"x"), attempts=3), replies(ServerError("quiescent")), refused, replies(None))
    assert len({action.server for action in seen}) == 3
    assert [fleet.is_up(action.server) for action in seen] == [False, False, True]


def test_a_put_whose_connection_dropped_is_never_retried(clock):
    fleet = fleet_of(clock)
    with pytest.raises(WriteOutcomeUnknown) as raised:
        drive(calls.put(fleet, set_request("q", b"x"), attempts=3), dropped)
    assert not fleet.is_up(raised.value.server)


def test_a_put_with_no_server_left_says_why(clock):
    fleet = fleet_of(clock)
    with pytest.raises(NoServerAvailable) as raised:
        drive(calls.put(fleet, set_request("q", b"x"), attempts=2), refused, refused)
    assert len(raised.value.failures) == 2


def test_a_put_refused_by_the_queue_or_malformed_raises_as_it_is(clock):
    for error in (NotStored("full"), ClientError("bad")):
        with pytest.raises(type(error)):
            drive(calls.put(fleet_of(clock), set_request("q", b"x"), attempts=3), replies(error))


def test_put_many_moves_the_refused_rest_elsewhere_and_reports_what_is_unknown(clock, monkeypatch):
    monkeypatch.setattr(calls, "PIPELINE_BYTES", 40)  # two sets a batch
    fleet = fleet_of(clock)
    requests = [set_request("q", b"%d" % n) for n in range(6)]

    def refuse_the_second(action):
        # The server closed after SERVER_ERROR and ignored the rest (§1.9): a drop with two replies.
        return Dropped(ConnectionResetError(), [Result(action.requests[0]), Result(action.requests[1], error=ServerError("readonly"))])

    seen, _ = drive(calls.put_many(fleet, "q", requests, 3), refuse_the_second, replies(None, None), replies(None, None), replies(None))
    assert [[request.wire[-3:-2] for request in action.requests] for action in seen] == [[b"0", b"1"], [b"1", b"2"], [b"3", b"4"], [b"5"]]
    assert seen[0].server != seen[1].server == seen[2].server
    with pytest.raises(NotStored) as raised:
        drive(calls.put_many(fleet_of(clock), "q", requests, 3), replies(None, None), replies(None, NotStored("full")), replies(None, None))
    assert raised.value.refused == (3,)
    with pytest.raises(WriteOutcomeUnknown) as raised:
        drive(calls.put_many(fleet_of(clock), "q", requests, 3), replies(None, None), lambda action: Dropped(OSError(), [Result(action.requests[0])]))
    assert (raised.value.done, raised.value.unknown) == (3, 1)


def test_a_read_asks_each_server_without_waiting_then_waits_slices_until_the_timeout(clock):
    fleet = fleet_of(clock)

    def empty_after_its_wait(action):
        clock.now += action.requests[0].wait
        return replies(None)(action)

    call = calls.get(fleet, "q", 1.0, 0.25, clock)
    seen, item = drive(call, *[empty_after_its_wait] * 6, replies(b"found"))
    assert [action.requests[0].wait for action in seen] == [0, 0, 0, 0.25, 0.25, 0.25, 0.25]
    assert item == b"found"
    seen, item = drive(calls.get(fleet, "q", 0.6, 0.25, clock), *[empty_after_its_wait] * 6)
    assert [action.requests[0].wait for action in seen] == [0, 0, 0, 0.25, 0.25, pytest.approx(0.1)]
    assert item is None


def test_a_read_of_one_server_waits_its_whole_timeout_there(clock):
    def empty_after_its_wait(action):
        clock.now += action.requests[0].wait
        return replies(None)(action)

    seen, item = drive(calls.get(fleet_of(clock, ["a:1"]), "q", 2.0, 0.25, clock), empty_after_its_wait)
    assert [action.requests[0].wait for action in seen] == [2.0] and item is None


def test_a_read_skips_failing_servers_and_raises_only_when_none_answer(clock):
    fleet = fleet_of(clock)
    seen, item = drive(calls.get(fleet, "q", 0, 0.25, clock), dropped, replies(ServerError("quiescent")), replies(b"x"))
    assert item == b"x" and [fleet.is_up(action.server) for action in seen] == [False, False, True]
    with pytest.raises(NoServerAvailable):
        drive(calls.get(fleet_of(clock), "q", 0, 0.25, clock), refused, refused, refused)


def test_a_reserved_item_is_held_and_finished_on_its_connection(clock):
    seen, found = drive(calls.read(fleet_of(clock), "q", 0, 0.25, clock, "open", hold=True), lambda action: Answered([Result(action.requests[0], b"x")], "conn"))
    assert seen[0].hold and seen[0].requests[0].wire == b"get q/open\r\n"
    assert found == calls.Found(seen[0].server, b"x", "conn")
    seen, _ = drive(calls.finish_read(found, "q", confirm=True), replies(None))
    assert seen == [Exchange(found.server, (get_request("q", 0, "close"),), connection="conn")]
    drive(calls.finish_read(found, "q", confirm=False), dropped)  # the server rolls back: what an abort wants
    with pytest.raises(ConfirmFailed) as raised:
        drive(calls.finish_read(found, "q", confirm=True), dropped)
    assert raised.value.sent
    with pytest.raises(ConfirmFailed) as raised:
        drive(calls.finish_read(found, "q", confirm=True), refused)
    assert not raised.value.sent


def test_delete_and_flush_go_to_every_server_and_report_the_ones_that_failed(clock):
    fleet = fleet_of(clock)
    seen, _ = drive(calls.on_every_server(fleet, get_request("q")), replies(None), replies(None), replies(None))
    assert [action.server for action in seen] == SERVERS
    with pytest.raises(NoServerAvailable) as raised:
        drive(calls.on_every_server(fleet_of(clock), set_request("q", b"x")), replies(None), dropped, refused)
    assert isinstance(raised.value.failures["b:1"], WriteOutcomeUnknown) and list(raised.value.failures) == ["b:1", "c:1"]
