"""
The report of a txkestrel-beside-Darner run (`kestrel.load.versus_darner`): every run's
figures, the medians of each cell per server, each variant's ratio to Darner, and the
markdown tables of doc/benchmarks.md and issue 11. Plain data in, plain data out.

A run is `{"server", "repeat", "cell", "figures"}`: the cell says what was measured (bench
"db", "sets" or "gets", and its parameters) and the figures what came out (requests or items
per second, and for db its p50 and p99 in microseconds and the server's CPU time per
request, when the run measured it).
"""

from __future__ import annotations

from statistics import median

PEER = "darner"


def build_report(runs: list[dict], variants: list[str], machine: dict) -> dict:
    servers = [PEER, *variants]
    cells: list[dict] = []
    for cell in distinct(run["cell"] for run in runs):
        medians = {server: medians_of([run["figures"] for run in runs if run["cell"] == cell and run["server"] == server]) for server in servers}
        ratios = {variant: {name: ratio(value, medians[PEER][name]) for name, value in medians[variant].items()} for variant in variants}
        cells.append({"cell": cell, "medians": medians, "ratios": ratios})
    return {"peer": PEER, "servers": servers, "machine": machine, "cells": cells, "runs": runs}


def medians_of(figures: list[dict]) -> dict:
    return {name: median(run[name] for run in figures) for name in figures[0]}


def distinct(values) -> list:
    """Each value once, in the order of first appearance (cells are dicts: not hashable)."""
    seen: list = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def ratio(value: float, peer_value: float) -> float | None:
    return round(value / peer_value, 3) if peer_value else None


def markdown_tables(report: dict) -> str:
    variants = report["servers"][1:]
    db = [cell for cell in report["cells"] if cell["cell"]["bench"] == "db"]
    pipelined = [cell for cell in report["cells"] if cell["cell"]["bench"] != "db"]
    return "\n\n".join(table for table in (db_table(db, variants), pipelined_table(pipelined, variants)) if table)


def db_table(cells: list[dict], variants: list[str]) -> str:
    if not cells:
        return ""
    servers = " / ".join(["Darner", *variants])
    with_cpu = all("cpu_us_per_request" in figures for cell in cells for figures in cell["medians"].values())
    header = ["clients", "Darner", *(column for variant in variants for column in (variant, "ratio")), f"p99 {servers}"]
    header += [f"server CPU per request {servers}"] if with_cpu else []
    rows = []
    for cell in cells:
        medians, ratios = cell["medians"], cell["ratios"]
        rates = [f"{thousands(medians[variant]['requests_per_second'])} req/s" for variant in [PEER, *variants]]
        p99s = " / ".join(thousands(medians[server]["p99_us"]) for server in [PEER, *variants])
        paired = [column for variant, rate in zip(variants, rates[1:]) for column in (rate, fixed(ratios[variant]["requests_per_second"]))]
        row = [str(cell["cell"]["clients"]), rates[0], *paired, f"{p99s} us"]
        if with_cpu:
            row.append(" / ".join(f"{medians[server]['cpu_us_per_request']:.1f}" for server in [PEER, *variants]) + " us")
        rows.append(row)
    return markdown(header, rows)


def pipelined_table(cells: list[dict], variants: list[str]) -> str:
    if not cells:
        return ""
    per_writes = sorted({cell["cell"]["per_write"] for cell in cells})
    legend = " / ".join(["Darner", *(f"{variant} (ratio)" for variant in variants)])
    header = [f"items/s: {legend}", *(f"{thousands(per_write)} per write" for per_write in per_writes)]
    rows = []
    for bench, item_size in distinct(map(bench_and_size, cells)):
        by_per_write = {cell["cell"]["per_write"]: cell for cell in cells if bench_and_size(cell) == (bench, item_size)}
        label = f"{size(item_size)} {'sets' if bench == 'sets' else 'gets (draining)'}"
        rows.append([label, *(pipelined_figures(by_per_write[n], variants) if n in by_per_write else "" for n in per_writes)])
    return markdown(header, rows)


def bench_and_size(cell: dict) -> tuple[str, int]:
    return cell["cell"]["bench"], cell["cell"]["item_size"]


def pipelined_figures(cell: dict, variants: list[str]) -> str:
    medians, ratios = cell["medians"], cell["ratios"]
    shown = [thousands(medians[PEER]["items_per_second"])]
    shown += [f"{thousands(medians[variant]['items_per_second'])} ({fixed(ratios[variant]['items_per_second'])})" for variant in variants]
    return " / ".join(shown)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines)


def thousands(value: float) -> str:
    return f"{value:,.0f}"


def fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def size(item_size: int) -> str:
    return f"{item_size // 1024} KB" if item_size >= 1024 and item_size % 1024 == 0 else f"{item_size} B"
