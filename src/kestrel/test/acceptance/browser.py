"""
Headless Chromium driven through the DevTools protocol, for tests of pages the server serves.

The browser is started on a DevTools port of its choosing (`--remote-debugging-port=0`), which
it writes to `DevToolsActivePort` in its profile folder; one websocket to it carries every
command, to the browser and, with flattened sessions, to the pages it opens. Commands are
answered in order of their ids; what arrives in between are events, kept for the test to read.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import websocket

CHROMIUM = "chromium"
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 20.0


def chromium_path() -> str | None:
    return shutil.which(CHROMIUM)


class DevToolsError(Exception):
    pass


class Browser:
    def __init__(self, directory: Path):
        """Start Chromium with a fresh profile in `directory` (its log goes there too)."""
        self.profile = directory / "profile"
        self.profile.mkdir(parents=True)
        self.log_path = directory / "chromium.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    chromium_path(), "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                    # The sandbox needs user namespaces, which containers and root often lack; the
                    # browser only visits the test's own server.
                    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--no-default-browser-check", "--disable-extensions", "--mute-audio", "about:blank",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        # The browser's own websocket refuses an Origin it does not expect; a client sends none.
        self.socket = websocket.create_connection(self._devtools_url(), timeout=COMMAND_TIMEOUT, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict] = []

    def _devtools_url(self) -> str:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevToolsError(f"chromium exited with {self.process.returncode}:\n{self.log()}")
            lines = active.read_text().splitlines() if active.exists() else []
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise DevToolsError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send a command and wait for its answer, keeping the events that come before it."""
        command_id = next(self._ids)
        message = {"id": command_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            answer = json.loads(self.socket.recv())
            if answer.get("id") != command_id:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise DevToolsError(f"{method}: {answer['error']}")
            return answer["result"]

    def wait_for_event(self, method: str, session: str) -> dict:
        """The first event `method` of the session, waiting for it if it has not come yet."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url: str, width: int, height: int) -> Page:
        """A new tab at `url`, once loaded, watched for errors from before it loads."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired", session)
        return page

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.process.wait(10)
        except Exception:
            # The whole process group: the browser's renderer and helper processes with it.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        finally:
            self.socket.close()


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session

    def call(self, method: str, **params) -> dict:
        return self.browser.call(method, self.session, **params)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and browser errors (a failed load, a refused script) so far."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append("console: " + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
        return found

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
