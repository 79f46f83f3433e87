"""
Argument types and the options that the load tools share. Option letters follow Kestrel's
tools, so `-h` is the host and help is `--help`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from kestrel.load.clients import DEFAULT_PORTS, KESTREL, MEMCACHED


def checked(name: str, convert, holds, problem: str):
    """An argparse type: `convert` the text, then refuse a value for which `holds` is false."""

    def parse(text: str):
        value = convert(text)
        if not holds(value):
            raise argparse.ArgumentTypeError(f"{text} {problem}")
        return value

    parse.__name__ = name  # argparse names the type in its "invalid ... value" message
    return parse


positive = checked("positive", int, lambda value: value >= 1, "is not a positive number")
natural = checked("natural", int, lambda value: value >= 0, "is negative")
seconds = checked("seconds", float, lambda value: value >= 0, "is negative")
fraction = checked("fraction", float, lambda value: 0 <= value < 1, "is not in [0, 1)")
percentage = checked("percentage", float, lambda value: 0 <= value <= 100, "is not a percentage")


@dataclass(frozen=True)
class Tool:
    """How the command line offers a tool."""

    name: str
    protocols: tuple[str, ...] = tuple(DEFAULT_PORTS)
    procs: bool = True  # its clients can be spread over processes
    monitor: bool = False  # it offers -M
    needs_queues: bool = True  # it needs Kestrel, not memcached


def add_common(parser: argparse.ArgumentParser, tool: Tool) -> None:
    protocols = tool.protocols
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", "--host", default="127.0.0.1", help="server address (default: 127.0.0.1)")
    ports = ", ".join(f"{protocol} {DEFAULT_PORTS[protocol]}" for protocol in protocols)
    parser.add_argument("-p", "--port", type=positive, help=f"server port (default: by protocol, {ports})")
    if len(protocols) > 1:
        parser.add_argument("--protocol", choices=protocols, default=protocols[0], help=f"default: {protocols[0]}")
        if "thrift" in protocols:
            parser.add_argument("--thrift", dest="protocol", action="store_const", const="thrift", help="--protocol thrift")
    else:
        parser.set_defaults(protocol=protocols[0])
    parser.add_argument(
        "--server-kind",
        choices=("auto", KESTREL, MEMCACHED),
        default="auto",
        help="what the server is; auto asks it (default: auto)",
    )
    if tool.procs:
        parser.add_argument("--procs", type=positive, default=1, help="client processes to spread the clients over (default: 1)")
    else:
        parser.set_defaults(procs=1)
    if tool.monitor:
        parser.add_argument("-M", "--monitor", action="store_true", help="print the queue's stats once a second (memcache only)")
    else:
        parser.set_defaults(monitor=False)
    parser.add_argument(
        "--flush", action="store_true",
        help="flush the queue(s) first, destroying their items (the read-back checks need it)",
    )
    parser.add_argument(
        "--stall", type=seconds, default=10.0, help="give up after this many seconds without progress (default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON result (progress goes to stderr)")


def finish_options(parser: argparse.ArgumentParser, options: argparse.Namespace) -> argparse.Namespace:
    if options.port is None:
        options.port = DEFAULT_PORTS[options.protocol]
    if options.monitor and options.protocol != "memcache":
        parser.error("-M reads the memcache `stats`: use it with --protocol memcache")
    return options


def config_of(options: argparse.Namespace) -> dict:
    """The options that describe a run, as printed and put in the JSON result."""
    return {name: value for name, value in vars(options).items() if name not in ("json", "tool", "command")}
