"""A client for an LLM judge behind any OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``).

Timeouts, retries with exponential backoff on 429 / 5xx / timeouts / connection errors (a ``Retry-After`` of
a few seconds is honoured), a concurrency limit shared by every thread using the client, and a record of every
call (``JudgeCall``: prompt, raw answer, tokens, cost, latency, status, attempts) so the evaluator itself is
auditable: the online phase stores them in ``judge_calls``. The API key comes from an environment variable,
never from the settings file.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


@dataclass
class JudgeCall:
    """One judgment: what was asked, what came back, what it cost."""

    model: str
    prompt: str
    raw_answer: str | None = None
    status: str = "ok"  # ok, error, timeout
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class JudgeClient:
    """Thread-safe: scoring threads share one client; at most ``concurrency`` requests are in flight."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 30.0,
                 max_retries: int = 3, backoff_s: float = 0.5, concurrency: int = 16,
                 usd_per_m_input: float | None = None, usd_per_m_output: float | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model, self.max_retries, self.backoff_s, self.concurrency = model, max_retries, backoff_s, concurrency
        self.prices = (usd_per_m_input, usd_per_m_output)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, limits=limits,
                                  transport=transport)
        self._slots = threading.BoundedSemaphore(concurrency)

    def close(self) -> None:
        self._http.close()

    def _cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        price_in, price_out = self.prices
        if price_in is None or price_out is None or input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * price_in + output_tokens * price_out) / 1e6

    def complete(self, prompt: str) -> JudgeCall:
        """Ask the judge; never raises: failures are a call with status error / timeout."""
        call = JudgeCall(self.model, prompt)
        body = {"model": self.model, "temperature": 0, "messages": [{"role": "user", "content": prompt}],
                "response_format": {"type": "json_object"}}
        began = time.perf_counter()
        with self._slots:
            for attempt in range(self.max_retries + 1):
                call.attempts = attempt + 1
                wait = self.backoff_s * 2 ** attempt
                try:
                    response = self._http.post("/chat/completions", json=body)
                except httpx.TimeoutException as exc:
                    call.status, call.error = "timeout", f"timeout: {exc}"[:500]
                except httpx.HTTPError as exc:
                    call.status, call.error = "error", f"{type(exc).__name__}: {exc}"[:500]
                else:
                    if response.status_code in RETRY_STATUSES:
                        call.status, call.error = "error", f"HTTP {response.status_code}: {response.text[:300]}"
                        retry_after = response.headers.get("retry-after")
                        if retry_after and retry_after.replace(".", "", 1).isdigit():
                            wait = min(float(retry_after), 10.0)
                    elif response.status_code >= 400:
                        call.status, call.error = "error", f"HTTP {response.status_code}: {response.text[:300]}"
                        break  # a bad request stays bad
                    else:
                        self._read(call, response)
                        break
                if attempt < self.max_retries:
                    time.sleep(wait)
        call.latency_ms = (time.perf_counter() - began) * 1000
        return call

    def _read(self, call: JudgeCall, response: httpx.Response) -> None:
        try:
            payload = response.json()
            call.raw_answer = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            call.status, call.error, call.raw_answer = "error", f"unreadable response: {exc}", response.text[:2000]
            return
        usage = payload.get("usage") or {}
        call.input_tokens, call.output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        call.cost_usd = self._cost(call.input_tokens, call.output_tokens)
        call.status, call.error = "ok", None


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_verdict(raw: str | None, scale: tuple[float, float] = (0.0, 1.0)) -> tuple[float | None, str | None, str]:
    """(score in [0, 1], the judge's reason, parse status) from an answer asked as JSON
    ``{"score": <number in scale>, "reason": "..."}``; tolerates code fences and text around the object, and a
    bare number. Out of scale or unreadable: (None, None, 'malformed')."""
    if raw is None:
        return None, None, "empty"
    low, high = scale
    match = _JSON_OBJECT.search(raw)
    value: Any = None
    reason = None
    if match:
        try:
            parsed = json.loads(match.group())
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            value, reason = parsed.get("score"), parsed.get("reason")
    if value is None:
        bare = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*", raw)
        value = bare.group(1) if bare else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, None, "malformed"
    if not low <= number <= high:
        return None, None, "malformed"
    return (number - low) / (high - low), (str(reason) if reason is not None else None), "ok"


__all__ = ["JudgeCall", "JudgeClient", "RETRY_STATUSES", "parse_verdict"]
