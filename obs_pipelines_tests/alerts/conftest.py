"""A real webhook: an HTTP server on 127.0.0.1 in a thread, answering with scripted status codes and keeping
every request it received (body and headers). Never a mock of the network stack."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Webhook:
    def __init__(self) -> None:
        self.received: list[dict] = []  # every POST: {"body", "headers", "status"}
        self.script: list[int] = []  # status codes to answer next, then 200
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with webhook.lock:
                    status = webhook.script.pop(0) if webhook.script else 200
                    webhook.received.append({"body": body, "headers": dict(self.headers), "status": status})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"boom")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def accepted(self) -> list[dict]:
        return [r for r in self.received if r["status"] < 300]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch):
    hook = Webhook()
    monkeypatch.setenv("OBS_PIPELINES_ALERT_WEBHOOK_URL", hook.url)
    yield hook
    hook.close()
