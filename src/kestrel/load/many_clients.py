"""
many-clients: one producer trickles numbered items into a queue while many consumers compete
for them with blocking reads. With -k, consumers randomly drop their connection right after
sending a reliable read: the item that read opened must be delivered again. Checks that every
item was delivered exactly once.
"""

from __future__ import annotations

import asyncio
import random
from functools import partial
from time import perf_counter_ns

from kestrel.load.arguments import Tool, config_of, natural, percentage, positive
from kestrel.load.checks import Deliveries, count_check
from kestrel.load.clients import flush_queues
from kestrel.load.items import LYRIC, NumberedItems
from kestrel.load.roles import produce, receive
from kestrel.load.runner import Worker, run_phase
from kestrel.load.stats import Result

TOOL = Tool("many-clients", protocols=("memcache", "text"), monitor=True)
TIMEOUT_MS = 1000
ITEM_BYTES = NumberedItems.HEADER + len(LYRIC)  # the whole lyric, as Kestrel's tool sends


def add_arguments(parser) -> None:
    parser.add_argument("-s", "--sleep", type=natural, default=100, help="ms between puts (default: 100)")
    parser.add_argument("-n", "--items", type=positive, default=100, help="items to put (default: 100)")
    parser.add_argument("-c", "--consumers", type=positive, default=100, help="consumers (default: 100)")
    parser.add_argument("-q", "--queue", default="spam", help="queue name (default: spam)")
    parser.add_argument(
        "-k", "--kill", type=percentage, default=0.0,
        help="percentage of reads after which the consumer drops its connection unread (default: 0; implies -x)",
    )
    parser.add_argument(
        "-x", "--reliable", action="store_true", help=f"reliable reads: get q/t={TIMEOUT_MS}/close/open"
    )


async def consume(worker: Worker, items: NumberedItems) -> None:
    client = await worker.connect()
    latency = worker.latency("get")
    options = worker.options
    reliable = options.reliable or options.kill > 0
    take = client.reliable_take if reliable else client.take
    while not worker.done("received", options.items):
        if random.random() * 100 < options.kill:
            client.abandon_reliable_take(options.queue, TIMEOUT_MS)
            worker.forget(client)
            worker.add("kills")
            client = await worker.connect()
            take = client.reliable_take
            continue
        began = perf_counter_ns()
        item = await take(options.queue, TIMEOUT_MS)
        latency.record_ns(perf_counter_ns() - began)
        if item is None:
            worker.add("misses")
            continue
        receive(worker, items, item)
    if reliable:
        await client.confirm_open(options.queue)
    await worker.finish(client)


def clients(worker: Worker, items: NumberedItems):
    options = worker.options
    pause = options.sleep / 1000
    producer = [produce(worker, items.make, range(options.items), options.queue, pause=pause)] if worker.index == 0 else []
    return producer + [consume(worker, items) for _ in worker.mine(options.consumers)]


def run(options, server, out, probe=None) -> Result:
    items = NumberedItems(ITEM_BYTES)
    if options.flush:
        asyncio.run(flush_queues(options.protocol, options.host, options.port, server, [options.queue]))
    # Puts are spaced -s apart: the run is stalled only when nothing moves for longer than that.
    stall = max(options.stall, 3 * options.sleep / 1000)
    outcome = run_phase(partial(clients, items=items), options, server, ["sent", "received"], options.procs, stall, out, probe)
    counts = outcome.part.counts
    deliveries = Deliveries(options.items)
    deliveries.add(outcome.part.delivered)
    checks = [count_check("sent", "items stored", counts["sent"], options.items), deliveries.check()]
    phases = [outcome.phase("many-clients", counts["received"])]
    return Result(TOOL.name, config_of(options), server.as_json(), phases, dict(counts), checks, outcome.errors)
