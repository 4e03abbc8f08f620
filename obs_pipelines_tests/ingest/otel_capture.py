"""Real spans from real instrumentation packages, exported the way a collector would write them.

Test helper (no pytest import): a fake OpenAI-compatible HTTP server on 127.0.0.1, a function that
drives the real `openai` client under an instrumentor and captures the finished spans, and writers
that turn SDK spans into OTLP/JSON lines in both id forms found in the wild:

* ``base64`` - protobuf's canonical JSON mapping (``MessageToDict``): bytes ids as base64, enums by
  name. This is what a Python program dumping ``ExportTraceServiceRequest`` with json_format writes.
* ``hex`` - the OTLP/JSON encoding the OTLP specification prescribes (and the collector's file
  exporter writes): trace/span ids as lowercase hex, enums as integers.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REQUEST_MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"  # what OpenAI answers for the alias: differs from the request
PROMPT_TOKENS = 21
COMPLETION_TOKENS = 7
CACHED_TOKENS = 16
COMPLETION_TEXT = "OpenTelemetry traces what your LLM app does."
RATE_LIMIT_MARKER = "PLEASE-RATE-LIMIT-THIS-REQUEST"
RATE_LIMIT_MESSAGE = (
    "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20s."
)
SERVICE_NAME = "chat-frontend"

ID_FORMS = ("hex", "base64")


# ---- fake OpenAI-compatible server ----------------------------------------------------------------


class _ChatCompletionsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every reply sets Content-Length

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append({"path": self.path, "body": body})  # type: ignore[attr-defined]
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._reply(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        if RATE_LIMIT_MARKER in json.dumps(body.get("messages", [])):
            self._reply(
                429,
                {
                    "error": {
                        "message": RATE_LIMIT_MESSAGE,
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                extra_headers={"retry-after": "20", "x-ratelimit-remaining-requests": "0"},
            )
            return
        self._reply(
            200,
            {
                "id": "chatcmpl-fake-0001",
                "object": "chat.completion",
                "created": 1731456237,
                "model": RESPONSE_MODEL,
                "system_fingerprint": "fp_0ba0d124f1",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": COMPLETION_TEXT, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                    "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
                },
            },
        )

    def _reply(self, code: int, payload: dict, extra_headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{len(self.server.requests)}")  # type: ignore[attr-defined]
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


@dataclass
class FakeOpenAIServer:
    base_url: str
    requests: list[dict]


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAIServer]:
    """An OpenAI-compatible server on a free 127.0.0.1 port, served from a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatCompletionsHandler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield FakeOpenAIServer(base_url=f"http://{host}:{port}/v1", requests=httpd.requests)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---- capture ---------------------------------------------------------------------------------------


@dataclass
class CapturedChatCalls:
    """The spans one instrumentation produced for a successful chat call and for a 429."""

    instrumentation: str
    success: Any  # opentelemetry.sdk.trace.ReadableSpan
    rate_limited: Any
    spans: list = field(default_factory=list)  # every finished span, in end order

    def attribute_dump(self) -> dict[str, dict]:
        return {"success": span_dump(self.success), "rate_limited": span_dump(self.rate_limited)}


def capture_chat_calls(instrumentor, base_url: str, instrumentation: str) -> CapturedChatCalls:
    """Instrument `openai` with `instrumentor`, make one successful and one rate-limited chat
    completion against `base_url`, uninstrument, and return the finished spans."""
    import openai
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def new_spans(before: int) -> list:
        return list(exporter.get_finished_spans())[before:]

    instrumentor.instrument(tracer_provider=provider)
    client = openai.OpenAI(base_url=base_url, api_key="sk-test-not-a-real-key", max_retries=0)
    try:
        client.chat.completions.create(
            model=REQUEST_MODEL,
            messages=[
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "What does OpenTelemetry do for an LLM app?"},
            ],
            temperature=0.2,
        )
        success = new_spans(0)
        try:
            client.chat.completions.create(
                model=REQUEST_MODEL,
                messages=[{"role": "user", "content": f"{RATE_LIMIT_MARKER} hello again"}],
            )
        except openai.RateLimitError:
            pass
        else:  # pragma: no cover - the fake server is broken
            raise AssertionError("the fake server did not answer 429")
        rate_limited = new_spans(len(success))
    finally:
        client.close()
        instrumentor.uninstrument()
        provider.shutdown()
    if len(success) != 1 or len(rate_limited) != 1:
        raise AssertionError(
            f"{instrumentation}: expected one span per call, got {len(success)} and {len(rate_limited)}: "
            f"{[s.name for s in exporter.get_finished_spans()]}"
        )
    return CapturedChatCalls(
        instrumentation=instrumentation,
        success=success[0],
        rate_limited=rate_limited[0],
        spans=list(exporter.get_finished_spans()),
    )


def span_dump(span) -> dict:
    """Everything about a span that matters for mapping, JSON-friendly (for reports and failures)."""
    return {
        "name": span.name,
        "span_kind": span.kind.name,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()},
        "events": [
            {"name": e.name, "attributes": {k: v for k, v in e.attributes.items()}} for e in span.events
        ],
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


# ---- OTLP/JSON -----------------------------------------------------------------------------------

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json_request(spans: Sequence, id_form: str) -> dict:
    """One ExportTraceServiceRequest for `spans` as OTLP/JSON, ids in `id_form` ("hex" or "base64")."""
    from google.protobuf.json_format import MessageToDict

    try:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    except ImportError:  # older releases only had the _internal path
        from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans

    if id_form not in ID_FORMS:
        raise ValueError(f"id_form must be one of {ID_FORMS}, not {id_form!r}")
    request = encode_spans(list(spans))
    if id_form == "base64":
        return MessageToDict(request)
    payload = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in payload.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _ids_to_hex(span)
                for link in span.get("links", []):
                    _ids_to_hex(link)
    return payload


def _ids_to_hex(obj: dict) -> None:
    for key in _ID_KEYS:
        if obj.get(key):
            obj[key] = base64.b64decode(obj[key]).hex()


def write_otlp_jsonl(path: Path, spans: Sequence, id_form: str) -> Path:
    """Write one OTLP/JSON line per span (one export request each, as a SimpleSpanProcessor feeding a
    collector's file exporter would produce)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for span in spans:
            fh.write(json.dumps(otlp_json_request([span], id_form), separators=(",", ":")) + "\n")
    return path


def hex_trace_id(span) -> str:
    return format(span.context.trace_id, "032x")


def hex_span_id(span) -> str:
    return format(span.context.span_id, "016x")
