"""The producer that the tools share, and how their consumers count what they receive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter_ns

from kestrel.load.items import NumberedItems
from kestrel.load.runner import Worker


async def produce(
    worker: Worker,
    make: Callable[[int], bytes],
    numbers: range,
    queue: str,
    roll_up: int = 1,
    pause: float = 0.0,
    stored_as: str = "sent",
) -> None:
    """Put the items `make(number)` for `numbers`, `roll_up` to a request, `pause` seconds apart."""
    client = await worker.connect()
    latency = worker.latency("put")
    for start in range(0, len(numbers), roll_up):
        batch = [make(number) for number in numbers[start : start + roll_up]]
        began = perf_counter_ns()
        stored = await client.put(queue, batch)
        latency.record_ns(perf_counter_ns() - began)
        worker.add(stored_as, stored)
        worker.add("refused", len(batch) - stored)
        if pause:
            await asyncio.sleep(pause)
    await worker.finish(client)


def receive(worker: Worker, items: NumberedItems, item: bytes) -> None:
    number = items.number(item)
    if number is None:
        worker.add("strangers")
    else:
        worker.deliver("received", number)
