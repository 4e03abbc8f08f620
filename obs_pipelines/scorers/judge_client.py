"""A client for an LLM judge behind any OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``).

What it guarantees, whatever the endpoint does:

* **a deadline per attempt**: ``timeout_s`` bounds the whole exchange (connect, headers, body). Every socket
  read and write gets the time left until the attempt's deadline as its timeout (a network backend wrapped
  around httpcore's), so a body trickled one byte at a time cannot stretch an attempt past ``timeout_s``;
* **a capped body**: an answer larger than ``max_answer_bytes`` (announced by Content-Length or counted while
  streaming) is refused with status ``too_large`` after reading at most that much: memory stays bounded;
* **retries** with exponential backoff on 408 / 429 / 5xx, timeouts and connection errors (a ``Retry-After`` of
  up to 10 s is honoured); a 4xx other than those stays failed (a request the endpoint refuses, e.g. a
  parameter it does not accept: change the request settings);
* **request parameters from the settings**: ``temperature`` (None: not sent), ``response_format`` (None: not
  sent), ``extra_params`` merged into the body (``max_tokens``, ``seed``, ``reasoning_effort`` ...) and the
  verdict asked as a function call (``use_tool``) or as JSON text; nothing is hard-coded;
* **cost**: from hand-set prices when given, else from the project's price table (genai-prices plus the
  settings' overrides) for the model the endpoint reports;
* a record of every call (``JudgeCall``) for ``judge_calls``; ``storable`` makes its texts safe for both
  databases (NUL escaped: PostgreSQL text refuses it) and caps them with a visible marker.

Thread-safe: scoring threads share one client; at most ``concurrency`` requests are in flight. The API key
comes from an environment variable, never from the settings file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore
import httpx

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
RESERVED_PARAMS = frozenset({"model", "messages", "tools", "tool_choice", "stream"})
_ERROR_BODY_BYTES = 4096  # of an error response, kept for the error message


@dataclass
class JudgeCall:
    """One judgment: what was asked, what came back (the answer text and any function-call arguments), what
    it cost. ``status``: ok, error, timeout or too_large."""

    model: str
    prompt: str
    raw_answer: str | None = None
    tool_arguments: list[Any] = field(default_factory=list)
    status: str = "ok"
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    max_stored_chars: int = 20000

    def stored(self) -> dict[str, Any]:
        """The texts as ``judge_calls`` keeps them: NUL-safe, capped (the cut said in the text)."""
        answer = self.raw_answer
        if self.tool_arguments:
            answer = json.dumps({"content": answer, "tool_arguments": self.tool_arguments}, ensure_ascii=False,
                                default=str)
        cap = self.max_stored_chars
        return {"prompt": storable(self.prompt, cap), "raw_answer": storable(answer, cap),
                "error": storable(self.error, 1000)}


def storable(text: str | None, limit: int) -> str | None:
    """``text`` for a database text column: NUL written as the escape ``\\u0000`` (PostgreSQL refuses the
    character itself, SQLite would keep it), cut to ``limit`` characters with a marker giving the full size."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if len(text) > limit:
        text = f"{text[:limit]}…[cut: {len(text):,} characters in all]"
    return text


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int, announced: bool) -> None:
        how = "announced" if announced else "more than"
        super().__init__(f"answer body {how} {size:,} bytes, over max_answer_bytes ({limit:,})")


# ---- a deadline for every socket operation of an attempt ------------------------------------------------


class _Deadline(threading.local):
    at: float | None = None

    def bound(self, timeout: float | None, error: type[Exception]) -> float | None:
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("judge call deadline reached")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.bound(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, self._deadline.bound(timeout, httpcore.ConnectTimeout),
                                         local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        stream = self._inner.connect_unix_socket(path, self._deadline.bound(timeout, httpcore.ConnectTimeout),
                                                 socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(deadline: _Deadline, limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport with its httpcore pool's network backend wrapped (httpx has no public hook for it;
    obs_pipelines_tests/online_evals/test_judge_client.py fails loudly should that attribute ever move)."""
    transport = httpx.HTTPTransport(limits=limits)
    pool = transport._pool
    pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)
    return transport


# ---- the client ------------------------------------------------------------------------------------------


class JudgeClient:
    """Thread-safe: scoring threads share one client; at most ``concurrency`` requests are in flight."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 30.0,
                 max_retries: int = 3, backoff_s: float = 0.5, concurrency: int = 16,
                 temperature: float | None = 0.0, response_format: Mapping[str, Any] | None = None,
                 extra_params: Mapping[str, Any] | None = None, use_tool: bool = False,
                 max_answer_bytes: int = 1_000_000, max_stored_chars: int = 20000, scrub_pii: bool = True,
                 provider: str | None = None, usd_per_m_input: float | None = None,
                 usd_per_m_output: float | None = None, prices=None) -> None:
        reserved = sorted(RESERVED_PARAMS & set(extra_params or {}))
        if reserved:
            raise ValueError(f"judge extra_params may not set {reserved}: the client sets them")
        self.model, self.max_retries, self.backoff_s, self.concurrency = model, max_retries, backoff_s, concurrency
        self.timeout_s, self.max_answer_bytes, self.max_stored_chars = timeout_s, max_answer_bytes, max_stored_chars
        self.use_tool, self.scrub_pii, self.provider = use_tool, scrub_pii, provider
        self.params: dict[str, Any] = {}
        if temperature is not None:
            self.params["temperature"] = temperature
        if response_format is not None:
            self.params["response_format"] = dict(response_format)
        self.params.update(extra_params or {})
        self.hand_prices = (usd_per_m_input, usd_per_m_output)
        self.prices = prices
        self._rates = _Rates(prices, provider)
        headers = {"Accept-Encoding": "identity"}  # no compressed body: the cap counts what is held in memory
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._deadline = _Deadline()
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                  transport=_deadline_transport(self._deadline, limits))
        self._slots = threading.BoundedSemaphore(concurrency)

    @property
    def identity(self) -> str:
        """The judge as a scorer version sees it: the model, plus a hash of everything that can change its
        verdicts (request parameters, function-call mode, PII scrubbing)."""
        blob = json.dumps({"params": self.params, "use_tool": self.use_tool, "scrub_pii": self.scrub_pii},
                          sort_keys=True, default=str)
        return f"{self.model}~{hashlib.sha1(blob.encode()).hexdigest()[:6]}"

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[Mapping[str, str]], tools: Sequence[Mapping] | None = None,
                 tool_choice: Any = None) -> JudgeCall:
        """Ask the judge; never raises: failures are a call with status error / timeout / too_large."""
        prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        call = JudgeCall(self.model, prompt, max_stored_chars=self.max_stored_chars)
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages], **self.params}
        if tools:
            body["tools"] = list(tools)
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
        began = time.perf_counter()
        with self._slots:
            for attempt in range(self.max_retries + 1):
                call.attempts = attempt + 1
                wait = self.backoff_s * 2 ** attempt
                retry = self._attempt(call, body)
                if retry is None:
                    break
                if attempt < self.max_retries:
                    time.sleep(wait if retry < 0 else min(retry, 10.0))
        call.latency_ms = (time.perf_counter() - began) * 1000
        return call

    def _attempt(self, call: JudgeCall, body: dict) -> float | None:
        """One request: None when done (answered, or failed for good), else the wait the endpoint asked for
        before a retry (-1: the backoff's)."""
        self._deadline.at = time.monotonic() + self.timeout_s
        try:
            status, headers, data = self._exchange(body)
        except _TooLarge as exc:
            call.status, call.error = "too_large", str(exc)
            return None
        except httpx.TimeoutException as exc:
            call.status, call.error = "timeout", f"no complete answer within timeout_s={self.timeout_s}: {exc}"[:500]
            return -1
        except httpx.HTTPError as exc:
            call.status, call.error = "error", f"{type(exc).__name__}: {exc}"[:500]
            return -1
        finally:
            self._deadline.at = None
        if status >= 400:
            call.status = "error"
            call.error = f"HTTP {status}: {data[:_ERROR_BODY_BYTES].decode('utf-8', 'replace')}"
            if status not in RETRY_STATUSES:
                return None  # a request the endpoint refuses stays refused
            after = headers.get("retry-after", "")
            return float(after) if after.replace(".", "", 1).isdigit() else -1
        self._read(call, data)
        return None

    def _exchange(self, body: dict) -> tuple[int, httpx.Headers, bytes]:
        with self._http.stream("POST", "/chat/completions", json=body) as response:
            ok = response.status_code < 400
            limit = self.max_answer_bytes if ok else _ERROR_BODY_BYTES
            announced = response.headers.get("content-length", "")
            if ok and announced.isdigit() and int(announced) > limit:
                raise _TooLarge(int(announced), limit, announced=True)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    if ok:
                        raise _TooLarge(size, limit, announced=False)
                    chunks.append(chunk)
                    break  # enough of an error body for its message
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _read(self, call: JudgeCall, data: bytes) -> None:
        try:
            payload = json.loads(data)
            message = payload["choices"][0]["message"]
            if not isinstance(message, Mapping):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            call.status, call.error = "error", f"unreadable response: {type(exc).__name__}: {exc}"[:500]
            call.raw_answer = data[:self.max_stored_chars].decode("utf-8", "replace")
            return
        call.raw_answer = _content_text(message.get("content"))
        if message.get("refusal") and not call.raw_answer:
            call.raw_answer = f"(refusal) {message['refusal']}"
        call.tool_arguments = _tool_arguments(message)
        usage = payload.get("usage") if isinstance(payload.get("usage"), Mapping) else {}
        call.input_tokens = _count(usage.get("prompt_tokens"))
        call.output_tokens = _count(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), Mapping) else {}
        reported = payload.get("model")
        call.cost_usd = self._cost(reported if isinstance(reported, str) and reported else self.model,
                                   call.input_tokens, call.output_tokens, _count(details.get("cached_tokens")))
        call.status, call.error = "ok", None

    def _cost(self, model: str, input_tokens: int | None, output_tokens: int | None,
              cached_tokens: int | None) -> float | None:
        if input_tokens is None or output_tokens is None:
            return None
        price_in, price_out = self.hand_prices
        if price_in is not None and price_out is not None:  # set by hand in the settings: they win
            return (input_tokens * price_in + output_tokens * price_out) / 1e6
        if self.prices is None:
            return None
        return self._rates.cost(model, input_tokens, output_tokens, cached_tokens or 0)


class _Rates:
    """The price table's rate rows of each judge model, resolved once a day (a pandas lookup per call would
    cost more CPU than the rest of the call), applied with compute_costs' formula: uncached input, cached
    input, output, per request; the row of the current time and input-token tier."""

    def __init__(self, prices, provider: str | None) -> None:
        self.prices, self.provider = prices, provider
        self._rows: dict[str, tuple[datetime, datetime, list[dict]]] = {}
        self._lock = threading.Lock()

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int) -> float | None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            window = self._rows.get(model)
            if window is None or not window[0] <= now < window[1]:
                start, end = now - timedelta(hours=1), now + timedelta(days=1)
                frame = self.prices.rate_rows([(self.provider, model)], start, end)
                window = self._rows[model] = (start, end, frame.to_dict("records"))
        cached = min(cached_tokens, input_tokens)
        for row in window[2]:
            if row["t0"] <= now < row["t1"] and row["in_lo"] < input_tokens <= row["in_hi"]:
                return ((input_tokens - cached) * row["rate_input"] + cached * row["rate_cached"]
                        + output_tokens * row["rate_output"] + row["rate_request"])
        return None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _content_text(content: Any) -> str | None:
    """A message's content: a string, or the text parts of a list of parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return str(content)


def _tool_arguments(message: Mapping) -> list[Any]:
    """The arguments of the message's function calls (``tool_calls`` and the legacy ``function_call``)."""
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    functions = [c.get("function") for c in calls if isinstance(c, Mapping)]
    if isinstance(message.get("function_call"), Mapping):
        functions.append(message["function_call"])
    return [f.get("arguments") for f in functions if isinstance(f, Mapping) and f.get("arguments") is not None]


__all__ = ["RESERVED_PARAMS", "RETRY_STATUSES", "JudgeCall", "JudgeClient", "storable"]
