"""Contract rows -> OTLP/JSON (the inverse of what ingest does), built for speed.

``trace_to_otlp(rows)`` returns one ExportTraceServiceRequest dict: hex ids, span kind as an int,
times as int64 strings of nanoseconds, attributes as typed AnyValues (``intValue`` as a string).
Column values go back to the attribute keys real instrumentations write:

======================  ======================================================
column                  OTLP
======================  ======================================================
service_name            resource ``service.name``
kind                    ``openinference.span.kind`` (LLM, RETRIEVER, ...)
model                   ``gen_ai.response.model`` (not on failed calls that never got a response) and,
                        on llm/embedding spans, ``gen_ai.request.model`` unless attributes hold a
                        different request model; ``reranker.model_name`` on reranker spans
provider                ``gen_ai.provider.name``
prompt_name / _version  ``langfuse.observation.prompt.name`` / ``.version`` (int when numeric)
input/output/cached tok ``gen_ai.usage.input_tokens`` / ``output_tokens`` / ``cache_read.input_tokens``
cost_usd                ``llm.cost.total``
input / output          ``input.value`` / ``output.value``
route/user_id/session   ``app.route`` / ``user.id`` / ``session.id`` on the root span
status / error_*        status {code 2, message}, ``error.type``, an ``exception`` event
attributes              as they are; ``retrieval.documents`` [{id, content, score}] flattened to
                        ``retrieval.documents.N.document.id / .content / .score`` (the same for
                        ``reranker.output_documents`` / ``reranker.input_documents``)
======================  ======================================================

Constant key/value pairs are pre-serialized once (``orjson.Fragment``) and reused by ``encode_trace``
(the writer's path), so a span costs a few small dicts at most.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import orjson

from obs_pipelines.synth.catalog import ENVIRONMENT, SERVICE_VERSION

_EPOCH = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_Fragment = orjson.Fragment
_dumps = orjson.dumps

OPENINFERENCE_KINDS: dict[str, str] = {
    "llm": "LLM",
    "retrieval": "RETRIEVER",
    "reranker": "RERANKER",
    "tool": "TOOL",
    "agent": "AGENT",
    "chain": "CHAIN",
    "embedding": "EMBEDDING",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
    "other": "UNKNOWN",
}
# OTLP SpanKind: 1 INTERNAL, 2 SERVER, 3 CLIENT
_CLIENT_KINDS = frozenset(("llm", "embedding"))
SPAN_KIND_SERVER, SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 2, 1, 3

SCOPE = {"name": "support_assistant.tracing", "version": SERVICE_VERSION}
_RESOURCE_EXTRA = (
    ("service.version", SERVICE_VERSION),
    ("deployment.environment.name", ENVIRONMENT),
    ("telemetry.sdk.language", "python"),
    ("telemetry.sdk.name", "opentelemetry"),
    ("telemetry.sdk.version", "1.33.1"),
)
_STATUS_OK = _Fragment(b'{"code":1}')

# ---- typed AnyValue key/values ----------------------------------------------------------------------


def _any_value(v: object) -> dict | None:
    t = type(v)
    if t is str:
        return {"stringValue": v}
    if t is bool:
        return {"boolValue": v}
    if t is int:
        return {"intValue": str(v)}
    if t is float:
        return {"doubleValue": v}
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [a for a in (_any_value(x) for x in v) if a is not None]}}
    if isinstance(v, dict):
        return {
            "kvlistValue": {
                "values": [{"key": str(k), "value": a} for k, x in v.items() if (a := _any_value(x)) is not None]
            }
        }
    return {"stringValue": str(v)}


# Serialized key/value pairs, one cache per attribute key (string and int values separately, so True
# and 1 never meet). A cache that grows past _CACHE_MAX (a high-cardinality key) is simply emptied.
_CACHE_MAX = 4096
_STR_CACHES: dict[str, dict[str, bytes]] = {}
_INT_CACHES: dict[str, dict[int, bytes]] = {}
_LIST_CACHES: dict[str, dict[tuple[str, ...], bytes]] = {}  # lists of strings only
_KEY_PREFIX: dict[str, bytes] = {}
# per-call unique values: never worth caching
_NO_CACHE_KEYS = frozenset(("gen_ai.tool.call.id",))


def _prefix(key: str) -> bytes:
    p = _KEY_PREFIX.get(key)
    if p is None:
        p = _KEY_PREFIX[key] = b'{"key":' + _dumps(key) + b',"value":'
    return p


def _bounded_cache(caches: dict[str, dict], key: str) -> dict:
    """The cache of ``key`` in ``caches``, created on first use, emptied once it holds _CACHE_MAX values."""
    c = caches.get(key)
    if c is None:
        c = caches[key] = {}
    elif len(c) >= _CACHE_MAX:
        c.clear()
    return c


def _double_kv(key: str, v: float) -> bytes:
    return _prefix(key) + b'{"doubleValue":' + _dumps(v) + b"}}"


# v: Any in _kv_slow and _kv: they dispatch on `t = type(v)`, which the checker does not follow back to v
def _kv_slow(key: str, v: Any) -> bytes | None:
    """Serialize one attribute, filling the per-key caches for strings and ints."""
    t = type(v)
    if t is str:
        out = _prefix(key) + b'{"stringValue":' + _dumps(v) + b"}}"
        if key not in _NO_CACHE_KEYS:
            _bounded_cache(_STR_CACHES, key)[v] = out
        return out
    if t is int:
        out = _prefix(key) + b'{"intValue":"' + str(v).encode() + b'"}}'
        _bounded_cache(_INT_CACHES, key)[v] = out
        return out
    if t is float:
        return _double_kv(key, v)
    if t is bool:
        return _prefix(key) + (b'{"boolValue":true}}' if v else b'{"boolValue":false}}')
    if t is list and all(type(x) is str for x in v):  # e.g. finish reasons: a handful of distinct lists
        c = _bounded_cache(_LIST_CACHES, key)
        k = tuple(v)
        out = c.get(k)
        if out is None:
            out = c[k] = _prefix(key) + _dumps(_any_value(v)) + b"}"
        return out
    value = _any_value(v)
    return None if value is None else _prefix(key) + _dumps(value) + b"}"


def _kv(key: str, v: Any) -> bytes | None:
    t = type(v)
    if t is str:
        c = _STR_CACHES.get(key)
        if c is not None:
            out = c.get(v)
            if out is not None:
                return out
    elif t is int:
        c = _INT_CACHES.get(key)
        if c is not None:
            out = c.get(v)
            if out is not None:
                return out
    return _kv_slow(key, v)


# document lists re-nested by ingest: attribute key -> flattened keys per position and field
_DOC_LISTS = ("retrieval.documents", "reranker.output_documents", "reranker.input_documents")
_DOC_FIELDS = ("id", "content", "score")
_DOC_KEYS: dict[tuple[str, int], tuple[tuple[str, str], ...]] = {}


def _doc_keys(list_key: str, i: int) -> tuple[tuple[str, str], ...]:
    """((field, flattened attribute key), ...) of document i of a document list."""
    keys = _DOC_KEYS.get((list_key, i))
    if keys is None:
        keys = _DOC_KEYS[(list_key, i)] = tuple((f, f"{list_key}.{i}.document.{f}") for f in _DOC_FIELDS)
    return keys


# list key -> {(position, id, content): their key/values joined}: a document's text is serialized once
_DOC_CACHES: dict[str, dict[tuple, bytes]] = {}
_STR_OR_NONE = (str, type(None))


def _add_docs(list_key: str, docs: list, add) -> None:
    """Append the flattened key/values of a document list (id, content, score per document)."""
    for i, d in enumerate(docs):
        keys = _doc_keys(list_key, i)
        doc_id, content, score = d.get("id"), d.get("content"), d.get("score")
        if type(doc_id) in _STR_OR_NONE and type(content) in _STR_OR_NONE:  # (hashable, and no 1 == True)
            ck = (i, doc_id, content)
            b = _DOC_CACHES.get(list_key, {}).get(ck)
            if b is None:
                # a str id or content always serializes (only values of no JSON type give None)
                pairs = cast("Iterator[bytes]", (_kv(k, x) for (_, k), x in zip(keys, (doc_id, content), strict=False) if x is not None))
                b = _bounded_cache(_DOC_CACHES, list_key)[ck] = b",".join(pairs)
            if b:
                add(b)
        else:
            for (_, k), x in zip(keys, (doc_id, content), strict=False):  # id and content; the score follows
                if x is not None:
                    add(_kv(k, x))
        if type(score) is float:  # never cached
            add(_double_kv(keys[2][1], score))
        elif score is not None:
            add(_kv(keys[2][1], score))


def _ns(t: datetime | int) -> str:
    """Nanoseconds since the epoch as a string, from a naive UTC datetime or int microseconds."""
    if isinstance(t, int):
        return str(t * 1000)
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return str((t - _EPOCH) // _ONE_US * 1000)


def _str_cache(key: str) -> dict[str, bytes]:
    return _STR_CACHES.setdefault(key, {})


def _int_cache(key: str) -> dict[int, bytes]:
    return _INT_CACHES.setdefault(key, {})


_NO_CACHE: dict = {}  # always empty: values of this column are serialized every time
# (column, attribute key, cache of serialized pairs); caches are emptied in place, never replaced
_ROOT_COLUMNS = tuple(
    (col, key, _str_cache(key)) for col, key in (("route", "app.route"), ("user_id", "user.id"), ("session_id", "session.id"))
)
_PLAIN_COLUMNS = tuple(
    (col, key, _str_cache(key))
    for col, key in (("provider", "gen_ai.provider.name"), ("prompt_name", "langfuse.observation.prompt.name"))
)
_VALUE_COLUMNS = (
    ("input_tokens", "gen_ai.usage.input_tokens", _int_cache("gen_ai.usage.input_tokens")),
    ("output_tokens", "gen_ai.usage.output_tokens", _int_cache("gen_ai.usage.output_tokens")),
    ("cached_input_tokens", "gen_ai.usage.cache_read.input_tokens", _int_cache("gen_ai.usage.cache_read.input_tokens")),
    ("cost_usd", "llm.cost.total", _NO_CACHE),
    ("input", "input.value", _str_cache("input.value")),
    ("output", "output.value", _str_cache("output.value")),
    ("error_type", "error.type", _str_cache("error.type")),
)
_MODEL_CACHE = _str_cache("gen_ai.response.model")
_VERSION_KEY = "langfuse.observation.prompt.version"
_KIND_KV = {k: _kv_slow("openinference.span.kind", v) for k, v in OPENINFERENCE_KINDS.items()}
_UNKNOWN_KIND_KV = _kv_slow("openinference.span.kind", "UNKNOWN")


def _span(row: dict, root: dict | None) -> dict:
    kind = row["kind"]
    parts = [_KIND_KV.get(kind, _UNKNOWN_KIND_KV)]
    add = parts.append
    slow = _kv_slow
    is_root = row["parent_span_id"] is None
    for col, key, cache in _ROOT_COLUMNS:
        v = row[col]
        if v is not None and (is_root or root is None or v != root[col]):
            b = cache.get(v) if type(v) is str else None
            add(b if b is not None else slow(key, v))
    extra = row["attributes"] or {}
    status = row["status"]
    v = row["model"]
    if v is not None:
        if kind == "reranker":
            add(_kv("reranker.model_name", v))
        else:
            # attributes hold the request model only when it differs from the model column
            if kind in _CLIENT_KINDS and "gen_ai.request.model" not in extra:
                add(_kv("gen_ai.request.model", v))
            # a call that failed before any response only knows its request model
            if not (status == "error" and row["output_tokens"] is None and row["input_tokens"] is None):
                b = _MODEL_CACHE.get(v) if type(v) is str else None
                add(b if b is not None else slow("gen_ai.response.model", v))
    for col, key, cache in _PLAIN_COLUMNS:
        v = row[col]
        if v is not None:
            b = cache.get(v) if type(v) is str else None
            add(b if b is not None else slow(key, v))
    v = row["prompt_version"]
    if v is not None:
        add(_kv(_VERSION_KEY, int(v) if isinstance(v, str) and v.isdigit() else v))
    for col, key, cache in _VALUE_COLUMNS:
        v = row[col]
        if v is not None:
            b = cache.get(v)
            add(b if b is not None and type(v) is not bool else slow(key, v))
    if extra:
        str_caches, prefixes = _STR_CACHES, _KEY_PREFIX
        for key, v in extra.items():
            t = type(v)
            if t is str:
                c = str_caches.get(key)
                b = c.get(v) if c is not None else None
                add(b if b is not None else slow(key, v))
            elif t is float:
                p = prefixes.get(key) or _prefix(key)
                add(p + b'{"doubleValue":' + _dumps(v) + b"}}")
            elif t is list and key in _DOC_LISTS:
                _add_docs(key, v, add)
            elif v is not None:
                b = _kv(key, v)
                if b is not None:
                    add(b)

    end = row["end_time"]
    end = str(end * 1000) if type(end) is int else _ns(end)
    start = row["start_time"]
    span = {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
    }
    if not is_root:
        span["parentSpanId"] = row["parent_span_id"]
    span["name"] = row["name"]
    span["kind"] = SPAN_KIND_SERVER if is_root else (SPAN_KIND_CLIENT if kind in _CLIENT_KINDS else SPAN_KIND_INTERNAL)
    span["startTimeUnixNano"] = str(start * 1000) if type(start) is int else _ns(start)
    span["endTimeUnixNano"] = end
    # every column and attribute value of a stored row serializes (None only for values of no JSON type)
    span["attributes"] = _Fragment(b"[" + b",".join(cast("list[bytes]", parts)) + b"]")
    if status == "error":
        message = row["error_message"] or ""
        ev = [_kv("exception.message", message)]
        if row["error_type"] is not None:
            ev.insert(0, _kv("exception.type", row["error_type"]))
        attributes = b"[" + b",".join(cast("list[bytes]", ev)) + b"]"  # str values: always serialized
        span["events"] = [{"timeUnixNano": end, "name": "exception", "attributes": _Fragment(attributes)}]
        span["status"] = {"code": 2, "message": message}
    else:
        span["status"] = _STATUS_OK
    return span


_RESOURCE_CACHE: dict[str, object] = {}


def _resource(service_name: str | None) -> object:
    frag = _RESOURCE_CACHE.get(service_name or "")
    if frag is None:
        attrs = [{"key": "service.name", "value": {"stringValue": service_name or "unknown_service"}}]
        attrs += [{"key": k, "value": {"stringValue": v}} for k, v in _RESOURCE_EXTRA]
        frag = _RESOURCE_CACHE[service_name or ""] = _Fragment(_dumps({"attributes": attrs}))
    return frag


_SCOPE = _Fragment(_dumps(SCOPE))


def _request(trace: list[dict]) -> dict:
    root = next((r for r in trace if r["parent_span_id"] is None), None)
    by_service: dict[str | None, list] = {}
    for row in trace:
        by_service.setdefault(row["service_name"], []).append(_span(row, root))
    return {
        "resourceSpans": [
            {"resource": _resource(svc), "scopeSpans": [{"scope": _SCOPE, "spans": spans}]}
            for svc, spans in by_service.items()
        ]
    }


def encode_trace(trace: list[dict]) -> bytes:
    """The OTLP/JSON ExportTraceServiceRequest of a trace, serialized (one JSON document, no newline)."""
    return _dumps(_request(trace))


def trace_to_otlp(trace: list[dict]) -> dict:
    """One ``{"resourceSpans": [...]}`` ExportTraceServiceRequest (OTLP/JSON) for a trace's rows.

    Plain, freshly built dicts and lists (safe to mutate, to pass to ``json`` or protobuf's
    ``json_format.ParseDict``). ``encode_trace`` gives the same document serialized, faster.
    """
    return orjson.loads(encode_trace(trace))
