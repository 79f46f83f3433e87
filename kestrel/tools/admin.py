"""
kestrel-admin: talk to a running server's admin HTTP service.

    kestrel-admin [--host HOST] [--port PORT] COMMAND

Commands: ping, stats [--queue NAME]... [--json], server-info, metrics, status [NAME],
reload, quiesce, shutdown. It exits 0 on success, 1 when the server refuses the request
(its JSON error is printed), and 2 when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import TextIO

DEFAULT_PORT = 2223
TIMEOUT = 10.0


class AdminClient:
    """GETs and POSTs against one admin service; returns response bodies as text."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: float = TIMEOUT):
        self.base = f"http://{host}:{port}"
        self.timeout = timeout

    def get(self, path: str, **query: object) -> str:
        return self._request("GET", path, query)

    def post(self, path: str, **query: object) -> str:
        return self._request("POST", path, query)

    def _request(self, method: str, path: str, query: dict[str, object]) -> str:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return response.read().decode()


def run(client: AdminClient, options: argparse.Namespace) -> str:
    """Carry out one command; returns what to print."""
    command = options.command
    if command == "stats":
        path = "/stats.json" if options.json else "/stats.txt"
        return client.get(path, **({"queue": options.queue} if options.queue else {}))
    if command == "status":
        if options.name is None:
            return client.get("/status")
        return client.post("/status", set=options.name)
    if command in ("reload", "quiesce", "shutdown"):
        return client.post(f"/{command}")
    return client.get({"ping": "/ping", "server-info": "/server_info", "metrics": "/metrics"}[command])


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kestrel-admin", description="Talk to a txkestrel admin HTTP service.")
    parser.add_argument("--host", default="127.0.0.1", help="admin service host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"admin service port (default {DEFAULT_PORT})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("ping", help="check that the server answers")
    stats = commands.add_parser("stats", help="global and per-queue stats")
    stats.add_argument("--queue", action="append", metavar="NAME", help="only this queue's stats (repeatable)")
    stats.add_argument("--json", action="store_true", help="JSON instead of `name value` lines")
    commands.add_parser("server-info", help="version, uptime, listeners, config path")
    commands.add_parser("metrics", help="the Prometheus metrics")
    status = commands.add_parser("status", help="show the server status, or set it")
    status.add_argument("name", nargs="?", help="up, readonly, quiescent or writeavoid")
    commands.add_parser("reload", help="re-read the config file (queue settings and aliases)")
    commands.add_parser("quiesce", help="refuse reads and writes (status quiescent)")
    commands.add_parser("shutdown", help="shut the server down cleanly")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    options = parser().parse_args(argv)
    try:
        body = run(AdminClient(options.host, options.port), options)
    except urllib.error.HTTPError as error:
        print(f"kestrel-admin: {error.code}: {_error_message(error)}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"kestrel-admin: cannot reach {options.host}:{options.port}: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 2
    out.write(body if body.endswith("\n") else body + "\n")
    return 0


def _error_message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode("utf-8", "replace")
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.strip() or error.reason


if __name__ == "__main__":
    sys.exit(main())
