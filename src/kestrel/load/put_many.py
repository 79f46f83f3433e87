"""
put-many: how fast the server absorbs SETs from many concurrent clients, spread over one or
more queues; with -g, a second phase reads everything back and checks the counts.
"""

from __future__ import annotations

import asyncio
from functools import partial
from time import perf_counter_ns

from kestrel.load.arguments import Tool, config_of, positive
from kestrel.load.checks import Check, count_check
from kestrel.load.clients import flush_queues
from kestrel.load.items import filler
from kestrel.load.roles import produce
from kestrel.load.runner import Worker, run_phase
from kestrel.load.stats import Result

TOOL = Tool("put-many", needs_queues=False)


def add_arguments(parser) -> None:
    parser.add_argument("-c", "--clients", type=positive, default=100, help="concurrent clients (default: 100)")
    parser.add_argument("-n", "--items", type=positive, default=10000, help="items to put in all (default: 10000)")
    parser.add_argument("-b", "--bytes", type=positive, default=1024, help="bytes per item (default: 1024)")
    parser.add_argument("-r", "--roll-up", type=positive, default=1, help="sets sent per write, pipelined (default: 1)")
    parser.add_argument("-q", "--queue", default="spam", help="queue name, or prefix with -Q (default: spam)")
    parser.add_argument("-Q", "--queues", type=positive, default=1, help="queues to spread the items over (default: 1)")
    parser.add_argument("-g", "--get", action="store_true", help="then get every item back and check the counts")


def queue_names(options) -> list[str]:
    if options.queues == 1:
        return [options.queue]
    return [f"{options.queue}{index}" for index in range(options.queues)]


def share(total: int, parts: int, index: int) -> int:
    """How many of `total` items the `index`th of `parts` clients handles."""
    return total // parts + (1 if index < total % parts else 0)


def clients(worker: Worker, client):
    options = worker.options
    names = queue_names(options)
    payload = filler(options.bytes)
    return [
        client(worker, names[index % len(names)], share(options.items, options.clients, index), payload)
        for index in worker.mine(options.clients)
    ]


async def put_client(worker: Worker, queue: str, count: int, payload: bytes) -> None:
    await produce(worker, lambda _: payload, range(count), queue, worker.options.roll_up, stored_as="stored")


async def get_client(worker: Worker, queue: str, count: int, payload: bytes) -> None:
    """Read `queue` until it is empty; memcached never empties, so there make as many gets as sets."""
    client = await worker.connect()
    latency = worker.latency("get")
    queues = worker.server.has_queues
    while queues or count > 0:
        count -= 1
        began = perf_counter_ns()
        item = await client.take(queue)
        latency.record_ns(perf_counter_ns() - began)
        if item is None:
            if queues:
                break
            worker.add("misses")
        else:
            worker.add("read")
            worker.add("corrupt", item != payload)
    await worker.finish(client)


def run(options, server, out) -> Result:
    if options.flush:
        asyncio.run(flush_queues(options.protocol, options.host, options.port, server, queue_names(options)))
    phase = partial(run_phase, options=options, server=server, procs=options.procs, stall=options.stall, out=out)
    put = phase(partial(clients, client=put_client), fields=["stored"])
    stored = put.part.counts["stored"]
    phases, counts, errors = [put.phase("put", stored)], dict(put.part.counts), put.errors
    checks = [count_check("stored", "sets stored", stored, options.items)]
    if options.get:
        get = phase(partial(clients, client=get_client), fields=["read"])
        read = get.part.counts["read"]
        phases.append(get.phase("get", read))
        counts.update(get.part.counts)
        errors += get.errors
        if not server.has_queues:
            checks.append(Check.skipped("read back", f"{server.kind} has no queues: a get leaves the item in place"))
        elif not options.flush:
            checks.append(Check.skipped("read back", "the queues were not flushed first (--flush)"))
        else:
            checks.append(count_check("read back", "stored items read back", read, stored))
            checks.append(count_check("intact", "items read back intact", read - get.part.counts["corrupt"], read))
    return Result(TOOL.name, config_of(options), server.as_json(), phases, counts, checks, errors)
