"""Running a phase over processes without a server: shared counters, merging, stall detection."""

import asyncio
import io
from argparse import Namespace

from kestrel.load.clients import Server
from kestrel.load.runner import Board, Part, Worker, run_phase

SERVER = Server("kestrel", "test")


def test_board_rows_add_up():
    board = Board(["sent", "received"], procs=3)
    board.add(0, "sent", 2)
    board.add(2, "sent", 5)
    board.add(1, "received")
    assert board.totals() == {"sent": 7, "received": 1}
    assert not board.stopped
    board.stop()
    assert board.stopped


def test_parts_merge():
    first, second = Part(started_ns=100, last_event_ns=400), Part(started_ns=50, last_event_ns=300)
    first.counts["sent"], second.counts["sent"] = 2, 3
    first.delivered.extend([1, 2])
    second.delivered.append(3)
    second.errors.append("boom")
    first.merge(second)
    assert first.counts["sent"] == 5
    assert list(first.delivered) == [1, 2, 3]
    assert first.elapsed_ns == 350
    assert first.errors == ["boom"]


async def deliver(worker: Worker, count: int) -> None:
    for number in range(count):
        worker.latency("op").record_ns(1000 * (number + 1))
        worker.deliver("received", worker.index * 1000 + number)
        await asyncio.sleep(0)


def delivering(worker: Worker):
    return [deliver(worker, 5) for _ in worker.mine(4)]


def test_processes_merge_counts_histograms_and_deliveries():
    outcome = run_phase(delivering, Namespace(), SERVER, ["received"], procs=2, out=io.StringIO())
    part = outcome.part
    assert not outcome.errors
    assert part.counts["received"] == 20
    assert part.latencies["op"].count == 20
    assert sorted(part.delivered) == sorted([0, 1, 2, 3, 4] * 2 + [1000, 1001, 1002, 1003, 1004] * 2)


async def wait_forever(worker: Worker) -> None:
    await asyncio.Event().wait()


async def fail(worker: Worker) -> None:
    raise ValueError("unexpected reply")


def test_a_run_without_progress_is_stopped():
    outcome = run_phase(lambda worker: [wait_forever(worker)], Namespace(), SERVER, ["received"], stall=0.3, out=io.StringIO())
    assert outcome.stalled
    assert outcome.errors == ["stalled: no progress for 0.3 s, run stopped"]


def test_a_failing_client_stops_the_others_and_is_reported():
    outcome = run_phase(lambda worker: [wait_forever(worker), fail(worker)], Namespace(), SERVER, ["received"], out=io.StringIO())
    assert outcome.errors == ["ValueError: unexpected reply"]
    assert not outcome.stalled
