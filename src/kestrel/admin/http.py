"""
The admin HTTP service (twisted.web), in the spirit of Kestrel's Ostrich admin port 2223.

Reads are GET (or HEAD):
  /                                   the live dashboard, a page that polls the JSON reads
                                      (its files, from the dashboard folder, under /dashboard/)
  /ping, /ping.json                   pong
  /stats, /stats.json, /stats.txt     Kestrel's global and per-queue stats; ?queue=NAME
                                      (repeatable) gives only those queues, ?prefix=P those
                                      named P..., ?top=N the N deepest, ?limit=N at most N;
                                      above stats_queue_limit, no queue unless asked for
  /server_info, /server_info.json     version, uptime, listeners, config path
  /status, /status.json               the server status
  /metrics                            the Prometheus text format
  /latency.json                       the latency histograms: bounds, counts, count, sum
Control is POST only: /reload, /shutdown, /quiesce, /status?set=NAME, and
  /rewind?queue=NAME&since=T[&until=T]   put the items a retained queue got from `since` up
                                      to `until` (epoch ms or RFC 3339) back into it as new
                                      items (doc/history.md): {"queue": NAME, "rewound": N}

A GET on a control path is a 405, an unknown path a 404; every error has a JSON body
{"error": "..."}. Control requests that carry an Origin header come from a web page in a
browser, which must not be able to stop a server on its machine: they get a 403.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from importlib.resources import files

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from kestrel.admin.metrics import LATENCIES, metrics_registry
from kestrel.config import ConfigError
from kestrel.history import NoSuchQueue, NotRetained
from kestrel.protocols.http_channel import PacedChannel
from kestrel.server import ServerContext
from kestrel.stats_listing import QUEUES_OMITTED, Listing, by_name, deepest
from kestrel.status import Status, StatusError, StatusNotConfigured
from kestrel.timestamps import parse_timestamp

# A handler answers with a body, or with a Deferred of one for what takes the engine a while (rewind).
Handler = Callable[[Request], "bytes | Deferred[bytes]"]

READ_METHODS = (b"GET", b"HEAD")

# The dashboard's files, served as they ship in the package: only these, at "/" for the page
# and under /dashboard/ for the rest.
DASHBOARD = files(__package__) / "dashboard"
DASHBOARD_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# The page runs its own script and reads this service only: no inline script, nothing from
# elsewhere, and it may not be framed (a framing page could dress it up).
DASHBOARD_POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class AdminError(Exception):
    """A request the admin service refuses, with its HTTP status code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def json_body(request: Request, data: object, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(data).encode() + b"\n"


def text_body(request: Request, text: str) -> bytes:
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text.encode()


def query(request: Request, name: str) -> list[str]:
    return [value.decode("utf-8", "replace") for value in request.args.get(name.encode(), [])]


class AdminResource(Resource):
    """Every admin path, routed by a table: the service is small and flat."""

    isLeaf = True
    log = Logger()

    def __init__(self, server: ServerContext):
        super().__init__()
        self.server = server
        self.collection = server.collection
        self.registry = metrics_registry(server)
        self._reads: dict[str, Handler] = {
            "/ping": lambda request: text_body(request, "pong\n"),
            "/ping.json": lambda request: json_body(request, {"response": "pong"}),
            "/stats": self._stats_json,
            "/stats.json": self._stats_json,
            "/stats.txt": self._stats_text,
            "/server_info": self._server_info,
            "/server_info.json": self._server_info,
            "/status": self._status,
            "/status.json": self._status,
            "/metrics": self._metrics,
            "/latency.json": self._latency,
        }
        for name, content_type in DASHBOARD_ASSETS.items():
            path = "/" if name == "index.html" else f"/dashboard/{name}"
            self._reads[path] = partial(self._asset, (DASHBOARD / name).read_bytes(), content_type)
        self._controls: dict[str, Handler] = {
            "/reload": self._reload,
            "/shutdown": self._shutdown,
            "/quiesce": self._quiesce,
            "/status": self._set_status,
            "/rewind": self._rewind,
        }

    def render(self, request: Request) -> bytes | int:
        path = request.path.decode("utf-8", "replace")
        try:
            body = self._route(path, request)(request)
        except Exception:
            return self._refusal(Failure(), request, path)
        if isinstance(body, Deferred):
            self._answer_later(request, path, body)
            return NOT_DONE_YET
        return body

    def _refusal(self, failure: Failure, request: Request, path: str) -> bytes:
        if failure.check(AdminError):
            return json_body(request, {"error": str(failure.value)}, failure.value.code)
        self.log.failure("admin request {path} failed", failure, path=path)
        return json_body(request, {"error": "internal error; see the server log"}, 500)

    def _answer_later(self, request: Request, path: str, pending: Deferred[bytes]) -> None:
        """Write the body ``pending`` gives, or its refusal, unless the client has gone (the work goes on)."""
        gone = False

        def client_left(_: Failure) -> None:
            nonlocal gone
            gone = True

        def answer(body: bytes) -> None:
            if not gone:
                request.setHeader(b"content-length", b"%d" % len(body))
                request.write(body)
                request.finish()

        request.notifyFinish().addErrback(client_left)
        pending.addErrback(self._refusal, request, path).addCallback(answer)

    def _route(self, path: str, request: Request) -> Handler:
        read, control = self._reads.get(path), self._controls.get(path)
        if read is None and control is None:
            raise AdminError(404, f"no such endpoint: {path}")
        method = request.method
        if method == b"POST" and control is not None:
            if request.getHeader(b"origin") is not None:
                raise AdminError(403, "control requests from web pages are refused")
            return control
        if method in READ_METHODS and read is not None:
            if control is not None and b"set" in request.args:
                # A GET must never change anything.
                request.setHeader(b"allow", b"POST")
                raise AdminError(405, "a status change takes a POST")
            return read
        allowed = (list(READ_METHODS) if read is not None else []) + ([b"POST"] if control is not None else [])
        request.setHeader(b"allow", b", ".join(allowed))
        raise AdminError(405, f"{path} takes {' or '.join(each.decode() for each in allowed)}")

    # Reads

    def _listing(self, request: Request) -> tuple[Listing, bool]:
        """
        The queues a stats read asked for, and whether it named them: ?queue=NAME (a 404 for
        one that does not exist), else the ?top=N deepest, else those under ?prefix=P, else all
        of them while they are at most stats_queue_limit. ?limit=N lowers that limit.
        """
        names, prefixes = query(request, "queue"), query(request, "prefix")
        for name in names:
            if name not in self.collection and not self.collection.is_alias(name):
                raise AdminError(404, f"no such queue: {name}")
        if names:
            return Listing(names, len(names)), True
        limit = self.server.config.stats_queue_limit
        limit = min(limit, self._count_argument(request, "limit", limit))
        if b"top" in request.args:
            return deepest(self.collection, min(limit, self._count_argument(request, "top", limit))), False
        return by_name(self.collection, limit, prefixes=prefixes), False

    @staticmethod
    def _count_argument(request: Request, name: str, default: int) -> int:
        values = query(request, name)
        if not values:
            return default
        if len(values) != 1 or not values[0].isdigit():
            raise AdminError(400, f"{name} takes one whole number, got {', '.join(values)!r}")
        return int(values[0])

    def _stats_json(self, request: Request) -> bytes:
        listing, named = self._listing(request)
        report: dict[str, object] = {}
        if not named:
            report["server"] = dict(self.server.global_stats())
            report["queue_count"] = len(self.collection)
            report[QUEUES_OMITTED] = listing.omitted
        report["queues"] = {name: dict(stats) for name, stats in self.collection.queue_stats(listing.names)}
        return json_body(request, report)

    def _stats_text(self, request: Request) -> bytes:
        """`name value` lines, named as in the memcache `stats` reply."""
        listing, named = self._listing(request)
        lines = [] if named else [f"{key} {value}" for key, value in self.server.global_stats()]
        for name, stats in self.collection.queue_stats(listing.names):
            lines.extend(f"queue_{name}_{key} {value}" for key, value in stats)
        if listing.omitted:
            lines.append(f"{QUEUES_OMITTED} {listing.omitted}")
        return text_body(request, "".join(line + "\n" for line in lines))

    def _server_info(self, request: Request) -> bytes:
        server, config = self.server, self.server.config
        return json_body(request, {
            "name": "txkestrel",
            "version": server.version,
            "start_time": int(server.started_at),
            "uptime": int(server.clock.seconds() - server.started_at),
            "pid": os.getpid(),
            "config_path": config.config_path,
            "queue_path": config.queue_path,
            "status": server.status.current.display,
            "listeners": dict(server.listeners()) if server.listeners is not None else {},
        })

    def _status(self, request: Request) -> bytes:
        status = self.server.status
        return json_body(request, {
            "status": status.current.display,
            "readable": status.readable,
            "writable": status.writable,
        })

    def _metrics(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)

    def _latency(self, request: Request) -> bytes:
        """
        Each histogram as counted since the start: `counts` has one entry more than `bounds`
        (seconds), the observations above the last bound (JSON has no infinity to name it).
        """
        latencies = self.server.latencies
        report = {}
        for attribute, _, description in LATENCIES:
            histogram = getattr(latencies, attribute)
            report[attribute] = {
                "description": description,
                "bounds": list(histogram.bounds),
                "counts": list(histogram.counts),
                "count": histogram.count,
                "sum": histogram.sum,
            }
        return json_body(request, report)

    def _asset(self, body: bytes, content_type: str, request: Request) -> bytes:
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"content-security-policy", DASHBOARD_POLICY.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        # Revalidated at each load, so a page opened after an upgrade runs the new script.
        request.setHeader(b"cache-control", b"no-cache")
        return body

    # Control

    def _reload(self, request: Request) -> bytes:
        try:
            self.server.reload()
        except (ConfigError, RuntimeError) as error:
            self.log.warn("reload failed: {error}", error=error)
            raise AdminError(409, str(error)) from None
        return json_body(request, {"response": "reloaded", "config_path": self.server.config.config_path})

    def _shutdown(self, request: Request) -> bytes:
        self.server.shutdown()
        return json_body(request, {"response": "shutting down"}, 202)

    def _quiesce(self, request: Request) -> bytes:
        return self._change_status(request, Status.QUIESCENT.name)

    def _set_status(self, request: Request) -> bytes:
        names = query(request, "set")
        if len(names) != 1:
            raise AdminError(400, "name one status: /status?set=up|readonly|quiescent|writeavoid")
        return self._change_status(request, names[0])

    def _rewind(self, request: Request) -> Deferred[bytes]:
        name = self._one_argument(request, "queue")
        since = self._time_argument(request, "since")
        until = self._time_argument(request, "until") if query(request, "until") else None
        if until is not None and until < since:
            raise AdminError(400, "until is before since")

        def rewound(count: int) -> bytes:
            self.log.info("rewound {count} items of queue {queue} added from {since} to {until}",
                          count=count, queue=name, since=since, until=until)
            return json_body(request, {"queue": name, "rewound": count})

        def refused(failure: Failure) -> Failure:
            if failure.check(NoSuchQueue):  # or an alias: it has no history of its own
                raise AdminError(404, f"no such queue: {name}")
            if failure.check(NotRetained):
                raise AdminError(409, f"queue {name} keeps no history to rewind: its retain setting is off")
            return failure

        return self.collection.rewind(name, since, until).addCallbacks(rewound, refused)

    @staticmethod
    def _one_argument(request: Request, name: str) -> str:
        values = query(request, name)
        if len(values) != 1 or not values[0]:
            raise AdminError(400, f"give {name} once")
        return values[0]

    def _time_argument(self, request: Request, name: str) -> int:
        try:
            return parse_timestamp(self._one_argument(request, name))
        except ValueError as error:
            raise AdminError(400, f"{name}: {error}") from None

    def _change_status(self, request: Request, name: str) -> bytes:
        try:
            reported = self.server.status.set(name)
        except StatusNotConfigured as error:
            raise AdminError(409, f"{error}: the config names no status_file") from None
        except StatusError as error:
            raise AdminError(400, str(error)) from None
        except OSError as error:
            self.log.error("cannot save the server status: {error}", error=error)
            raise AdminError(500, f"cannot save the server status: {error.strerror}") from None
        return json_body(request, {"status": reported.display})


class AdminSite(Site):
    noisy = False
    protocol = PacedChannel

    def log(self, request: Request) -> None:
        # Control requests and refusals only: a line per scrape would drown the log.
        if request.method == b"POST" or request.code >= 400:
            AdminResource.log.info(
                "admin {method} {uri} from {client}: {code}",
                method=request.method.decode("latin-1"), uri=request.uri.decode("utf-8", "replace"),
                client=getattr(request.getClientAddress(), "host", "a local socket"), code=request.code,
            )


# An admin connection idle this long is closed, unless the config's client_timeout says otherwise
# (Twisted's own default is twelve hours).
ADMIN_IDLE_TIMEOUT = 60.0


def admin_site(server: ServerContext) -> AdminSite:
    timeout = server.config.client_timeout or ADMIN_IDLE_TIMEOUT
    return AdminSite(AdminResource(server), timeout=timeout, reactor=server.clock)
