"""
The admin port's dashboard in a real browser: headless Chromium opens `/` on a live server
while clients add to and read from a few queues, and the test reads what the page drew. It
must list every queue with the depth the server reports, in the dashboard's order, and its
charts must have drawn points; any uncaught exception, console error or failed load in the
page fails the test.

Set KESTREL_DASHBOARD_SCREENSHOT to a path to keep a screenshot taken under traffic there
(doc/dashboard.png is made so, with KESTREL_DASHBOARD_TRAFFIC_SECONDS=60 for fuller charts).
"""

import math
import os
import threading
import time
from pathlib import Path

import pytest

from kestrel.load.process import KestrelProcess
from kestrel.load.queue_creation import create_queues
from kestrel.test.acceptance.browser import Browser, chromium_path

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="needs Debian's chromium package (.ci/run installs it)")

TRAFFIC_SECONDS = float(os.environ.get("KESTREL_DASHBOARD_TRAFFIC_SECONDS", "4"))
PAGE_TIMEOUT = 20.0
VIEWPORT = (1400, 1000)
# A small memory budget, so some of its items wait on disk (read-behind).
QUEUES = """
[queues.thumbnails]
max_memory_size = "16KB"
"""

# What the page shows, read from the data attributes the dashboard puts on rows and charts.
READ_PAGE = """
(() => {
  const points = (node) => (node?.getAttribute("points") ?? "").trim().split(/\\s+/).filter(Boolean);
  const line = (chart, series, root = document) =>
    points(root.querySelector(`[data-chart="${chart}"] polyline[data-series="${series}"]`));
  const rows = [...document.querySelectorAll("#queues tbody tr[data-queue]")].map((row) => ({
    name: row.dataset.queue,
    depth: Number(row.querySelector("[data-depth]")?.dataset.depth),
    depth_points: line("queue-depth", "depth", row).length,
    in_points: line("queue-flow", "in", row).length,
  }));
  const rates = line("server-rates", "in").map((point) => point.split(",")[1]);
  return {
    rows,
    status: document.getElementById("status").dataset.status ?? null,
    banner: document.getElementById("banner").hidden ? null : document.getElementById("banner").textContent,
    server_depth_points: line("server-depth", "depth").length,
    server_rate_levels: new Set(rates).size,
    set_latency_bars: document.querySelectorAll('[data-chart="latency-set"] rect.bar').length,
  };
})()
"""


class Traffic:
    """Producers and consumers on a few queues at uneven, wavering rates, in a thread, until stopped."""

    def __init__(self, server: KestrelProcess):
        self.server = server
        self.running = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Traffic":
        client = self.server.client()
        for index in range(400):
            client.set("audit", b"entry %d" % index)
        client.close()
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.running.clear()
        self.thread.join(10)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            client = self.server.client()
            started = time.monotonic()
            tick = 0
            while self.running.is_set():
                wave = 1 + math.sin((time.monotonic() - started) / 3)
                tick += 1
                for _ in range(2 + round(wave)):
                    client.set("jobs", b"resize image %d" % tick)
                if tick % 2:
                    client.get("jobs")
                for _ in range(round(2 * wave)):
                    client.set("emails", b"x" * 300)
                    client.get("emails")
                client.set("thumbnails", b"t" * 900)
                if tick % 3 == 0:
                    client.get("audit")
                if tick % 5 == 0:
                    client.set("webhooks", b"delivery %d" % tick)
                time.sleep(0.01)
            client.close()
        except BaseException as error:
            self.error = error


@pytest.fixture
def browser(tmp_path):
    browser = Browser(tmp_path / "chromium")
    yield browser
    browser.close()


def wait_for_page(page, condition, what: str) -> dict:
    """Read the page until `condition` holds of it, failing at once on an error in the page."""
    deadline = time.monotonic() + PAGE_TIMEOUT
    while True:
        errors = page.errors()
        assert not errors, "the page reported errors:\n" + "\n".join(errors)
        shown = page.evaluate(READ_PAGE)
        if condition(shown):
            return shown
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard did not show {what} within {PAGE_TIMEOUT} s; it shows {shown}")
        time.sleep(0.25)


def charted(shown: dict) -> bool:
    return (
        shown["server_depth_points"] >= 2
        and all(row["depth_points"] >= 2 and row["in_points"] >= 2 for row in shown["rows"])
    )


def test_the_dashboard_shows_the_queues_and_charts_them(make_server, browser, tmp_path):
    server = make_server(queues=QUEUES)
    # A reliable read left open for the "open reads" column, for the whole test.
    holder = server.client()
    holder.set("webhooks", b"delivery 0")
    assert holder.get("webhooks/open") == b"delivery 0"
    page = browser.open(f"http://127.0.0.1:{server.admin_port}/", *VIEWPORT)
    with Traffic(server):
        names = {"jobs", "emails", "thumbnails", "audit", "webhooks"}
        wait_for_page(page, lambda shown: {row["name"] for row in shown["rows"]} == names and charted(shown),
                      "every queue, charted, under traffic")
        time.sleep(max(TRAFFIC_SECONDS - 2, 0))
        screenshot = page.screenshot()

    queues = server.admin("GET", "/stats.json").json()["queues"]
    # Once the traffic is over nothing grows, and the deepest come first.
    expected = sorted(queues, key=lambda name: (-queues[name]["items"], name))

    def settled(shown: dict) -> bool:
        return [(row["name"], row["depth"]) for row in shown["rows"]] == [(name, queues[name]["items"]) for name in expected]

    shown = wait_for_page(page, settled, "the server's depths, deepest first")
    assert shown["status"] == "Up" and shown["banner"] is None
    assert charted(shown)
    assert shown["server_rate_levels"] >= 2, "the server's in/s line is flat: no rate was drawn"
    assert shown["set_latency_bars"] >= 1
    assert queues["webhooks"]["open_transactions"] == 1
    assert queues["thumbnails"]["mem_items"] < queues["thumbnails"]["items"]
    assert page.errors() == []
    holder.close()

    (tmp_path / "dashboard.png").write_bytes(screenshot)
    if target := os.environ.get("KESTREL_DASHBOARD_SCREENSHOT"):
        Path(target).write_bytes(screenshot)


def test_the_page_reports_a_server_that_stops_answering(make_server, browser):
    server = make_server()
    server.client().set("jobs", b"one")
    page = browser.open(f"http://127.0.0.1:{server.admin_port}/", *VIEWPORT)
    wait_for_page(page, lambda shown: [row["name"] for row in shown["rows"]] == ["jobs"], "the queue")
    server.kill()
    deadline = time.monotonic() + PAGE_TIMEOUT
    while page.evaluate("document.getElementById('banner').hidden") and time.monotonic() < deadline:
        time.sleep(0.25)
    assert "has not answered" in page.evaluate("document.getElementById('banner').textContent")
    assert page.evaluate("document.getElementById('status').textContent") == "no answer"
    # Still the last answer's rows, dimmed.
    assert page.evaluate("document.querySelectorAll('#queues tbody tr').length") == 1


def test_with_many_queues_the_page_shows_the_deepest_and_counts_them_all(make_server, browser):
    server = make_server()
    create_queues(server, 3000, 500, b"x")
    client = server.client()
    for _ in range(5):
        client.set("q2999", b"more")
    page = browser.open(f"http://127.0.0.1:{server.admin_port}/", *VIEWPORT)
    shown = wait_for_page(page, lambda shown: len(shown["rows"]) == 500, "the 500 deepest queues")
    assert shown["rows"][0] == {**shown["rows"][0], "name": "q2999", "depth": 6}
    assert page.evaluate("document.getElementById('queue-count').textContent") == "3,000"
    assert page.evaluate("document.getElementById('queue-note').textContent").startswith("The 500 deepest of 3,000 queues.")
