"""
The `kestrel` command: one entry point for an operator, reading the server's config to find
its admin port and its spool.

    kestrel [-c CONFIG] [--admin HOST:PORT] COMMAND ...

    kestrel stats [QUEUE ...] [--json]     global and per-queue stats
    kestrel status [up|readonly|quiescent|writeavoid]
    kestrel reload | shutdown | quiesce | ping | server-info | metrics
    kestrel top [--interval 1]             a live view of the queues, the ones backing up first
    kestrel dump QUEUE|FILE ... [-d] [-q]  a queue's journal files from the spool, record by record
    kestrel load TOOL ...                  the load tools (pip install 'txkestrel[load]')

The config is -c, else $KESTREL_CONFIG, else etc/kestrel.conf in the working folder; it is
read for the admin port (unless --admin names it) and the spool (dump). Exit codes: 0 done;
1 the server refused (its reason on stderr), or a journal ends in a damaged record; 2 the
server cannot be reached, or bad usage, config or file. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.error
from typing import TextIO

from kestrel.config import ConfigError, ServerConfig, load_config
from kestrel.journal import files
from kestrel.tools.admin import AdminClient, error_message, run
from kestrel.tools.qdump import dump_files

DEFAULT_CONFIG = os.path.join("etc", "kestrel.conf")
ADMIN_COMMANDS = ("stats", "status", "reload", "shutdown", "quiesce", "ping", "server-info", "metrics")


class CommandError(Exception):
    """A one-line error; exit code 2."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kestrel", description=__doc__.split("\n\n")[0].strip(), epilog=__doc__.split("\n\n", 2)[2].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("-c", "--config", help=f"the server's config (default: $KESTREL_CONFIG, else {DEFAULT_CONFIG})")
    top.add_argument("--admin", metavar="HOST:PORT", help="the admin port, instead of the config's admin_listen")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stats = commands.add_parser("stats", help="global and per-queue stats", description="kestrel stats jobs --json")
    stats.add_argument("queue", nargs="*", help="only these queues")
    stats.add_argument("--json", action="store_true", help="JSON instead of `name value` lines")
    status = commands.add_parser("status", help="show the server status, or set it", description="kestrel status readonly")
    status.add_argument("name", nargs="?", help="up, readonly, quiescent or writeavoid")
    commands.add_parser("reload", help="re-read the config file (queue settings and aliases)")
    commands.add_parser("shutdown", help="shut the server down cleanly")
    commands.add_parser("quiesce", help="refuse reads and writes (status quiescent)")
    commands.add_parser("ping", help="check that the server answers")
    commands.add_parser("server-info", help="version, uptime, listeners, config path")
    commands.add_parser("metrics", help="the Prometheus metrics")
    live = commands.add_parser("top", help="a live view of the queues, the ones backing up first (Ctrl-C ends it)")
    live.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    dump = commands.add_parser(
        "dump", help="print a queue's journal files record by record",
        description="kestrel dump jobs    (every file of queue jobs in the spool, in replay order)\n"
                    "kestrel dump var/spool/kestrel/jobs.1700000000000    (one file)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument("names", nargs="+", metavar="QUEUE|FILE")
    dump.add_argument("-d", "--data", action="store_true", help="print each item's data under its record")
    dump.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    dump.add_argument("--no-offsets", dest="offsets", action="store_false", help="leave out the byte offsets")
    load = commands.add_parser("load", help="the load tools (kestrel load --help)", add_help=False)
    load.add_argument("arguments", nargs=argparse.REMAINDER)
    return top


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    options = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if options.command == "load":
            return load(options.arguments)
        if options.command == "top":
            return top(options)
        if options.command == "dump":
            return dump_files(journal_paths(options), out, data=options.data, offsets=options.offsets, quiet=options.quiet)
        return admin(options, out)
    except CommandError as error:
        print(f"kestrel: {error}", file=sys.stderr)
        return 2


def load(arguments: list[str]) -> int:
    """The load tools, whose dependencies are an extra that a server needs not install."""
    try:
        from kestrel.load import cli
    except ModuleNotFoundError as missing:
        raise CommandError(
            f"load: {missing.name.partition('.')[0]} is not installed; the load tools need pip install 'txkestrel[load]'"
        ) from None
    return cli.main(arguments)


def top(options: argparse.Namespace) -> int:
    from kestrel.tools import top as live_view

    host, port = admin_address(options)
    try:
        live_view.run(AdminClient(host, port), options.interval)
    except KeyboardInterrupt:
        return 0
    except (urllib.error.URLError, OSError) as error:
        raise unreachable(host, port, error) from None
    return 0


def unreachable(host: str, port: int, error: Exception) -> CommandError:
    return CommandError(f"cannot reach the admin port {host}:{port}: {getattr(error, 'reason', error)}")


def admin(options: argparse.Namespace, out: TextIO) -> int:
    host, port = admin_address(options)
    try:
        body = run(AdminClient(host, port), options)
    except urllib.error.HTTPError as error:
        print(f"kestrel: {error.code}: {error_message(error)}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        raise unreachable(host, port, error) from None
    out.write(body if body.endswith("\n") else body + "\n")
    return 0


def config(options: argparse.Namespace) -> ServerConfig:
    path = options.config or os.environ.get("KESTREL_CONFIG") or DEFAULT_CONFIG
    try:
        return load_config(path)
    except ConfigError as error:
        hint = "" if options.config or os.environ.get("KESTREL_CONFIG") else " (give -c CONFIG or set KESTREL_CONFIG)"
        raise CommandError(f"{error}{hint}") from None


def admin_address(options: argparse.Namespace) -> tuple[str, int]:
    if options.admin:
        host, _, port = options.admin.rpartition(":")
        if not port.isdigit():
            raise CommandError(f"--admin {options.admin}: expected HOST:PORT")
        return host or "127.0.0.1", int(port)
    listen = config(options).admin_listen
    return tcp_address(listen)


def tcp_address(endpoint: str) -> tuple[str, int]:
    """Where to reach a listener of a strports endpoint: its interface (loopback for a wildcard) and port."""
    kind, *parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", endpoint)]
    if kind not in ("tcp", "tcp6") or not parts or not parts[0].isdigit():
        raise CommandError(f"admin_listen {endpoint!r}: kestrel reaches a tcp admin port only (or give --admin HOST:PORT)")
    interface = next((part.split("=", 1)[1] for part in parts[1:] if part.startswith("interface=")), "")
    if interface in ("", "0.0.0.0", "::"):
        interface = "127.0.0.1" if kind == "tcp" else "::1"
    return interface, int(parts[0])


def journal_paths(options: argparse.Namespace) -> list[str]:
    """Each name is a file, or a queue whose files in the config's spool go in replay order."""
    paths: list[str] = []
    spool = None
    for name in options.names:
        if os.path.isfile(name):
            paths.append(name)
            continue
        if spool is None:
            spool = config(options).queue_path
        found = [os.path.join(spool, filename) for filename in files.replay_order(name, os.listdir(spool))]
        existing = [path for path in found if os.path.exists(path)]
        if not existing:
            raise CommandError(f"{name}: no such file, and no journal of a queue {name!r} in {spool}")
        paths.extend(existing)
    return paths


if __name__ == "__main__":
    sys.exit(main())
