"""
A client of a running server's admin HTTP service, and the request each admin command of
`kestrel` (src/kestrel/command.py) makes.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request

from kestrel.stats_listing import split_selectors

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
        names, prefixes = split_selectors(options.queue)
        query = {"queue": names, "prefix": prefixes, "top": options.top}
        return client.get(path, **{key: value for key, value in query.items() if value})
    if command == "status":
        if options.name is None:
            return client.get("/status")
        return client.post("/status", set=options.name)
    if command in ("reload", "quiesce", "shutdown"):
        return client.post(f"/{command}")
    if command == "rewind":
        window = {"queue": options.queue, "since": options.since, "until": options.until}
        return client.post("/rewind", **{key: value for key, value in window.items() if value is not None})
    return client.get({"ping": "/ping", "server-info": "/server_info", "metrics": "/metrics"}[command])


def error_message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode("utf-8", "replace")
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.strip() or error.reason
