"""
`kestrel load`: load tools for any server that speaks Kestrel's protocols (memcached too, for
put-many and flood). Exit code 0 when every check holds, 1 when a run lost, duplicated or
misordered items or failed, 2 when it could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from kestrel.load import flood, leaky_reader, many_clients, packing, put_many, queue_creation, replay
from kestrel.load.arguments import add_common, config_of, finish_options
from kestrel.load.clients import QueueStatsProbe, probe

TOOLS = {tool.TOOL.name: tool for tool in (put_many, flood, many_clients, packing, leaky_reader)}
EXTRAS = {"replay": replay.main, "queue-creation": queue_creation.main}
PROBE_SECONDS = 5.0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kestrel load", description=__doc__.strip())
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, tool in TOOLS.items():
        description = tool.__doc__.strip()
        summary = description.split(": ", 1)[1].split(".")[0].replace("\n", " ")
        command = commands.add_parser(name, help=summary, description=description, add_help=False)
        tool.add_arguments(command)
        add_common(command, tool.TOOL)
        command.set_defaults(tool=tool)
    for name, extra in (("replay", replay), ("queue-creation", queue_creation)):
        commands.add_parser(name, help=extra.__doc__.strip().splitlines()[0] + f" (own options: {name} --help)")
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in EXTRAS:
        return EXTRAS[argv[0]](argv[1:])
    top = parser()
    options = top.parse_args(argv)
    tool = options.tool
    finish_options(top, options)
    out = sys.stderr if options.json else sys.stdout
    try:
        server = asyncio.run(
            asyncio.wait_for(probe(options.protocol, options.host, options.port, options.server_kind), PROBE_SECONDS)
        )
    except Exception as error:  # refused, closed, or not speaking the protocol: all mean no run
        where = f"{options.protocol} server at {options.host}:{options.port}"
        reason = str(error) or f"no answer in {PROBE_SECONDS:g} s"
        print(f"{tool.TOOL.name}: cannot reach {where}: {type(error).__name__}: {reason}", file=sys.stderr)
        return 2
    if tool.TOOL.needs_queues and not server.has_queues:
        print(f"{tool.TOOL.name}: needs a Kestrel server (queue semantics); {server.kind} {server.version} answered", file=sys.stderr)
        return 2
    settings = " ".join(f"{name}={value}" for name, value in config_of(options).items())
    print(f"{tool.TOOL.name}: {server.kind} {server.version} at {options.host}:{options.port}; {settings}", file=out, flush=True)
    if not server.has_queues:
        print(f"{tool.TOOL.name}: {server.kind} has no queues: throughput and latency only, delivery checks skipped", file=out)
    if not options.monitor:
        result = tool.run(options, server, out)
    else:
        stats_probe = QueueStatsProbe(options.host, options.port, [options.queue])
        try:
            result = tool.run(options, server, out, stats_probe)
        finally:
            stats_probe.close()
    if options.json:
        print(json.dumps(result.as_json()))
    else:
        for line in result.lines():
            print(line)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
