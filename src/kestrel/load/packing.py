"""
packing: keeps a queue permanently behind to exercise read-behind and journal packing. It
writes N items, then runs cycles of (write N while reading N) with pauses, then reads the last
N. Items carry a counter, so the reader checks that they come back in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from functools import partial
from time import perf_counter_ns

from kestrel.load.arguments import Tool, config_of, positive, seconds
from kestrel.load.checks import count_check, order_check
from kestrel.load.clients import flush_queues
from kestrel.load.items import NumberedItems
from kestrel.load.roles import produce
from kestrel.load.runner import Part, Worker, run_phase
from kestrel.load.stats import Phase, Result

TOOL = Tool("packing", procs=False, monitor=True)


def add_arguments(parser) -> None:
    parser.add_argument("-q", "--queue", default="spam", help="queue name (default: spam)")
    parser.add_argument("-n", "--items", type=positive, default=25000, help="items per write and read (default: 25000)")
    parser.add_argument("-k", "--kilobytes", type=positive, default=1, help="KB per item (default: 1)")
    parser.add_argument("-t", "--pause", type=seconds, default=1.0, help="seconds of pause between cycles (default: 1)")
    parser.add_argument("-c", "--cycles", type=positive, default=100, help="write+read cycles (default: 100)")


async def read(worker: Worker, items: NumberedItems, count: int) -> None:
    client = await worker.connect()
    latency = worker.latency("get")
    while not worker.done("read", count):
        began = perf_counter_ns()
        item = await client.take(worker.options.queue)
        latency.record_ns(perf_counter_ns() - began)
        if item is None:
            worker.add("misses")
            continue
        number = items.number(item)
        worker.deliver("read", -1 if number is None else number)
    await worker.finish(client)


def clients(worker: Worker, items: NumberedItems, writes: range, reads: int):
    writer = [produce(worker, items.make, writes, worker.options.queue, stored_as="written")] if writes else []
    return writer + ([read(worker, items, reads)] if reads else [])


def run(options, server, out, probe=None) -> Result:
    items = NumberedItems(options.kilobytes * 1024)
    n = options.items
    if options.flush:
        asyncio.run(flush_queues(options.protocol, options.host, options.port, server, [options.queue]))

    def cycle(writes: range, reads: int):
        return run_phase(
            partial(clients, items=items, writes=writes, reads=reads),
            options, server, ["written", "read"], stall=options.stall, out=out, probe=probe,
        )

    fill = cycle(range(n), 0)
    outcomes, cycles, cycles_ns = [fill], Part(), 0
    for number in range(1, options.cycles + 1):
        if outcomes[-1].errors:
            break
        outcome = cycle(range(number * n, (number + 1) * n), n)
        outcomes.append(outcome)
        cycles.merge(outcome.part)
        cycles_ns += outcome.part.elapsed_ns
        counts = outcome.part.counts
        print(
            f"cycle {number}/{options.cycles}: wrote {counts['written']}, read {counts['read']} "
            f"in {outcome.part.elapsed_ns / 1e6:.0f} ms, {counts['misses']} misses",
            file=out,
            flush=True,
        )
        if number < options.cycles:
            time.sleep(options.pause)
    phases = [fill.phase("fill", fill.part.counts["written"]), Phase("cycles", cycles.counts["read"], cycles_ns, cycles.latencies)]
    if not outcomes[-1].errors:
        drain = cycle(range(0), n)
        outcomes.append(drain)
        phases.append(drain.phase("drain", drain.part.counts["read"]))

    counts = Counter()
    for outcome in outcomes:
        counts.update(outcome.part.counts)
    total = n * (options.cycles + 1)
    checks = [
        count_check("written", "items stored", counts["written"], total),
        count_check("read", "items read", counts["read"], total),
        order_check([number for outcome in outcomes for number in outcome.part.delivered]),
    ]
    errors = [error for outcome in outcomes for error in outcome.errors]
    return Result(TOOL.name, config_of(options), server.as_json(), phases, dict(counts), checks, errors)
