"""
`kestrel top`: a live view of a running server, refreshed every second from its admin port.
One row per queue -- items and bytes, adds and removes a second over the last interval, open
reads, the age of the oldest item waiting, how much of the queue is in memory and how much
on disk (read-behind), the journal's size -- with the queues that back up first: those that
grow fastest, then the deepest. Above them, the server's status, connections and request
rates.

Each sample reads the TOP_QUEUES deepest queues (`/stats.json?top=N`), however many the server
has. A frame is computed from two samples (plain data, `frame`) and drawn with
rich (`render`); the command only polls and redraws.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kestrel.stats_listing import QUEUES_OMITTED
from kestrel.tools.admin import AdminClient

# The deepest queues each sample reads: more than a terminal shows, few enough that a server
# with a million queues answers at once. Queues beyond them are counted, not shown.
TOP_QUEUES = 200


@dataclass(frozen=True)
class Sample:
    """One `/stats.json` and `/status` reading, at `seconds` (monotonic)."""

    seconds: float
    status: str
    stats: dict


@dataclass(frozen=True)
class QueueRow:
    name: str
    items: int
    bytes: int
    adds_per_second: float
    removes_per_second: float
    open_reads: int
    oldest_ms: int
    memory_items: int
    journal_bytes: int
    retained_bytes: int = 0  # history kept by `retain` (doc/history.md)

    @property
    def growth(self) -> float:
        return self.adds_per_second - self.removes_per_second

    @property
    def disk_items(self) -> int:
        return self.items - self.memory_items


@dataclass(frozen=True)
class Frame:
    status: str
    connections: int
    gets_per_second: float
    sets_per_second: float
    items: int
    queue_count: int
    queues: list[QueueRow]


def frame(previous: Sample, current: Sample) -> Frame:
    """
    What happened between two samples; a queue new since `previous` counts from zero. When
    `previous` listed only the deepest queues, one missing from it may have existed all along,
    so it shows no rate until the next sample.
    """
    interval = max(current.seconds - previous.seconds, 1e-9)
    before, now = previous.stats, current.stats
    new_queue = None if before.get(QUEUES_OMITTED) else {"total_items": 0, "items": 0}
    rows = []
    for name, stats in now["queues"].items():
        earlier = before["queues"].get(name, new_queue or stats)
        added = stats["total_items"] - earlier["total_items"]
        removed = added - (stats["items"] - earlier["items"])
        rows.append(QueueRow(
            name=name, items=stats["items"], bytes=stats["bytes"],
            adds_per_second=added / interval, removes_per_second=max(removed, 0) / interval,
            open_reads=stats["open_transactions"], oldest_ms=stats.get("head_age", 0),
            memory_items=stats["mem_items"], journal_bytes=stats["logsize"],
            retained_bytes=stats.get("retained_bytes", 0),
        ))
    rows.sort(key=lambda row: (-row.growth, -row.items, row.name))
    server, earlier_server = now["server"], before["server"]
    return Frame(
        status=current.status,
        connections=server["curr_connections"],
        gets_per_second=(server["cmd_get"] - earlier_server["cmd_get"]) / interval,
        sets_per_second=(server["cmd_set"] - earlier_server["cmd_set"]) / interval,
        items=server["curr_items"],
        queue_count=now.get("queue_count", len(rows)),
        queues=rows,
    )


def render(view: Frame, rows: int | None = None) -> Group:
    """The frame as rich draws it; `rows` limits the queues shown (the terminal's height)."""
    header = Text.assemble(
        ("status ", "dim"), (view.status, "bold"),
        ("   connections ", "dim"), f"{view.connections:,}",
        ("   gets/s ", "dim"), f"{view.gets_per_second:,.0f}",
        ("   sets/s ", "dim"), f"{view.sets_per_second:,.0f}",
        ("   items ", "dim"), f"{view.items:,}",
        ("   queues ", "dim"), f"{view.queue_count:,}",
    )
    table = Table(expand=True, box=None, header_style="bold")
    for column, justify in (
        ("queue", "left"), ("items", "right"), ("bytes", "right"), ("in/s", "right"), ("out/s", "right"),
        ("open", "right"), ("oldest", "right"), ("memory", "right"), ("disk", "right"), ("journal", "right"),
        ("retained", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)
    shown = view.queues if rows is None else view.queues[:rows]
    for row in shown:
        style = "red" if row.growth > 0 else None
        table.add_row(
            row.name, f"{row.items:,}", size(row.bytes), f"{row.adds_per_second:,.0f}", f"{row.removes_per_second:,.0f}",
            f"{row.open_reads:,}", duration(row.oldest_ms), f"{row.memory_items:,}", f"{row.disk_items:,}", size(row.journal_bytes),
            size(row.retained_bytes), style=style,
        )
    parts = [header, table]
    if len(shown) < view.queue_count:
        parts.append(Text(f"... and {view.queue_count - len(shown):,} more queues", style="dim"))
    return Group(*parts)


def size(value: float) -> str:
    units = ("B", "KB", "MB", "GB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:,.0f} B" if unit == 0 else f"{value:,.1f} {units[unit]}"


def duration(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    if ms < 7_200_000:
        return f"{ms / 60_000:.0f} min"
    return f"{ms / 3_600_000:.1f} h"


def sample(client: AdminClient) -> Sample:
    stats = json.loads(client.get("/stats.json", top=TOP_QUEUES))
    status = json.loads(client.get("/status"))["status"]
    return Sample(time.monotonic(), status, stats)


def run(client: AdminClient, interval: float = 1.0) -> None:
    """Redraw every `interval` seconds until interrupted (Ctrl-C)."""
    previous = sample(client)
    with Live(render(frame(previous, previous)), auto_refresh=False, screen=True) as live:
        while True:
            time.sleep(interval)
            current = sample(client)
            live.update(render(frame(previous, current), rows=max(live.console.height - 4, 1)), refresh=True)
            previous = current
