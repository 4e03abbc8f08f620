"""A fake OpenAI-compatible chat endpoint on 127.0.0.1 (a real threaded http.server) for the judge tests:
scripted answers, delays, error statuses, function-call answers, trickled and huge bodies, and the highest
number of requests it saw in flight."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_ANSWER = '{"reasoning": "The response answers the question.", "choice": "A"}'


def completion(content: str | None = None, tool_arguments: str | None = None, model: str | None = None,
               usage: dict | None = None) -> str:
    """An OpenAI chat completion body answering ``content`` and / or a select_choice call."""
    message: dict = {"role": "assistant", "content": content}
    if tool_arguments is not None:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "select_choice", "arguments": tool_arguments}}]
    body: dict = {"choices": [{"index": 0, "message": message}],
                  "usage": usage if usage is not None else {"prompt_tokens": 120, "completion_tokens": 12}}
    if model:
        body["model"] = model
    return json.dumps(body)


class FakeJudge:
    """``answer``: the content of every default reply. ``script``: (status, body) pairs served first, one per
    request. ``reply``: a function of the request body giving (status, body), instead of the default.
    ``trickle``: (bytes, pause_s) — the default reply's body is sent that many bytes at a time with a pause
    in between; ``slow_headers``: the status line and headers themselves sent a byte per pause. ``flood``: a body of this many bytes (a JSON answer), with or without Content-Length."""

    def __init__(self, answer: str = DEFAULT_ANSWER, delay_s: float = 0.0) -> None:
        self.answer, self.delay_s = answer, delay_s
        self.script: deque[tuple[int, str]] = deque()
        self.reply: Callable[[dict], tuple[int, str]] | None = None
        self.trickle: tuple[int, float] | None = None
        self.stopped = threading.Event()  # set on exit: slow handlers return instead of sleeping on
        self.flood: tuple[int, bool] | None = None  # (bytes, announce Content-Length)
        self.slow_headers: float | None = None  # pause between the bytes of the status line and headers
        self.flood_sent = 0
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    scripted = fake.script.popleft() if fake.script else None
                try:
                    if fake.stopped.wait(fake.delay_s):
                        return
                    if scripted is None and fake.flood is not None:
                        self._flood(*fake.flood)
                        return
                    if scripted is None and fake.slow_headers is not None:
                        for byte in b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 400:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if fake.stopped.wait(fake.slow_headers):
                                return
                        return
                    if scripted is not None:
                        status, text = scripted
                    elif fake.reply is not None:
                        status, text = fake.reply(body)
                    else:
                        status, text = 200, completion(fake.answer)
                    data = text.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if fake.trickle is not None and scripted is None:
                        size, pause = fake.trickle
                        for i in range(0, len(data), size):
                            self.wfile.write(data[i:i + size])
                            self.wfile.flush()
                            if fake.stopped.wait(pause):
                                return
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout / size tests)
                    pass
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _flood(self, size: int, announce: bool) -> None:
                """A JSON completion whose content is ``size`` bytes of text, written 64 KiB at a time."""
                head, tail = b'{"choices": [{"message": {"role": "assistant", "content": "', b'"}}]}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if announce:
                    self.send_header("Content-Length", str(len(head) + size + len(tail)))
                self.end_headers()  # without a length, HTTP/1.0: the body ends when the connection closes
                self.wfile.write(head)
                chunk = b"x" * 65536
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
                    fake.flood_sent += len(chunk)
                self.wfile.write(tail)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def user_prompts(self) -> list[str]:
        """The user message of every request, in order."""
        return [next(m["content"] for m in r["body"]["messages"] if m["role"] == "user") for r in self.requests]

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # slow handlers return at once (`stopped`) and are waited for, so no handler thread outlives its test:
        # later tests run in a single-threaded process again, where forked worker pools are allowed
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        deadline = time.monotonic() + 10
        while self.in_flight and time.monotonic() < deadline:
            self.stopped.wait(0.01)
        for thread in threading.enumerate():
            if thread.name.endswith("(process_request_thread)"):
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
