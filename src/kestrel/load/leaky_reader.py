"""
leaky-reader: one producer puts numbered items over Thrift while consumers take them with
reliable reads that the server aborts after --auto-abort ms, and leave a fraction -d of them
unconfirmed. Checks that every item is eventually confirmed exactly once.
"""

from __future__ import annotations

import asyncio
import random
from functools import partial
from time import perf_counter_ns

from kestrel.load.arguments import Tool, config_of, fraction, positive
from kestrel.load.checks import Deliveries, count_check
from kestrel.load.clients import flush_queues
from kestrel.load.items import NumberedItems
from kestrel.load.roles import produce
from kestrel.load.runner import Worker, run_phase
from kestrel.load.stats import Result

TOOL = Tool("leaky-reader", protocols=("thrift",))
GET_TIMEOUT_MS = 100


def add_arguments(parser) -> None:
    parser.add_argument("-n", "--items", type=positive, default=1000, help="items to put (default: 1000)")
    parser.add_argument("-d", "--drop", type=fraction, default=0.01, help="fraction of reads left unconfirmed (default: 0.01)")
    parser.add_argument("-q", "--queue", default="spam-thrift", help="queue name (default: spam-thrift)")
    parser.add_argument("-t", "--consumers", type=positive, default=1, help="consumers (default: 1)")
    parser.add_argument(
        "--auto-abort", type=positive, default=5000, help="ms after which the server aborts an unconfirmed read (default: 5000)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every open and confirm")


async def consume(worker: Worker, items: NumberedItems) -> None:
    client = await worker.connect()
    get_latency, confirm_latency = worker.latency("get"), worker.latency("confirm")
    options = worker.options
    while not worker.done("confirmed", options.items):
        began = perf_counter_ns()
        opened = await client.open(options.queue, 1, GET_TIMEOUT_MS, options.auto_abort)
        get_latency.record_ns(perf_counter_ns() - began)
        if not opened:
            worker.add("misses")
            continue
        (transaction, item), = opened
        number = items.number(item)
        if options.verbose:
            print(f"open {transaction:016x} = {-1 if number is None else number:08x}", flush=True)
        if number is not None and random.random() < options.drop:
            worker.add("dropped")
            continue
        began = perf_counter_ns()
        confirmed = await client.confirm(options.queue, {transaction})
        confirm_latency.record_ns(perf_counter_ns() - began)
        if options.verbose:
            print(f"confirm {transaction:016x}: {confirmed}", flush=True)
        if confirmed != 1:
            worker.add("late_confirms")  # aborted first: the item comes round again
        elif number is None:
            worker.add("strangers")
        else:
            worker.deliver("confirmed", number)
    await worker.finish(client)


def clients(worker: Worker, items: NumberedItems):
    options = worker.options
    producer = [produce(worker, items.make, range(options.items), options.queue)] if worker.index == 0 else []
    return producer + [consume(worker, items) for _ in worker.mine(options.consumers)]


def run(options, server, out) -> Result:
    items = NumberedItems(0)
    if options.flush:
        asyncio.run(flush_queues(options.protocol, options.host, options.port, server, [options.queue]))
    # Dropped items come back only after the auto-abort: that wait is not a stall.
    stall = max(options.stall, 2 * options.auto_abort / 1000 + 1)
    outcome = run_phase(partial(clients, items=items), options, server, ["sent", "confirmed"], options.procs, stall, out)
    counts = outcome.part.counts
    deliveries = Deliveries(options.items)
    deliveries.add(outcome.part.delivered)
    checks = [count_check("sent", "items stored", counts["sent"], options.items), deliveries.check("all confirmed once")]
    phases = [outcome.phase("leaky-reader", counts["confirmed"])]
    return Result(TOOL.name, config_of(options), server.as_json(), phases, dict(counts), checks, outcome.errors)
