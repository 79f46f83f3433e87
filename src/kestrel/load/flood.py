"""
flood: producers and consumers pushing numbered items through one queue as fast as they can.
Counts the consumers' misses (empty gets) and checks that every item arrived exactly once.
"""

from __future__ import annotations

import asyncio
from functools import partial
from time import perf_counter_ns

from kestrel.load.arguments import Tool, config_of, natural, positive
from kestrel.load.checks import Check, Deliveries, count_check
from kestrel.load.clients import flush_queues
from kestrel.load.items import NumberedItems
from kestrel.load.roles import produce, receive
from kestrel.load.runner import Worker, run_phase
from kestrel.load.stats import Result

TOOL = Tool("flood", monitor=True, needs_queues=False)
BLOCKING_MS = 1000


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--items", type=positive, default=10000, help="items to flood through (default: 10000)")
    parser.add_argument("-k", "--kilobytes", type=positive, default=1, help="KB per item (default: 1)")
    parser.add_argument("-q", "--queue", default="spam", help="queue name (default: spam)")
    parser.add_argument("-P", "--prefill", type=natural, default=0, help="items put before the flood starts (default: 0)")
    parser.add_argument("-R", "--producers", type=positive, default=1, help="producers (default: 1)")
    parser.add_argument("-C", "--consumers", type=positive, default=1, help="consumers (default: 1)")
    parser.add_argument(
        "-r", "--roll-up", type=positive, default=1,
        help="items per request: pipelined sets, and `monitor q 1 r` + `confirm q r` reads (default: 1)",
    )
    parser.add_argument("-B", "--blocking", action="store_true", help=f"blocking reads (t={BLOCKING_MS})")


def producer(worker: Worker, items: NumberedItems, numbers: range):
    return produce(worker, items.make, numbers, worker.options.queue, worker.options.roll_up)


async def consume(worker: Worker, items: NumberedItems, target: int) -> None:
    client = await worker.connect()
    latency = worker.latency("get")
    options = worker.options
    timeout = BLOCKING_MS if options.blocking else 0
    while not worker.done("received", target):
        began = perf_counter_ns()
        if options.roll_up > 1:
            got = await client.take_many(options.queue, options.roll_up, BLOCKING_MS)
        else:
            item = await client.take(options.queue, timeout)
            got = [] if item is None else [item]
        latency.record_ns(perf_counter_ns() - began)
        if not got:
            worker.add("misses")
        for item in got:
            receive(worker, items, item)
    await worker.finish(client)


def prefill_clients(worker: Worker, items: NumberedItems):
    options = worker.options
    return [producer(worker, items, range(options.items, options.items + options.prefill))]


def flood_clients(worker: Worker, items: NumberedItems):
    options = worker.options
    target = options.items + options.prefill
    producers = [producer(worker, items, range(index, options.items, options.producers)) for index in worker.mine(options.producers)]
    return producers + [consume(worker, items, target) for _ in worker.mine(options.consumers)]


def run(options, server, out, probe=None) -> Result:
    items = NumberedItems(options.kilobytes * 1024)
    if options.flush:
        asyncio.run(flush_queues(options.protocol, options.host, options.port, server, [options.queue]))
    phases, counts, errors = [], {}, []
    if options.prefill:
        prefill = run_phase(partial(prefill_clients, items=items), options, server, ["sent"], stall=options.stall, out=out)
        phases.append(prefill.phase("prefill", prefill.part.counts["sent"]))
        counts["prefilled"] = prefill.part.counts["sent"]
        errors += prefill.errors
    flood = run_phase(
        partial(flood_clients, items=items), options, server, ["sent", "received"], options.procs, options.stall, out, probe
    )
    phases.append(flood.phase("flood", flood.part.counts["received"]))
    counts.update(flood.part.counts)
    errors += flood.errors
    checks = [count_check("sent", "items stored", flood.part.counts["sent"] + counts.get("prefilled", 0), options.items + options.prefill)]
    if server.has_queues:
        deliveries = Deliveries(options.items + options.prefill)
        deliveries.add(flood.part.delivered)
        checks.append(deliveries.check())
    else:
        checks.append(Check.skipped("exactly once", f"{server.kind} has no queues: a get leaves the item in place"))
    return Result(TOOL.name, config_of(options), server.as_json(), phases, counts, checks, errors)
