"""Server status (doc/compatibility.md §3.8; Kestrel's ServerStatusSpec, §5): names, the status file, the grace period."""

import os

import pytest
from twisted.internet.task import Clock

from kestrel.status import (
    ForbiddenStatus,
    ServerStatus,
    Status,
    StatusNotConfigured,
    UnknownStatus,
)
from kestrel.test.support import pending_calls

GRACE = 30.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "state" / "status")


def make(path, clock, default: str = "up", grace: float = GRACE) -> ServerStatus:
    return ServerStatus(path, default, grace, clock)


def saved(path) -> str:
    with open(path) as file:
        return file.read()


def enforced(status: ServerStatus) -> tuple[bool, bool]:
    return status.readable, status.writable


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Up", Status.UP), ("up", Status.UP), ("UP", Status.UP),
        ("Down", Status.DOWN), ("DOWN", Status.DOWN),
        ("ReadOnly", Status.READONLY), ("readOnly", Status.READONLY), ("readonly", Status.READONLY),
        ("Quiescent", Status.QUIESCENT), ("QuIeScEnT", Status.QUIESCENT),
        ("WriteAvoid", Status.WRITEAVOID), ("writeavoid", Status.WRITEAVOID),
        ("Up\n", Status.UP),
    ],
)
def test_names_parse_case_insensitively(name, expected):
    assert Status.parse(name) is expected


@pytest.mark.parametrize("name", ["wut?", "", "read only", "up2", "strictness", "parse"])
def test_unknown_names(name):
    with pytest.raises(UnknownStatus):
        Status.parse(name)


@pytest.mark.parametrize(
    "status, readable, writable",
    [(Status.UP, True, True), (Status.WRITEAVOID, True, True), (Status.READONLY, True, False),
     (Status.QUIESCENT, False, False), (Status.DOWN, False, False)],
)
def test_what_each_status_allows(status, readable, writable):
    assert (status.readable, status.writable) == (readable, writable)


def test_strictness_order():
    order = [Status.UP, Status.WRITEAVOID, Status.READONLY, Status.QUIESCENT, Status.DOWN]
    assert sorted(order, key=lambda status: status.strictness) == order


@pytest.mark.parametrize(
    "name, stored",
    [("up", "Up\n"), ("readonly", "ReadOnly\n"), ("writeavoid", "WriteAvoid\n"), ("quiescent", "Quiescent\n")],
)
def test_changes_are_saved_as_display_names(path, clock, name, stored):
    status = make(path, clock, grace=0)
    assert not os.path.exists(path)
    status.set(name)
    assert saved(path) == stored
    assert os.listdir(os.path.dirname(path)) == ["status"]


@pytest.mark.parametrize(
    "stored, expected",
    [("ReadOnly\n", Status.READONLY), ("Quiescent", Status.QUIESCENT), ("writeavoid\n", Status.WRITEAVOID), ("Up\n", Status.UP)],
)
def test_the_saved_status_is_restored_at_start_and_enforced_at_once(path, clock, stored, expected):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as file:
        file.write(stored)
    status = make(path, clock, default="up")
    assert status.current is expected
    assert enforced(status) == (expected.readable, expected.writable)
    assert pending_calls(clock) == []


@pytest.mark.parametrize("stored", ["Down\n", "spongebob\n", ""])
def test_an_unusable_saved_status_gives_the_default(path, clock, stored):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as file:
        file.write(stored)
    assert make(path, clock, default="readonly").current is Status.READONLY


def test_no_saved_status_gives_the_default(path, clock):
    assert make(path, clock, default="quiescent").current is Status.QUIESCENT
    assert make(path, clock).current is Status.UP
    assert not os.path.exists(path)


def test_a_restart_restores_the_last_change(path, clock):
    make(path, clock, grace=0).set("readonly")
    assert make(path, clock).current is Status.READONLY


def test_down_cannot_be_set_and_is_never_saved(path, clock):
    status = make(path, clock, grace=0)
    status.set("readonly")
    for name in ("down", "Down", "DOWN"):
        with pytest.raises(ForbiddenStatus):
            status.set(name)
    assert status.current is Status.READONLY
    status.shut_down()
    assert status.current is Status.DOWN
    assert enforced(status) == (False, False)
    assert saved(path) == "ReadOnly\n"
    assert make(path, clock).current is Status.READONLY


def test_shut_down_cancels_a_pending_change(path, clock):
    status = make(path, clock)
    status.set("readonly")
    status.shut_down()
    assert pending_calls(clock) == []
    assert status.current is Status.DOWN


def test_unknown_names_change_nothing(path, clock):
    status = make(path, clock)
    with pytest.raises(UnknownStatus):
        status.set("trolling")
    assert status.current is Status.UP
    assert not os.path.exists(path)


def test_without_a_status_file_nothing_can_be_set(clock):
    status = ServerStatus(None, "up", 0, clock)
    assert not status.configured
    assert status.current is Status.UP
    with pytest.raises(StatusNotConfigured):
        status.set("readonly")
    assert status.current is Status.UP and status.writable


def test_a_stricter_status_is_reported_at_once_and_enforced_after_the_grace_period(path, clock):
    status = make(path, clock)
    assert status.set("readonly") is Status.READONLY
    assert status.current is Status.READONLY
    assert saved(path) == "ReadOnly\n"
    assert enforced(status) == (True, True)
    clock.advance(GRACE - 0.001)
    assert enforced(status) == (True, True)
    clock.advance(0.001)
    assert enforced(status) == (True, False)
    assert pending_calls(clock) == []


def test_quiescent_after_the_grace_period_blocks_reads_too(path, clock):
    status = make(path, clock)
    status.set("quiescent")
    assert enforced(status) == (True, True)
    clock.advance(GRACE)
    assert enforced(status) == (False, False)


def test_without_a_grace_period_a_stricter_status_is_enforced_at_once(path, clock):
    status = make(path, clock, grace=0)
    status.set("quiescent")
    assert enforced(status) == (False, False)
    assert pending_calls(clock) == []


@pytest.mark.parametrize("stricter", ["quiescent", "readonly", "READONLY"])
def test_no_stricter_or_equal_change_while_one_is_pending(path, clock, stricter):
    status = make(path, clock)
    assert status.set("readonly") is Status.READONLY
    clock.advance(GRACE / 2)
    assert status.set(stricter) is Status.READONLY
    assert saved(path) == "ReadOnly\n"
    assert enforced(status) == (True, True)
    clock.advance(GRACE / 2)
    assert enforced(status) == (True, False)
    assert status.set("quiescent") is Status.QUIESCENT
    clock.advance(GRACE)
    assert enforced(status) == (False, False)


def test_loosening_is_immediate_and_cancels_the_pending_change(path, clock):
    status = make(path, clock)
    status.set("quiescent")
    assert status.set("up") is Status.UP
    assert pending_calls(clock) == []
    assert saved(path) == "Up\n"
    clock.advance(GRACE)
    assert (status.current, enforced(status)) == (Status.UP, (True, True))


def test_loosening_to_a_status_stricter_than_the_enforced_one_applies_at_once(path, clock):
    status = make(path, clock)
    status.set("quiescent")
    assert status.set("readonly") is Status.READONLY
    assert enforced(status) == (True, False)
    assert pending_calls(clock) == []


def test_loosening_an_enforced_status_is_immediate(path, clock):
    status = make(path, clock)
    status.set("readonly")
    clock.advance(GRACE)
    assert status.set("writeavoid") is Status.WRITEAVOID
    assert enforced(status) == (True, True)
    assert saved(path) == "WriteAvoid\n"


def test_a_status_that_cannot_be_saved_changes_nothing(path, clock):
    status = make(path, clock, grace=0)
    status.set("readonly")
    os.remove(path)
    os.makedirs(path)
    with pytest.raises(OSError):
        status.set("quiescent")
    assert status.current is Status.READONLY
    assert enforced(status) == (True, False)
    with pytest.raises(OSError):
        status.set("up")
    assert status.current is Status.READONLY
    assert enforced(status) == (True, False)


def test_a_failed_save_during_a_grace_period_keeps_the_pending_change(path, clock):
    status = make(path, clock)
    status.set("readonly")
    os.remove(path)
    os.makedirs(path)
    with pytest.raises(OSError):
        status.set("up")
    assert status.current is Status.READONLY
    clock.advance(GRACE)
    assert enforced(status) == (True, False)


def test_watchers_hear_each_change_of_the_reported_status(path, clock):
    status = make(path, clock)
    heard = []
    status.watch(heard.append)
    status.set("readonly")  # reported at once, enforced after the grace period
    status.set("readonly")
    clock.advance(GRACE)
    status.set("up")
    assert heard == [Status.READONLY, Status.UP]
