"""
Runs one phase of a load tool over one or more client processes, each with its own asyncio
loop, and merges what they measured.

The processes share a board of counters (one row each) that their clients read to know when
the run is complete, and that the parent reads once a second for the progress line. A run
that stops making progress is stopped: its clients are cancelled and their connections dropped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queues
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray
from time import perf_counter_ns
from typing import TextIO

from kestrel.load.clients import Server, connect
from kestrel.load.stats import Latency, Phase

WATCH_INTERVAL = 0.1


class Board:
    """Counters shared by the processes of a phase: each adds to its own row, any reads the totals."""

    def __init__(self, fields: Iterable[str], procs: int):
        self.fields = {name: index for index, name in enumerate(fields)}
        self.width = len(self.fields)
        self.procs = procs
        self.cells = RawArray("q", procs * self.width + 1)  # the last cell is the stop flag

    def add(self, row: int, name: str, count: int = 1) -> None:
        self.cells[row * self.width + self.fields[name]] += count

    def total(self, name: str) -> int:
        column, width, cells = self.fields[name], self.width, self.cells
        return sum(cells[row * width + column] for row in range(self.procs))

    def totals(self) -> dict[str, int]:
        return {name: self.total(name) for name in self.fields}

    @property
    def stopped(self) -> bool:
        return bool(self.cells[-1])

    def stop(self) -> None:
        self.cells[-1] = 1


@dataclass
class Part:
    """What one process measured."""

    counts: Counter = field(default_factory=Counter)
    latencies: dict[str, Latency] = field(default_factory=dict)
    delivered: array = field(default_factory=lambda: array("q"))
    started_ns: int = 0
    last_event_ns: int = 0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Part) -> None:
        self.counts.update(other.counts)
        for name, latency in other.latencies.items():
            if name in self.latencies:
                self.latencies[name].add(latency)
            else:
                self.latencies[name] = latency
        self.delivered.extend(other.delivered)
        self.started_ns = min(self.started_ns, other.started_ns) if self.started_ns else other.started_ns
        self.last_event_ns = max(self.last_event_ns, other.last_event_ns)
        self.errors.extend(other.errors)

    @property
    def elapsed_ns(self) -> int:
        return max(0, self.last_event_ns - self.started_ns)


class Worker:
    """What a tool's work function gets in each process."""

    def __init__(self, options, server: Server, index: int, procs: int, board: Board):
        self.options = options
        self.server = server
        self.index = index
        self.procs = procs
        self.board = board
        self.part = Part()
        self.clients: set = set()

    def mine(self, count: int) -> range:
        """The numbers, of 0 to count - 1, of the clients that this process runs."""
        return range(self.index, count, self.procs)

    async def connect(self):
        options = self.options
        client = await connect(options.protocol, options.host, options.port, self.server)
        self.clients.add(client)
        return client

    async def finish(self, client) -> None:
        self.forget(client)
        await client.finish()

    def forget(self, client) -> None:
        """A client that closed its connection itself, so it needs no dropping at the end."""
        self.clients.discard(client)

    def add(self, name: str, count: int = 1) -> None:
        """Count an event; counters on the board also show progress."""
        self.part.counts[name] += count
        if name in self.board.fields:
            self.board.add(self.index, name, count)
            self.part.last_event_ns = perf_counter_ns()

    def deliver(self, name: str, number: int) -> None:
        self.part.delivered.append(number)
        self.add(name)

    def latency(self, name: str) -> Latency:
        if name not in self.part.latencies:
            self.part.latencies[name] = Latency()
        return self.part.latencies[name]

    def done(self, name: str, target: int) -> bool:
        return self.board.stopped or self.board.total(name) >= target

    async def run(self, work: Callable[[Worker], Iterable[Awaitable]]) -> Part:
        """Run the clients that `work` returns until all end or the board is stopped."""
        tasks: list[asyncio.Task] = []
        watchdog = asyncio.create_task(self._watch(tasks))
        self.part.started_ns = perf_counter_ns()
        try:
            async with asyncio.TaskGroup() as group:
                tasks.extend(group.create_task(client) for client in work(self))
        except* Exception as failures:
            # Once the board is stopped, failures are what the stop did, not new problems.
            if not self.board.stopped:
                self.part.errors.extend(f"{type(error).__name__}: {error}" for error in failures.exceptions)
                self.board.stop()
        finally:
            watchdog.cancel()
            for client in self.clients:
                client.abort()
        return self.part

    async def _watch(self, tasks: list[asyncio.Task]) -> None:
        while not self.board.stopped:
            await asyncio.sleep(WATCH_INTERVAL)
        for task in tasks:
            task.cancel()


class Progress(threading.Thread):
    """Prints the board's totals and rates once a second; stops the board when nothing moves for `stall` seconds."""

    def __init__(self, board: Board, stall: float, out: TextIO, probe=None):
        super().__init__(daemon=True)
        self.board = board
        self.stall = stall
        self.out = out
        self.probe = probe
        self.stalled = False
        self._done = threading.Event()

    def run(self) -> None:
        started = last_change = last_print = time.monotonic()
        printed = changed = self.board.totals()
        while not self._done.wait(WATCH_INTERVAL):
            now, totals = time.monotonic(), self.board.totals()
            if totals != changed:
                changed, last_change = totals, now
            elif now - last_change > self.stall and not self.board.stopped:
                self.stalled = True
                self.board.stop()
            if now - last_print >= 1.0:
                rates = "  ".join(
                    f"{name} {total} ({(total - printed[name]) / (now - last_print):.0f}/s)"
                    for name, total in totals.items()
                )
                print(f"[{now - started:6.1f}s] {rates}", file=self.out, flush=True)
                if self.probe is not None:
                    print(f"          {self.probe.line()}", file=self.out, flush=True)
                printed, last_print = totals, now

    def finish(self) -> None:
        self._done.set()
        self.join()


@dataclass
class Outcome:
    part: Part
    stalled: bool
    stall: float

    def phase(self, name: str, items: int) -> Phase:
        return Phase(name, items, self.part.elapsed_ns, self.part.latencies)

    @property
    def errors(self) -> list[str]:
        stalled = [f"stalled: no progress for {self.stall:g} s, run stopped"] if self.stalled else []
        return stalled + self.part.errors


def run_phase(
    work: Callable[[Worker], Iterable[Awaitable]],
    options,
    server: Server,
    fields: Iterable[str],
    procs: int = 1,
    stall: float = 10.0,
    out: TextIO = sys.stdout,
    probe=None,
) -> Outcome:
    """Run `work` in `procs` processes (in this one when procs is 1) and merge their parts."""
    board = Board(fields, procs)
    progress = Progress(board, stall, out, probe)
    if procs == 1:
        progress.start()
        try:
            part = asyncio.run(Worker(options, server, 0, 1, board).run(work))
        finally:
            progress.finish()
        return Outcome(part, progress.stalled, stall)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_process_main, args=(work, options, server, index, procs, board, results), daemon=True)
        for index in range(procs)
    ]
    for process in processes:
        process.start()
    progress.start()
    try:
        part = _collect(processes, results)
    finally:
        progress.finish()
    return Outcome(part, progress.stalled, stall)


def _process_main(work, options, server, index, procs, board, results) -> None:
    try:
        part = asyncio.run(Worker(options, server, index, procs, board).run(work))
    except BaseException as error:  # the parent must hear from every process
        part = Part(errors=[f"process {index}: {type(error).__name__}: {error}"])
    results.put(part)


def _collect(processes: list, results) -> Part:
    merged, heard = Part(), 0
    while heard < len(processes):
        try:
            merged.merge(results.get(timeout=WATCH_INTERVAL))
            heard += 1
        except queues.Empty:
            if not any(process.is_alive() for process in processes) and results.empty():
                break
    for process in processes:
        process.join()
    if heard < len(processes):
        merged.errors.append(f"{len(processes) - heard} client process(es) died without a result")
    return merged
