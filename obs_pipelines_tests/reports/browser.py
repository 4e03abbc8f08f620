"""Open a page in a real headless Chromium through the DevTools protocol and report what a reader's browser
would: console errors, uncaught exceptions, requests that failed or left the file, and what each chart drew.

Chromium is Debian's (`apt-get install chromium`, done by .ci/run); the DevTools websocket is spoken with the
`websockets` package. No sleeps: the browser's own events say when the page has loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# what each chart drew: the data marks of its SVG (Vega marks carry class role-mark; axes, legends and titles
# do not), and the non-empty geometry among them
_CHARTS_JS = """JSON.stringify([...document.querySelectorAll('figure.chart')].map(f => {
  const marks = [...f.querySelectorAll('svg g.role-mark > *')];
  return {name: f.dataset.chart, points: Number(f.dataset.points), marks: marks.length,
          drawn: marks.filter(m => (m.getAttribute('d') || '').length > 2 || m.tagName === 'text').length,
          width: f.querySelector('svg') ? f.querySelector('svg').getBoundingClientRect().width : 0};
}))"""


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)  # anything but the page itself and data: URIs
    charts: list[dict[str, Any]] = field(default_factory=list)


class _Session:
    def __init__(self, ws, session_id: str):
        self.ws, self.session_id, self.next_id, self.events = ws, session_id, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params,
                                 "sessionId": self.session_id}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def until(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=60)))


def open_page(path: Path) -> PageReport:
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium; .ci/run does it)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            ws_url = None
            for line in proc.stderr:  # Chromium prints its DevTools address once it listens
                if line.startswith("DevTools listening on "):
                    ws_url = line.split(" on ", 1)[1].strip()
                    break
            assert ws_url, "chromium did not start its DevTools endpoint"
            with connect(ws_url, max_size=None) as ws:
                return _inspect(ws, path)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _inspect(ws, path: Path) -> PageReport:
    ws.send(json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}))
    target = _reply(ws, 1)["targetId"]
    ws.send(json.dumps({"id": 2, "method": "Target.attachToTarget", "params": {"targetId": target, "flatten": True}}))
    session = _Session(ws, _reply(ws, 2)["sessionId"])
    for domain in ("Runtime", "Log", "Network", "Page"):
        session.call(f"{domain}.enable")
    url = path.resolve().as_uri()
    session.call("Page.navigate", url=url)
    session.until("Page.loadEventFired")
    charts = json.loads(session.call("Runtime.evaluate", expression=_CHARTS_JS, returnByValue=True)["result"]["value"])
    report = PageReport(charts=charts)
    for event in session.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(json.dumps(params.get("args")))
        elif method == "Runtime.exceptionThrown":
            report.console_errors.append(json.dumps(params.get("exceptionDetails")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            report.console_errors.append(params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            report.failed_requests.append(f"{params.get('errorText')} {params.get('blockedReason') or ''}")
        elif method == "Network.requestWillBeSent":
            requested = params["request"]["url"]
            if requested != url and not requested.startswith("data:"):
                report.outside_requests.append(requested)
    return report


def _reply(ws, message_id: int) -> dict:
    while True:
        message = json.loads(ws.recv(timeout=60))
        if message.get("id") == message_id:
            return message["result"]
