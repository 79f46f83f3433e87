"""
The `kestrel` command: one entry point for an operator, reading the server's config to find
its admin port and its spool.

    kestrel [-c CONFIG] [--admin HOST:PORT] COMMAND ...

    kestrel stats [QUEUE|PREFIX* ...] [--top N] [--json]   global and per-queue stats
    kestrel status [up|readonly|quiescent|writeavoid]
    kestrel reload | shutdown | quiesce | ping | server-info | metrics
    kestrel top [--interval 1]             a live view of the queues, the ones backing up first
    kestrel dump QUEUE|FILE ... [-d] [-q]  a queue's journal files from the spool, record by record
    kestrel load TOOL ...                  the load tools (pip install 'txkestrel[load]')
    kestrel put QUEUE [ITEM ...]           add items (one a line of stdin when none is given)
    kestrel get QUEUE [-n N] [--timeout 5s] [--reserve]
    kestrel peek QUEUE | tail QUEUE        the head item; every item as it comes (Ctrl-C ends it)
    kestrel fleet                          each server's status and queue depths
    kestrel history QUEUE --since T [--until T] [--all] [--json]   what a retained queue got
    kestrel rewind QUEUE --since T [--until T]    put what it got back into it (doc/history.md)

The config is -c, else $KESTREL_CONFIG, else etc/kestrel.conf in the working folder; it is
read for the admin port (unless --admin names it), the spool (dump), the memcache port
(the queue commands, unless --servers names servers) and the SQS listener (history, unless
--sqs names it). A time T is epoch milliseconds, RFC 3339 (2026-12-02T22:30:00Z) or a
duration ago (90s, 10m, 2h, 3d). Exit codes: 0 done; 1 the server
refused (its reason on stderr), or a journal ends in a damaged record; 2 the server cannot be
reached, or bad usage, config or file; 3 get or peek found no item; 4 a put's connection
dropped before its reply, so the item may or may not be stored. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import sys
import threading
import time
import urllib.error
from itertools import islice
from typing import BinaryIO, TextIO

from kestrel.config import ConfigError, ServerConfig, load_config, parse_duration
from kestrel.journal import files
from kestrel.timestamps import parse_timestamp
from kestrel.tools.admin import AdminClient, error_message, run
from kestrel.tools.history import Credentials, HistoryClient, HistoryRefused, item_json, item_line
from kestrel.tools.qdump import dump_files

DEFAULT_CONFIG = os.path.join("etc", "kestrel.conf")
ADMIN_COMMANDS = ("stats", "status", "reload", "shutdown", "quiesce", "ping", "server-info", "metrics", "rewind")
QUEUE_COMMANDS = ("put", "get", "peek", "tail", "fleet")
NO_ITEM = 3
OUTCOME_UNKNOWN = 4
# `kestrel put` sends stdin's lines in batches this long, pipelined (Client.put_many).
PUT_BATCH = 1000
# How long `tail` waits for an item on each try: Ctrl-C takes effect within it.
TAIL_WAIT = 1.0
DURATION = re.compile(r"(\d+(?:\.\d*)?)(ms|s|m)?")


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
    stats.add_argument("queue", nargs="*", metavar="QUEUE|PREFIX*",
                       help="only these queues; 'jobs*' for the queues whose names start with jobs")
    stats.add_argument("--top", type=int, metavar="N", help="the N queues with the most items")
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
    queue_commands(commands)
    history_commands(commands)
    return top


def history_commands(commands) -> None:
    """history (the SQS listener's /history route) and rewind (the admin port's POST /rewind)."""
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument("queue")
    window.add_argument("--since", type=instant, required=True, metavar="T",
                        help="from this time on: epoch ms, RFC 3339, or a duration ago (10m, 3d)")
    window.add_argument("--until", type=instant, metavar="T", help="up to (not including) this time (default: now)")
    reads = commands.add_parser(
        "history", parents=[window], help="the items a retained queue got in a window, consumed or not",
        description="kestrel history jobs --since 1h\nkestrel history jobs --since 2026-12-02T22:00:00Z --all --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reads.add_argument("--limit", type=int, metavar="N", help="items a page, 1 to 1000 (default 100)")
    reads.add_argument("--cursor", metavar="C", help="go on from where a page ended (the cursor it printed)")
    reads.add_argument("--all", action="store_true", help="every page, following the cursors, instead of the first")
    reads.add_argument("--json", action="store_true", help="the items as the server sends them, one JSON object a line")
    reads.add_argument("--sqs", metavar="HOST:PORT", help="the SQS listener, instead of the config's sqs_listen")
    reads.add_argument("--access-key", help="sign as this app (default: $AWS_ACCESS_KEY_ID)")
    reads.add_argument("--secret", help="its secret (default: $AWS_SECRET_ACCESS_KEY)")
    commands.add_parser(
        "rewind", parents=[window], help="put the items a retained queue got in a window back into it, as new items",
        description="kestrel rewind jobs --since 2026-12-02T22:00:00Z --until 2026-12-02T22:05:00Z",
    )


def instant(text: str) -> int:
    """Epoch milliseconds from epoch milliseconds, RFC 3339, or a duration ago (`10m`: ten minutes ago)."""
    try:
        return parse_timestamp(text)
    except ValueError:
        pass
    try:
        # A duration needs its unit here: a bare number is epoch milliseconds.
        ago = parse_duration(text) if text.strip()[-1:].isalpha() else None
    except ValueError:
        ago = None
    if ago is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected epoch milliseconds, an RFC 3339 time such as 2026-12-02T22:30:00Z, "
            "or a duration ago such as 10m or 3d"
        )
    return int((time.time() - ago) * 1000)


def queue_commands(commands) -> None:
    """put, get, peek, tail and fleet: the memcache port of one server, or of a fleet (doc/fleet.md)."""
    fleet_options = argparse.ArgumentParser(add_help=False)
    fleet_options.add_argument("--servers", metavar="HOST:PORT,...", help="these servers, instead of the config's memcache_listen")
    fleet_options.add_argument(
        "--zookeeper", metavar="HOST:PORT/PREFIX",
        help="the servers of a fleet's ZooKeeper server sets: writes to the write set, reads from the read set",
    )
    put = commands.add_parser(
        "put", parents=[fleet_options], help="add items to a queue",
        description="kestrel put jobs 'resize 42' 'resize 43'\nprintf 'a\\nb\\n' | kestrel put jobs    (one item a line)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    put.add_argument("queue")
    put.add_argument("items", nargs="*", metavar="ITEM", help="the items; without any, each line of stdin is one")
    get = commands.add_parser(
        "get", parents=[fleet_options], help="take items from a queue and print them, one a line",
        description="kestrel get jobs -n 10 --timeout 5s --reserve",
    )
    get.add_argument("queue")
    get.add_argument("-n", type=int, default=1, metavar="N", help="up to N items (default 1); it stops at the first wait that brings none")
    get.add_argument("--timeout", type=duration, default=0.0, help="how long to wait for each item: 500ms, 5s, 2m (default: not at all)")
    get.add_argument("--reserve", action="store_true", help="confirm each item only once it is printed (a reliable read)")
    peek = commands.add_parser("peek", parents=[fleet_options], help="print a queue's head item and leave it there", description="kestrel peek jobs")
    peek.add_argument("queue")
    tail = commands.add_parser(
        "tail", parents=[fleet_options], help="print items as they arrive, each confirmed once printed (Ctrl-C ends it)",
        description="kestrel tail jobs --servers 10.0.0.7:22133,10.0.0.8:22133",
    )
    tail.add_argument("queue")
    commands.add_parser("fleet", parents=[fleet_options], help="each server: whether it answers, its queues and their depths", description="kestrel fleet --servers a:22133,b:22133")


def duration(text: str) -> float:
    """`500ms`, `5s`, `2m`, or bare seconds."""
    match = DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration such as 500ms, 5s or 2m")
    return float(match[1]) * {"ms": 0.001, "s": 1, None: 1, "m": 60}[match[2]]


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
        if options.command in QUEUE_COMMANDS:
            return queues(options, out)
        if options.command == "history":
            return history(options, out)
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


def history(options: argparse.Namespace, out: TextIO) -> int:
    """The items one page (or, with --all, every page) holds, one a line; without --all, the next page's cursor on stderr."""
    host, port = sqs_address(options)
    client = HistoryClient(host, port, credentials(options))
    window = (options.queue, options.since, options.until, options.limit, options.cursor)
    line = item_json if options.json else item_line
    try:
        for reply in client.pages(*window) if options.all else [client.page(*window)]:
            out.writelines(line(item) + "\n" for item in reply["items"])
    except HistoryRefused as error:
        print(f"kestrel: {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        raise CommandError(f"cannot reach the SQS listener {host}:{port}: {getattr(error, 'reason', error)}") from None
    except (http.client.HTTPException, ValueError, KeyError) as error:  # another port, another server
        raise CommandError(f"{host}:{port} does not answer as txkestrel's SQS listener: {error!r}") from None
    if reply["next"] is not None:
        print(f"kestrel: more items: --cursor {reply['next']} (or --all)", file=sys.stderr)
    return 0


def credentials(options: argparse.Namespace) -> Credentials:
    """The app's key and secret from the options or AWS's variables; none at all signs anonymously (a server without [apps])."""
    key = options.access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = options.secret or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key is None and secret is None:
        return Credentials()
    if not key or secret is None:
        raise CommandError("give both --access-key and --secret (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    return Credentials(key, secret.encode())


def sqs_address(options: argparse.Namespace) -> tuple[str, int]:
    if options.sqs:
        return host_and_port(options.sqs, "--sqs")
    listen = config(options).sqs_listen
    if not listen:
        raise CommandError("the config's sqs_listen is off: the history is read on the SQS listener (or give --sqs HOST:PORT)")
    return tcp_address(listen, "sqs_listen", "--sqs HOST:PORT")


def config(options: argparse.Namespace) -> ServerConfig:
    path = options.config or os.environ.get("KESTREL_CONFIG") or DEFAULT_CONFIG
    try:
        return load_config(path)
    except ConfigError as error:
        hint = "" if options.config or os.environ.get("KESTREL_CONFIG") else " (give -c CONFIG or set KESTREL_CONFIG)"
        raise CommandError(f"{error}{hint}") from None


def admin_address(options: argparse.Namespace) -> tuple[str, int]:
    if options.admin:
        return host_and_port(options.admin, "--admin")
    listen = config(options).admin_listen
    return tcp_address(listen)


def host_and_port(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise CommandError(f"{option} {text}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


def tcp_address(endpoint: str, setting: str = "admin_listen", instead: str = "--admin HOST:PORT") -> tuple[str, int]:
    """Where to reach a listener of a strports endpoint: its interface (loopback for a wildcard) and port."""
    kind, *parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", endpoint)]
    if kind not in ("tcp", "tcp6") or not parts or not parts[0].isdigit():
        raise CommandError(f"{setting} {endpoint!r}: kestrel reaches a tcp port only (or give {instead})")
    interface = next((part.split("=", 1)[1] for part in parts[1:] if part.startswith("interface=")), "")
    if interface in ("", "0.0.0.0", "::"):
        interface = "127.0.0.1" if kind == "tcp" else "::1"
    return interface, int(parts[0])


def queues(options: argparse.Namespace, out: TextIO) -> int:
    """The queue commands, through kestrel.client; its errors become one line and an exit code."""
    from kestrel import client

    try:
        fleet = client.Client(zookeeper=options.zookeeper) if options.zookeeper else client.Client(fleet_servers(options))
    except (ValueError, client.ZooKeeperUnreachable) as error:
        raise CommandError(str(error)) from None
    try:
        with fleet:
            return QUEUE_ACTIONS[options.command](fleet, options, out)
    except ValueError as error:
        raise CommandError(str(error)) from None
    except client.WriteOutcomeUnknown as error:
        print(f"kestrel: {error}", file=sys.stderr)
        return OUTCOME_UNKNOWN
    except client.NoServerAvailable as error:
        refused = all(isinstance(failure, client.ServerError) for failure in error.failures.values()) and error.failures
        print(f"kestrel: {error}", file=sys.stderr)
        return 1 if refused else 2
    except client.KestrelError as error:
        print(f"kestrel: {error}", file=sys.stderr)
        return 1


def fleet_servers(options: argparse.Namespace) -> list[str]:
    if options.servers:
        return [server.strip() for server in options.servers.split(",") if server.strip()]
    host, port = tcp_address(config(options).memcache_listen, "memcache_listen", "--servers HOST:PORT,...")
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]


def binary(out: TextIO) -> BinaryIO:
    """Items are bytes: they go to the stream's buffer, as they are."""
    out.flush()
    return out.buffer


def print_item(out: TextIO, item: bytes) -> None:
    stream = binary(out)
    stream.write(item + b"\n")
    stream.flush()


def put_items(fleet, options: argparse.Namespace, out: TextIO) -> int:
    if options.items:
        fleet.put_many(options.queue, [item.encode() for item in options.items])
        return 0
    lines = (line.rstrip(b"\r\n") for line in sys.stdin.buffer)
    while batch := list(islice(lines, PUT_BATCH)):
        fleet.put_many(options.queue, batch)
    return 0


def get_items(fleet, options: argparse.Namespace, out: TextIO) -> int:
    count = 0
    for _ in range(options.n):
        if options.reserve:
            with fleet.reserve(options.queue, options.timeout) as item:
                if item is not None:
                    print_item(out, item)
        else:
            item = fleet.get(options.queue, options.timeout)
            if item is not None:
                print_item(out, item)
        if item is None:
            break
        count += 1
    return 0 if count else NO_ITEM


def peek_item(fleet, options: argparse.Namespace, out: TextIO) -> int:
    item = fleet.peek(options.queue)
    if item is None:
        return NO_ITEM
    print_item(out, item)
    return 0


def tail_items(fleet, options: argparse.Namespace, out: TextIO) -> int:
    """
    Until Ctrl-C. Ctrl-C only asks to stop: the item in hand is printed and confirmed first,
    and the wait for the next one ends within TAIL_WAIT. (Raised in the middle, it would abort
    an item already printed, which would then come again.)
    """
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        while not stop.is_set():
            with fleet.reserve(options.queue, timeout=TAIL_WAIT) as item:
                if item is not None:
                    print_item(out, item)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def show_fleet(fleet, options: argparse.Namespace, out: TextIO) -> int:
    """One line a server (address, up or why not, items in all), then one a queue: its items and open reads."""
    answered = 0
    membership = fleet.fleet.membership
    for server, found in fleet.stats().items():
        roles = ",".join(role for role in ("write", "read") if server in membership.servers_for(role))
        if found.error is not None:
            out.write(f"{server}  {roles}  down  {found.error}\n")
            continue
        answered += 1
        # A server with more queues than its stats_queue_limit lists none and counts them instead.
        queues = len(found.queues) + int(found.stats.get("queues_omitted", 0))
        out.write(f"{server}  {roles}  up  {found.stats.get('curr_items', 0)} items in {queues} queues\n")
        for name, queue in sorted(found.queues.items()):
            if "items" in queue:
                out.write(f"  {name}  {queue['items']} items  {queue.get('open_transactions', 0)} open\n")
    return 0 if answered else 2


QUEUE_ACTIONS = {"put": put_items, "get": get_items, "peek": peek_item, "tail": tail_items, "fleet": show_fleet}


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
