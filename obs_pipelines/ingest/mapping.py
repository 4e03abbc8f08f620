"""Map OTLP/JSON trace payloads onto rows of the `spans` contract (see docs/architecture.md).

Pure Python, no Dagster. One pass over each span's attributes: every attribute key is looked up once
(`_KEYINFO`, a cache over `_KEYMAP`); keys of a known convention become candidates for a column, everything else is copied to
`attributes` unchanged (flattened keys as they came).

Rules worth knowing downstream (the full tables are in `ingest/MAPPING.md`):

* kind — first decisive hint wins: Langfuse `langfuse.observation.type` (except the generic SPAN),
  OpenInference `openinference.span.kind`, Traceloop `traceloop.span.kind`, Traceloop `llm.request.type`,
  OTel GenAI `gen_ai.operation.name`, Vercel `ai.operationId`, LangSmith `langsmith.span.kind`, then a
  Langfuse SPAN -> chain, a tool name -> tool, an agent name -> agent, a model name -> llm, else other.
  An unknown value of an explicit kind key (e.g. `openinference.span.kind = "WIDGET"`) gives "other".
* tokens and cost are stored only on `llm` and `embedding` spans: on agent / chain / tool spans the usage
  an instrumentation reports is a roll-up of the child calls (pydantic-ai's agent run, Vercel's
  `ai.generateText`), so it stays in `attributes` and summing the columns over spans never double counts.
* input_tokens includes cached tokens (OTel and OpenInference counts already do; Langfuse
  `usage_details.input` does not, the cache_read count is added back).
* a model call with no token attribute at all may carry the provider's raw response (OpenAI chat /
  responses, Anthropic) as its output: its `usage` (and `model`) are read from it (`_body_usage`).
* model = response model if known, else request model; provider lowercase (Vercel "openai.responses" ->
  "openai").
* route / user_id / session_id are trace-level: taken from any span of the trace in the same payload and
  propagated (route to every span; user and session to spans that have none). route falls back to the
  root span's name.
* a candidate that lost to a higher-priority key stays in `attributes` unless it has the same value.
* wrong types (tokens "abc") -> the column is None, the raw value stays in `attributes`, and a note goes
  to `attributes["obs.ingest_warnings"]`. NUL characters become U+FFFD.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, ClassVar, cast

import orjson

from obs_pipelines.ingest.limits import json_recursion_room
from obs_pipelines.store.schema import MODEL_CALL_KINDS, SPAN_COLUMNS

ROW_COLUMNS: tuple[str, ...] = tuple(c for c in SPAN_COLUMNS if c != "ingested_at")
WARNINGS_KEY = "obs.ingest_warnings"
MAX_BIGINT = (1 << 63) - 1

_EPOCH = datetime(1970, 1, 1)
_NUL = "\x00"
_REPLACEMENT = "\ufffd"


@dataclass(slots=True)
class Reject:
    """One span (or payload part) that could not become a row."""

    reason: str
    payload: str  # the raw span as JSON text (NUL escaped)
    location: str = ""  # where inside the payload, e.g. "resourceSpans[0].scopeSpans[1].spans[3]"


# ---- small helpers --------------------------------------------------------------------------------


def _clean_str(s: str) -> str:
    return s.replace(_NUL, _REPLACEMENT) if _NUL in s else s


def dumps_text(value) -> str:
    """JSON text of any decoded value, never raising (surrogates escaped, unknown types as str)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except Exception:  # noqa: BLE001 - surrogates, >64-bit ints, deeper than orjson's 255 levels ...
        with json_recursion_room():
            return json.dumps(value, ensure_ascii=True, default=str)


def escape_payload(text: str) -> str:
    """Payload text for `ingest_rejects` (PostgreSQL text cannot hold NUL)."""
    return text.replace(_NUL, "\\u0000") if _NUL in text else text


def _any_value(v):
    """Decode an OTLP AnyValue (JSON mapping) into a plain Python value."""
    if type(v) is not dict:
        # lenient: a bare value instead of an AnyValue object
        if type(v) is str:
            return v.replace(_NUL, _REPLACEMENT) if _NUL in v else v
        if type(v) is list:
            return [_any_value(x) for x in v]
        return v
    x = v.get("stringValue")
    if x is not None:
        if type(x) is str:
            return x.replace(_NUL, _REPLACEMENT) if _NUL in x else x
        return x
    for k, x in v.items():
        if k == "intValue":
            try:
                n = int(x)
            except (TypeError, ValueError, OverflowError):  # text, NaN, Infinity / 1e999
                return _any_value(x) if type(x) is not float else repr(x)
            # OTLP ints are int64: one out of range is kept as its text (never a crash of the whole request)
            return n if -MAX_BIGINT - 1 <= n <= MAX_BIGINT else str(x)
        if k == "doubleValue":
            try:
                f = float(x)
            except (TypeError, ValueError):
                return _any_value(x)
            if f != f or f in (math.inf, -math.inf):
                return str(x) if type(x) is str else repr(f)  # JSON has no NaN / Infinity
            return f
        if k == "boolValue":
            return x if type(x) is bool else (str(x).lower() == "true")
        if k == "arrayValue":
            vals = x.get("values") if type(x) is dict else x
            return [_any_value(i) for i in vals or ()]
        if k == "kvlistValue":
            vals = x.get("values") if type(x) is dict else x
            return _kv_to_dict(vals)
        if k == "bytesValue":
            return x  # base64 text, as in the JSON mapping
        if k == "stringValue":
            return None
    return None


def _kv_to_dict(kvs) -> dict:
    out = {}
    if type(kvs) is dict:  # lenient: attributes given as a plain object
        for k, val in kvs.items():
            out[_clean_str(str(k))] = _any_value(val)
        return out
    for kv in kvs or ():
        if type(kv) is not dict:
            continue
        k = kv.get("key")
        if k is None:
            continue
        if type(k) is not str:
            k = str(k)
        if _NUL in k:
            k = k.replace(_NUL, _REPLACEMENT)
        out[k] = _any_value(kv.get("value"))
    return out


def normalize_id(value, nbytes: int) -> str | None:
    """Lowercase hex of a trace (16 bytes) / span (8 bytes) id given as hex or base64; None if invalid."""
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray)) and len(value) == nbytes:
            raw = bytes(value)
            return raw.hex() if any(raw) else None
        return None
    if len(value) == 2 * nbytes:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
        if raw is not None and len(raw) == nbytes:
            return raw.hex() if any(raw) else None
    try:
        if "-" in value or "_" in value:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        else:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != nbytes or not any(raw):
        return None
    return raw.hex()


# ---- enums ---------------------------------------------------------------------------------------

_OTEL_SPAN_KIND = {
    0: None,
    1: None,  # INTERNAL is the default: not recorded
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_UNSPECIFIED": None,
    "SPAN_KIND_INTERNAL": None,
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
    "INTERNAL": None,
    "SERVER": "server",
    "CLIENT": "client",
    "PRODUCER": "producer",
    "CONSUMER": "consumer",
}
for _k in list(_OTEL_SPAN_KIND):
    if isinstance(_k, int):
        _OTEL_SPAN_KIND[str(_k)] = _OTEL_SPAN_KIND[_k]

_STATUS_ERROR = {2, "2", "STATUS_CODE_ERROR", "ERROR", "error", "Error"}

# ---- kind hints ----------------------------------------------------------------------------------

_OPENINFERENCE_KIND = {
    "LLM": "llm",
    "RETRIEVER": "retrieval",
    "RERANKER": "reranker",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "EMBEDDING": "embedding",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "PROMPT": "chain",
    "UNKNOWN": "other",
}
_LANGFUSE_KIND = {
    "GENERATION": "llm",
    "SPAN": None,  # generic: decided by the other hints, else "chain"
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "EVALUATOR": "evaluator",
    "GUARDRAIL": "guardrail",
    "EVENT": "other",
}
_TRACELOOP_KIND = {
    "workflow": "chain",
    "task": "chain",
    "agent": "agent",
    "tool": "tool",
    "unknown": "other",
}
_LLM_REQUEST_TYPE = {
    "chat": "llm",
    "completion": "llm",
    "embedding": "embedding",
    "rerank": "reranker",
}
_GENAI_OPERATION = {
    "chat": "llm",
    "text_completion": "llm",
    "completion": "llm",
    "generate_content": "llm",
    "responses": "llm",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
    "chain": "chain",
    "retrieval": "retrieval",
    "retrieve": "retrieval",
    "rerank": "reranker",
}
_LANGSMITH_KIND = {
    "llm": "llm",
    "chat_model": "llm",
    "tool": "tool",
    "chain": "chain",
    "retriever": "retrieval",
    "embedding": "embedding",
    "prompt": "chain",
    "parser": "chain",
}


def _vercel_kind(op: str) -> str:
    if op.endswith((".doGenerate", ".doStream")):
        return "llm"
    if op.endswith(".doEmbed"):
        return "embedding"
    if op == "ai.toolCall":
        return "tool"
    return "chain"


# ---- value converters ----------------------------------------------------------------------------


def _as_int(v):
    """A token count: non-negative integer within BIGINT, else None."""
    t = type(v)
    if t is int:
        n = v
    elif t is str:
        try:
            n = int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                return None
            if not f.is_integer():
                return None
            n = int(f)
    elif t is float:
        if v != v or v in (math.inf, -math.inf) or not v.is_integer():
            return None
        n = int(v)
    else:
        return None
    if n < 0 or n > MAX_BIGINT:
        return None
    return n


def _as_float(v):
    t = type(v)
    if t is float or t is int:
        f = float(v)
    elif t is str:
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    if f != f or f in (math.inf, -math.inf):
        return None
    return f


def _as_text(v):
    t = type(v)
    if t is str:
        return v
    if t is int or t is float:
        return str(v)
    return None


def _as_content(v):
    """input / output: text as captured; structured values as JSON text."""
    if type(v) is str:
        return v
    if v is None:
        return None
    return dumps_text(v)


# ---- the key table -------------------------------------------------------------------------------
# One convention per group of attribute keys that compete for one column (or one hint): its keys, best
# first (a key's priority is its position; lower wins), the column its winner fills and the converter that
# checks the value (a group without column is a hint for the kind or a Langfuse detail), and keep=True when
# the key also stays in attributes (it carries more than the column does). `Group` numbers the groups in
# this order; every count and lookup below is derived from this table.


@dataclass(frozen=True, slots=True)
class _Convention:
    group: str
    keys: tuple[str, ...]  # "" holds a priority slot for a candidate re-assembled from indexed keys
    column: str | None = None
    convert: Callable[[Any], Any] | None = None
    keep: bool = False


_CONVENTIONS: tuple[_Convention, ...] = (
    _Convention(
        "MODEL_RESP",
        (
            "gen_ai.response.model",
            "ai.response.model",
            "llm.response.model",
        ),
        column="model", convert=_as_text,
    ),
    _Convention(
        "MODEL_REQ",
        (
            "langfuse.observation.model.name",
            "llm.model_name",
            "gen_ai.request.model",
            "ai.model.id",
            "llm.request.model",
            "embedding.model_name",
            "reranker.model_name",
        ),
        column="model", convert=_as_text,
    ),
    _Convention(
        "PROVIDER",
        (
            "gen_ai.provider.name",
            "llm.provider",
            "gen_ai.system",
            "llm.system",
            "ai.model.provider",
        ),
        column="provider", convert=_as_text,
    ),
    _Convention(
        "IN",
        (
            "gen_ai.usage.input_tokens",
            "llm.token_count.prompt",
            "gen_ai.usage.prompt_tokens",
            "ai.usage.inputTokens",
            "ai.usage.promptTokens",
            "llm.usage.prompt_tokens",
        ),
        column="input_tokens", convert=_as_int,
    ),
    _Convention(
        "OUT",
        (
            "gen_ai.usage.output_tokens",
            "llm.token_count.completion",
            "gen_ai.usage.completion_tokens",
            "ai.usage.outputTokens",
            "ai.usage.completionTokens",
            "llm.usage.completion_tokens",
        ),
        column="output_tokens", convert=_as_int,
    ),
    _Convention(
        "CACHE",
        (
            "gen_ai.usage.cache_read.input_tokens",
            "llm.token_count.prompt_details.cache_read",
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.cached_input_tokens",
            "gen_ai.usage.cached_tokens",
            "ai.usage.cachedInputTokens",
            "llm.usage.cache_read_input_tokens",
        ),
        column="cached_input_tokens", convert=_as_int,
    ),
    _Convention(
        "COST",
        (
            "llm.cost.total",
            "gen_ai.usage.cost",
            "operation.cost",
        ),
        column="cost_usd", convert=_as_float,
    ),
    _Convention(
        "INPUT",
        (
            "gen_ai.input.messages",
            "input.value",
            "langfuse.observation.input",
            "traceloop.entity.input",
            "ai.prompt.messages",
            "ai.prompt",
            "gen_ai.prompt",
            "",  # 7: gen_ai.prompt.N.* re-assembled
            "gen_ai.tool.call.arguments",
            "ai.toolCall.args",
        ),
        column="input", convert=_as_content,
    ),
    _Convention(
        "OUTPUT",
        (
            "gen_ai.output.messages",
            "output.value",
            "langfuse.observation.output",
            "traceloop.entity.output",
            "ai.response.text",
            "ai.response.object",
            "ai.response.toolCalls",
            "gen_ai.completion",
            "",  # 8: gen_ai.completion.N.* re-assembled
            "gen_ai.tool.call.result",
            "ai.toolCall.result",
        ),
        column="output", convert=_as_content,
    ),
    _Convention(
        "ROUTE",
        (
            "app.route",
            "http.route",
            "langfuse.trace.name",
            "traceloop.workflow.name",
        ),
        column="route", convert=_as_text,
    ),
    _Convention("USER", ("user.id", "langfuse.user.id", "enduser.id"), column="user_id", convert=_as_text),
    _Convention(
        "SESSION",
        (
            "session.id",
            "langfuse.session.id",
            "gen_ai.conversation.id",
        ),
        column="session_id", convert=_as_text,
    ),
    _Convention(
        "PROMPT_NAME",
        (
            "langfuse.observation.prompt.name",
            "traceloop.prompt.key",
        ),
        column="prompt_name", convert=_as_text,
    ),
    _Convention(
        "PROMPT_VERSION",
        (
            "langfuse.observation.prompt.version",
            "llm.prompt_template.version",
            "traceloop.prompt.version",
        ),
        column="prompt_version", convert=_as_text,
    ),
    _Convention("ERROR_TYPE", ("error.type", "exception.type"), column="error_type", convert=_as_text),
    _Convention(
        "ERROR_MSG",
        (
            "langfuse.observation.status_message",
            "exception.message",
        ),
        column="error_message", convert=_as_text,
    ),
    _Convention("LF_LEVEL", ("langfuse.observation.level",)),
    _Convention("LF_USAGE", ("langfuse.observation.usage_details",), keep=True),
    _Convention("LF_COST", ("langfuse.observation.cost_details",), keep=True),
    _Convention("K_LANGFUSE", ("langfuse.observation.type",)),
    _Convention("K_OPENINFERENCE", ("openinference.span.kind",)),
    _Convention("K_TRACELOOP", ("traceloop.span.kind",)),
    _Convention("K_REQUEST_TYPE", ("llm.request.type",), keep=True),
    _Convention("K_OPERATION", ("gen_ai.operation.name",), keep=True),
    _Convention("K_VERCEL", ("ai.operationId",), keep=True),
    _Convention("K_LANGSMITH", ("langsmith.span.kind",)),
    _Convention("K_TOOL", ("gen_ai.tool.name", "tool.name", "ai.toolCall.name"), keep=True),
    _Convention("K_AGENT", ("gen_ai.agent.name",), keep=True),
)
# the functional API builds an IntEnum class; pyright types that call's result as a member, not a class
Group = cast("type[IntEnum]", IntEnum("Group", [c.group for c in _CONVENTIONS], start=0))
_NGROUPS = len(Group)


class _G:
    """The same numbers as plain class attributes: `best[_G.INPUT]` in the per-span code costs a third of an
    IntEnum member lookup. Declared here for the type checker, set from `Group` just below."""

    MODEL_RESP: ClassVar[int]
    MODEL_REQ: ClassVar[int]
    PROVIDER: ClassVar[int]
    IN: ClassVar[int]
    OUT: ClassVar[int]
    CACHE: ClassVar[int]
    COST: ClassVar[int]
    INPUT: ClassVar[int]
    OUTPUT: ClassVar[int]
    ROUTE: ClassVar[int]
    USER: ClassVar[int]
    SESSION: ClassVar[int]
    PROMPT_NAME: ClassVar[int]
    PROMPT_VERSION: ClassVar[int]
    ERROR_TYPE: ClassVar[int]
    ERROR_MSG: ClassVar[int]
    LF_LEVEL: ClassVar[int]
    LF_USAGE: ClassVar[int]
    LF_COST: ClassVar[int]
    K_LANGFUSE: ClassVar[int]
    K_OPENINFERENCE: ClassVar[int]
    K_TRACELOOP: ClassVar[int]
    K_REQUEST_TYPE: ClassVar[int]
    K_OPERATION: ClassVar[int]
    K_VERCEL: ClassVar[int]
    K_LANGSMITH: ClassVar[int]
    K_TOOL: ClassVar[int]
    K_AGENT: ClassVar[int]


if set(_G.__annotations__) != set(Group.__members__):
    raise RuntimeError("mapping._G does not declare exactly the groups of _CONVENTIONS")
for _g in Group:
    setattr(_G, _g.name, int(_g))
del _g

_KEYMAP: dict[str, tuple[int, int, bool]] = {
    key: (group, prio, convention.keep)
    for group, convention in enumerate(_CONVENTIONS)
    for prio, key in enumerate(convention.keys)
    if key
}
_G_CONV = {g: c.convert for g, c in enumerate(_CONVENTIONS) if c.convert is not None}
_G_CONV_NAMES: dict[int, str] = {g: c.column for g, c in enumerate(_CONVENTIONS) if c.column is not None}


# groups whose winning key's value is fully represented by a column (removed from attributes)
_INDEXED_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
)
_TOKEN_KINDS = frozenset(MODEL_CALL_KINDS)
_USAGE_INPUT_KEYS = ("input", "input_tokens", "prompt_tokens", "promptTokens", "inputTokens")
_USAGE_OUTPUT_KEYS = ("output", "output_tokens", "completion_tokens", "completionTokens", "outputTokens")
_USAGE_CACHE_KEYS = (
    "input_cache_read",
    "cache_read_input_tokens",
    "cache_read",
    "input_cached_tokens",
    "cached_tokens",
    "prompt_details.cache_read",
)


# ---- key classification cache --------------------------------------------------------------------
# attribute key -> (0, group, priority, keep) for keys of a known convention, _PLAIN for keys copied to
# attributes as they are, (1, bucket, index, field, raw_bucket) for indexed keys. Filled lazily,
# bounded (high-cardinality keys beyond the bound are classified each time).

_PLAIN = (2,)
_KEYINFO: dict[str, tuple] = {k: (0, g, p, keep) for k, (g, p, keep) in _KEYMAP.items()}
_KEYINFO_MAX = 200_000
_INDEXED_BUCKETS = (
    ("gen_ai.prompt.", "p", "p_raw"),
    ("gen_ai.completion.", "c", "c_raw"),
    ("retrieval.documents.", "r", None),
    ("reranker.output_documents.", "ro", None),
    ("reranker.input_documents.", "ri", None),
)


def _classify_key(k: str) -> tuple:
    info = _PLAIN
    if k.startswith(_INDEXED_PREFIXES):
        for prefix, bucket, raw_bucket in _INDEXED_BUCKETS:
            if k.startswith(prefix):
                idx, _, field = k[len(prefix) :].partition(".")
                if field and idx.isdigit():
                    if bucket in ("r", "ro", "ri") and field.startswith("document."):
                        field = field[9:]
                    info = (1, bucket, int(idx), field, raw_bucket)
                break
    if len(_KEYINFO) < _KEYINFO_MAX:
        _KEYINFO[k] = info
    return info


def _strip_error_type(s: str) -> str:
    s = s.strip()
    if s.startswith(("<class '", '<class "')) and s.endswith(("'>", '">')):
        s = s[8:-2]
    return s


def _parse_json_obj(v):
    if type(v) is dict:
        return v
    if type(v) is str and v[:1] == "{":
        try:
            obj = orjson.loads(v)
        except orjson.JSONDecodeError:
            return None
        return obj if type(obj) is dict else None
    return None


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _prio(c):
    return c[0]


def _invalid(c, attrs: dict, warns: list, column: str) -> None:
    """A candidate of the wrong type: the column stays None, the raw value stays in attributes."""
    attrs[c[1]] = c[2]
    warns.append(f"{column}: {c[1]}={_short(c[2])} is not a valid value; kept in attributes")


def _resolve_multi(multi: dict, best: list, attrs: dict, warns: list) -> None:
    """Groups with several candidates: the best-priority *valid* one wins (into best[g]); losers stay in
    attributes unless they carry the winner's value."""
    for g, lst in multi.items():
        lst.sort(key=_prio)
        conv = _G_CONV.get(g)
        if conv is None:  # kind hints: first by priority, others kept
            best[g] = lst[0]
            for c in lst[1:]:
                attrs[c[1]] = c[2]
            continue
        winner = None
        for c in lst:
            if winner is None:
                if conv(c[2]) is not None:
                    winner = c
                else:
                    _invalid(c, attrs, warns, _G_CONV_NAMES[g])
            elif c[2] != winner[2] and conv(c[2]) != conv(winner[2]):
                attrs[c[1]] = c[2]
        best[g] = winner


def _documents(bucket: dict) -> list[dict]:
    docs = []
    for i in sorted(bucket):
        doc = {}
        for f, v in bucket[i].items():
            if f == "score" and type(v) is not float:
                fv = _as_float(v)
                if fv is not None:
                    v = fv
            doc[f] = v
        docs.append(doc)
    return docs


_SECONDS: dict[int, tuple[int, int, int, int, int, int]] = {}


def _ns_to_dt(ns: int) -> datetime:
    sec, rem = divmod(ns, 1_000_000_000)
    parts = _SECONDS.get(sec)
    if parts is None:
        if len(_SECONDS) > 200_000:
            _SECONDS.clear()
        d = _EPOCH + timedelta(seconds=sec)
        parts = _SECONDS[sec] = (d.year, d.month, d.day, d.hour, d.minute, d.second)
    return datetime(*parts, rem // 1000)


def _id(raw, nbytes: int, cache: dict):
    """Normalized id via a per-payload cache (parent ids and trace ids repeat)."""
    if type(raw) is not str:
        return normalize_id(raw, nbytes)
    h = cache.get(raw)
    if h is None:
        h = normalize_id(raw, nbytes)
        if h is None:
            return None
        cache[raw] = h
    return h if len(h) == 2 * nbytes else None


# ---- one span: its sections, in the order they fill `attrs` (the order is part of the stored row) ---------


def map_span(sp: dict, service_name=None, scope_name=None, resource_extra=None, _ids: dict | None = None):
    """Map one OTLP/JSON span. Returns (row, route_candidate) or a reject reason (str).

    route_candidate is (priority, key, value) of the best trace-level route attribute on this span.
    """
    if type(sp) is not dict:
        return "span is not an object"
    ids = _ids if _ids is not None else {}
    span_ids = _span_ids(sp, ids)
    if type(span_ids) is str:
        return span_ids
    times = _span_times(sp)
    if type(times) is str:
        return times

    warns: list[str] = []
    attrs: dict = {}
    best: list = [None] * _NGROUPS
    parent = _parent(sp, ids, attrs, warns)
    raw_attrs = sp.get("attributes")
    multi = indexed = None
    if raw_attrs:
        multi, indexed = _scan_attributes(raw_attrs, attrs, best, warns)
    error_type_ev = error_msg_ev = None
    events = sp.get("events")
    if events:
        error_type_ev, error_msg_ev, multi = _events(events, attrs, best, multi)
    links = sp.get("links")
    if links:
        _links(links, attrs)
    if indexed:
        multi = _indexed(indexed, attrs, best, multi)
    if multi is not None:
        _resolve_multi(multi, best, attrs, warns)

    kind = _kind(best, attrs)
    # sections whose groups are all absent are skipped (a call per span costs ingest speed)
    if best[_G.MODEL_RESP] is None and best[_G.MODEL_REQ] is None and best[_G.PROVIDER] is None:
        model = provider = None
    else:
        model, provider = _model_provider(best, attrs, warns)
    if kind == "llm" or kind == "embedding":
        input_tokens, output_tokens, cached, cost, model = _usage(best, attrs, warns, model)
    else:
        input_tokens = output_tokens = cached = cost = None
        for c in (best[_G.IN], best[_G.OUT], best[_G.CACHE], best[_G.COST]):
            if c is not None:
                attrs[c[1]] = c[2]  # a roll-up of the child calls: kept, never summed
    if best[_G.INPUT] is None and best[_G.OUTPUT] is None and not indexed:
        inp = out = None
    else:
        inp, out = _input_output(best, indexed, attrs)
    st = sp.get("status")
    if not st and best[_G.LF_LEVEL] is None and best[_G.ERROR_TYPE] is None and best[_G.ERROR_MSG] is None:
        status, error_type, error_message = "ok", None, None
    else:
        status, error_type, error_message = _status(st, best, attrs, warns, error_type_ev, error_msg_ev)
    if best[_G.PROMPT_NAME] is None and best[_G.PROMPT_VERSION] is None:
        prompt_name = prompt_version = None
    else:
        prompt_name, prompt_version = _prompt(best, attrs, warns)
    if best[_G.USER] is None and best[_G.SESSION] is None and best[_G.ROUTE] is None:
        user_id = session_id = route_cand = None
    else:
        user_id, session_id, route_cand = _trace_level(best, attrs, warns)
    name = _span_extras(sp, attrs, warns, scope_name, resource_extra)
    if warns:
        attrs[WARNINGS_KEY] = warns

    return {
        "trace_id": span_ids[0],
        "span_id": span_ids[1],
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "start_time": times[0],
        "end_time": times[1],
        "status": status,
        "error_type": error_type,
        "error_message": error_message,
        "service_name": service_name,
        "route": None,
        "model": model,
        "provider": provider,
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached,
        "cost_usd": cost,
        "user_id": user_id,
        "session_id": session_id,
        "input": inp,
        "output": out,
        "attributes": attrs,
    }, route_cand


# ---- ids and timing (a missing or invalid one rejects the span) ------------------------------------------


def _span_ids(sp: dict, ids: dict):
    """(trace_id, span_id) as lowercase hex, or a reject reason."""
    try:
        raw = sp["traceId"]
    except KeyError:
        raw = sp.get("trace_id")
    trace_id = ids.get(raw) if type(raw) is str else None
    if trace_id is None or len(trace_id) != 32:
        if raw is None or raw == "":
            return "missing trace id"
        trace_id = _id(raw, 16, ids)
        if trace_id is None:
            return f"invalid trace id {_short(raw)} (need 32 hex chars or base64 of 16 bytes, not all zero)"
    try:
        raw = sp["spanId"]
    except KeyError:
        raw = sp.get("span_id")
    if raw is None or raw == "":
        return "missing span id"
    span_id = _id(raw, 8, ids)
    if span_id is None:
        return f"invalid span id {_short(raw)} (need 16 hex chars or base64 of 8 bytes, not all zero)"
    return trace_id, span_id


def _span_times(sp: dict):
    """(start_time, end_time) as naive UTC datetimes, or a reject reason."""
    try:
        start_raw = sp["startTimeUnixNano"]
    except KeyError:
        start_raw = sp.get("start_time_unix_nano")
    try:
        end_raw = sp["endTimeUnixNano"]
    except KeyError:
        end_raw = sp.get("end_time_unix_nano")
    if not start_raw or start_raw == "0":
        return "missing start time"
    if not end_raw or end_raw == "0":
        return "missing end time"
    if type(start_raw) is bool or type(end_raw) is bool:
        return "invalid time (boolean)"
    try:
        start_ns = int(start_raw)
    except (ValueError, TypeError, OverflowError):
        return f"invalid start time {_short(start_raw)}"
    try:
        end_ns = int(end_raw)
    except (ValueError, TypeError, OverflowError):
        return f"invalid end time {_short(end_raw)}"
    if start_ns <= 0 or end_ns <= 0:
        return "non-positive timestamp"
    if end_ns < start_ns:
        return f"end time before start time (end - start = {(end_ns - start_ns) / 1e9:.6f} s)"
    try:
        return _ns_to_dt(start_ns), _ns_to_dt(end_ns)
    except (OverflowError, ValueError):
        return "timestamp out of range"


def _parent(sp: dict, ids: dict, attrs: dict, warns: list):
    """The parent span id; an invalid one is kept in attributes and the span stored as a root."""
    raw = sp.get("parentSpanId")
    if raw is None:
        raw = sp.get("parent_span_id")
    parent = None
    if raw:
        parent = _id(raw, 8, ids)
        if parent is None and not (type(raw) is str and not raw.strip("0=A")):
            attrs["otel.parent_span_id"] = _clean_str(raw) if type(raw) is str else raw
            warns.append(f"parent_span_id: {_short(raw)} is not a valid span id; stored as root")
    return parent


# ---- attributes, events, links, indexed attributes: candidates for the columns ---------------------------


def _scan_attributes(raw_attrs, attrs: dict, best: list, warns: list):
    """One pass over the span's attributes: each key is a column candidate, indexed or copied as it is.

    Fills `best` (the first candidate per group) and returns (multi, indexed): the further candidates per
    group and the indexed keys per bucket (each None when there are none).
    """
    multi: dict | None = None
    indexed: dict | None = None
    if type(raw_attrs) is dict:
        raw_attrs = [{"key": k, "value": v} for k, v in raw_attrs.items()]
    keyinfo = _KEYINFO
    for kv in raw_attrs:
        if type(kv) is not dict:
            warns.append(f"attribute entry {_short(kv)} is not an object; dropped")
            continue
        try:
            k = kv["key"]
            val = kv["value"]
        except KeyError:
            k = kv.get("key")
            val = kv.get("value")
        if type(k) is not str:
            if k is None:
                warns.append(f"attribute entry without key {_short(kv)}; dropped")
                continue
            k = str(k)
        if _NUL in k:
            k = k.replace(_NUL, _REPLACEMENT)
        if type(val) is dict and "stringValue" in val:
            v = val["stringValue"]
            if type(v) is str:
                if _NUL in v:
                    v = v.replace(_NUL, _REPLACEMENT)
            else:
                v = _any_value(v)
        elif type(val) is dict and "intValue" in val and type(val["intValue"]) is str and val["intValue"].isdigit():
            v = int(val["intValue"])
        else:
            v = _any_value(val)
        info = keyinfo.get(k)
        if info is None:
            info = _classify_key(k)
        if info is _PLAIN:
            attrs[k] = v
            continue
        if info[0] == 0:  # a key of a known convention: candidate for a column
            g = info[1]
            cur = best[g]
            if cur is None:
                best[g] = (info[2], k, v)
            else:
                if multi is None:
                    multi = {}
                lst = multi.get(g)
                if lst is None:
                    multi[g] = [cur, (info[2], k, v)]
                else:
                    lst.append((info[2], k, v))
            if info[3]:
                attrs[k] = v
            continue
        # indexed key (retrieval.documents.N.document.id ...): (1, bucket, index, field)
        if indexed is None:
            indexed = {}
        bucket = indexed.get(info[1])
        if bucket is None:
            bucket = indexed[info[1]] = {}
        item = bucket.get(info[2])
        if item is None:
            bucket[info[2]] = {info[3]: v}
        else:
            item[info[3]] = v
        if info[4]:
            raw_list = indexed.get(info[4])
            if raw_list is None:
                indexed[info[4]] = [(k, v)]
            else:
                raw_list.append((k, v))
    return multi, indexed


def _compete(best: list, multi: dict | None, g: int, c: tuple) -> dict | None:
    """Add candidate `c` to group `g`; returns `multi` (created when the group now has two)."""
    if best[g] is None:
        best[g] = c
        return multi
    if multi is None:
        multi = {}
    multi.setdefault(g, [best[g]]).append(c)
    return multi


def _events(events, attrs: dict, best: list, multi: dict | None):
    """Span events, kept in attributes; the first exception's type / message (for an error without
    error attributes) and GenAI content events (candidates for input / output).

    Returns (exception type, exception message, multi).
    """
    error_type_ev = error_msg_ev = None
    evs = []
    for ev in events:
        if type(ev) is not dict:
            continue
        ename = ev.get("name")
        eattrs = _kv_to_dict(ev.get("attributes"))
        if ename == "exception":
            if error_type_ev is None and error_msg_ev is None:
                error_type_ev = _as_text(eattrs.get("exception.type"))
                error_msg_ev = _as_text(eattrs.get("exception.message"))
        elif ename == "gen_ai.content.prompt" or ename == "gen_ai.content.completion":
            for ek, grp in (("gen_ai.prompt", _G.INPUT), ("gen_ai.completion", _G.OUTPUT)):
                if ek in eattrs:
                    multi = _compete(best, multi, grp, (50, "otel.event." + ek, eattrs[ek]))
        evs.append(
            {
                "name": _clean_str(ename) if type(ename) is str else ename,
                "time_unix_nano": ev.get("timeUnixNano"),
                "attributes": eattrs,
            }
        )
    if evs:
        attrs["otel.events"] = evs
    return error_type_ev, error_msg_ev, multi


def _links(links, attrs: dict) -> None:
    """Span links, kept in attributes (ids normalised when valid)."""
    out_links = []
    for ln in links:
        if type(ln) is dict:
            out_links.append(
                {
                    "trace_id": normalize_id(ln.get("traceId"), 16) or _any_value(ln.get("traceId")),
                    "span_id": normalize_id(ln.get("spanId"), 8) or _any_value(ln.get("spanId")),
                    "attributes": _kv_to_dict(ln.get("attributes")),
                }
            )
    if out_links:
        attrs["otel.links"] = out_links


def _indexed(indexed: dict, attrs: dict, best: list, multi: dict | None) -> dict | None:
    """Re-assembled indexed attributes: flattened prompt / completion messages (candidates for input /
    output) and the retrieval / reranker documents (kept in attributes as lists). Returns `multi`."""
    p = indexed.get("p")
    if p:
        multi = _compete(best, multi, _G.INPUT, (7, "gen_ai.prompt.*", [p[i] for i in sorted(p)]))
    p = indexed.get("c")
    if p:
        multi = _compete(best, multi, _G.OUTPUT, (8, "gen_ai.completion.*", [p[i] for i in sorted(p)]))
    p = indexed.get("r")
    if p:
        attrs["retrieval.documents"] = _documents(p)
    p = indexed.get("ro")
    if p:
        attrs["reranker.output_documents"] = _documents(p)
    p = indexed.get("ri")
    if p:
        attrs["reranker.input_documents"] = _documents(p)
    return multi


# ---- kind: the first decisive hint, one convention at a time ---------------------------------------------


def _kind(best: list, attrs: dict) -> str:
    """The span's kind from the first decisive hint (order in the module docstring)."""
    kind = None
    lf_generic = False
    c = best[_G.K_LANGFUSE]
    if c is not None:
        kind, lf_generic = _langfuse_kind(c, attrs)
    c = best[_G.K_OPENINFERENCE]
    if c is not None:
        kind = _explicit_kind(c, kind, attrs, _OPENINFERENCE_KIND, str.upper)
    c = best[_G.K_TRACELOOP]
    if c is not None:
        kind = _explicit_kind(c, kind, attrs, _TRACELOOP_KIND, str.lower)
    if kind is None:
        c = best[_G.K_REQUEST_TYPE]
        if c is not None and type(c[2]) is str:
            kind = _LLM_REQUEST_TYPE.get(c[2].lower())
    if kind is None:
        c = best[_G.K_OPERATION]
        if c is not None and type(c[2]) is str:
            kind = _GENAI_OPERATION.get(c[2].lower())
    if kind is None:
        c = best[_G.K_VERCEL]
        if c is not None and type(c[2]) is str:
            kind = _vercel_kind(c[2])
    c = best[_G.K_LANGSMITH]
    if c is not None:
        ls_kind = _LANGSMITH_KIND.get(c[2].lower()) if type(c[2]) is str else None
        if kind is None and ls_kind is not None:
            kind = ls_kind  # decided by langsmith.span.kind: fully represented by the column
        else:
            attrs[c[1]] = c[2]
    if kind is not None:
        return kind
    if lf_generic:
        return "chain"
    if best[_G.K_TOOL] is not None:
        return "tool"
    if best[_G.K_AGENT] is not None:
        return "agent"
    if best[_G.MODEL_REQ] is not None or best[_G.MODEL_RESP] is not None:
        return "llm"
    return "other"


def _langfuse_kind(c: tuple, attrs: dict):
    """Langfuse `langfuse.observation.type`: (kind or None for the generic SPAN, whether it was SPAN).

    The value stays in attributes unless the kind column represents it."""
    v = c[2]
    up = v.upper() if type(v) is str else v
    try:
        kind = _LANGFUSE_KIND[up]
    except (KeyError, TypeError):
        kind = "other"
    if kind is None or kind == "other":
        attrs[c[1]] = v
    return kind, kind is None


def _explicit_kind(c: tuple, kind: str | None, attrs: dict, table: dict, case: Callable[[str], str]) -> str | None:
    """An explicit kind key (OpenInference, Traceloop): decides an undecided kind (an unknown value gives
    "other"); its value stays in attributes unless the kind column represents it."""
    v = c[2]
    if kind is None:
        try:
            return table[case(v)]
        except (KeyError, TypeError):
            attrs[c[1]] = v
            return "other"
    attrs[c[1]] = v
    return kind


# ---- model, provider, usage ------------------------------------------------------------------------------


def _model_provider(best: list, attrs: dict, warns: list):
    """(model, provider): the response model if known, else the request model; provider lowercase."""
    model = None
    c = best[_G.MODEL_RESP]
    if c is not None:
        v = c[2]
        model = v if type(v) is str else _as_text(v)
        if model is None:
            _invalid(c, attrs, warns, "model")
    c = best[_G.MODEL_REQ]
    if c is not None:
        v = c[2]
        if model is None:
            model = v if type(v) is str else _as_text(v)
            if model is None:
                _invalid(c, attrs, warns, "model")
        elif v != model:
            attrs[c[1]] = v  # the request model, when the response model differs
    provider = None
    c = best[_G.PROVIDER]
    if c is not None:
        v = c[2]
        provider = v if type(v) is str else _as_text(v)
        if provider is None:
            _invalid(c, attrs, warns, "provider")
        else:
            provider = provider.lower()
            if best[_G.K_VERCEL] is not None and "." in provider:
                provider = provider.split(".", 1)[0]  # Vercel: "openai.responses" -> "openai"
    return model, provider


def _count(c: tuple, attrs: dict, warns: list, column: str):
    v = c[2]
    n = v if (type(v) is int and 0 <= v <= MAX_BIGINT) else _as_int(v)
    if n is None:
        _invalid(c, attrs, warns, column)
    return n


def _usage(best: list, attrs: dict, warns: list, model):
    """Tokens and cost of a model call: (input, output, cached, cost, model).

    Token attributes first, then Langfuse usage / cost details, then the raw provider response in the
    output (which may also name the model)."""
    input_tokens = output_tokens = cached = cost = None
    c = best[_G.IN]
    if c is not None:
        v = c[2]
        input_tokens = v if (type(v) is int and 0 <= v <= MAX_BIGINT) else _count(c, attrs, warns, "input_tokens")
    c = best[_G.OUT]
    if c is not None:
        v = c[2]
        output_tokens = v if (type(v) is int and 0 <= v <= MAX_BIGINT) else _count(c, attrs, warns, "output_tokens")
    c = best[_G.CACHE]
    if c is not None:
        v = c[2]
        cached = v if (type(v) is int and 0 <= v <= MAX_BIGINT) else _count(c, attrs, warns, "cached_input_tokens")
    c = best[_G.LF_USAGE]
    if c is not None and (input_tokens is None or output_tokens is None):
        input_tokens, output_tokens, cached = _langfuse_usage(c[2], input_tokens, output_tokens, cached, warns)
    elif best[_G.IN] is None and best[_G.OUT] is None and c is None and best[_G.OUTPUT] is not None:
        # no token attributes at all (agno): the raw provider response in the output may carry usage
        body = _body_usage(best[_G.OUTPUT][2])
        if body is not None:
            input_tokens, output_tokens, body_cached, body_model = body
            if cached is None:
                cached = body_cached
            if body_model is not None and best[_G.MODEL_RESP] is None and body_model != model:
                req = best[_G.MODEL_REQ]
                if req is not None:
                    attrs[req[1]] = req[2]  # the request model, as for a response model
                model = body_model
    c = best[_G.COST]
    if c is not None:
        cost = _as_float(c[2])
        if cost is None:
            _invalid(c, attrs, warns, "cost_usd")
    c = best[_G.LF_COST]
    if c is not None and cost is None:
        cost = _langfuse_cost(c[2], warns)
    return input_tokens, output_tokens, cached, cost, model


def _input_output(best: list, indexed: dict | None, attrs: dict):
    """(input, output) as text; re-assembled messages that did not win stay flattened, as they came."""
    inp = out = None
    c = best[_G.INPUT]
    if c is not None:
        v = c[2]
        inp = v if type(v) is str else _as_content(v)
    c = best[_G.OUTPUT]
    if c is not None:
        v = c[2]
        out = v if type(v) is str else _as_content(v)
    if indexed:
        for tag, key in (("p", "gen_ai.prompt.*"), ("c", "gen_ai.completion.*")):
            lst = indexed.get(tag + "_raw")
            if lst and key in attrs:
                del attrs[key]
                for k, v in lst:
                    attrs[k] = v
    return inp, out


# ---- status / error --------------------------------------------------------------------------------------


def _status(st, best: list, attrs: dict, warns: list, error_type_ev, error_msg_ev):
    """(status, error_type, error_message): OTel status or a Langfuse ERROR level; on an error the error
    attributes, else the exception event; on a success the error attributes stay in attributes."""
    status = "ok"
    status_msg = None
    if st:
        if type(st) is dict:
            if st.get("code") in _STATUS_ERROR:
                status = "error"
            m = st.get("message")
            if m:
                status_msg = (_clean_str(m) if type(m) is str else str(m))
    c = best[_G.LF_LEVEL]
    if c is not None:
        if type(c[2]) is str and c[2].upper() == "ERROR":
            status = "error"
        else:
            attrs[c[1]] = c[2]
    ct = best[_G.ERROR_TYPE]
    cm = best[_G.ERROR_MSG]
    if status != "error":
        if ct is not None:
            attrs[ct[1]] = ct[2]
        if cm is not None:
            attrs[cm[1]] = cm[2]
        if status_msg is not None:
            attrs["otel.status_message"] = status_msg
        return status, None, None
    error_type = None
    if ct is not None:
        error_type = _as_text(ct[2])
        if error_type is None:
            _invalid(ct, attrs, warns, "error_type")
    if error_type is None:
        error_type = error_type_ev
    if error_type is not None:
        error_type = _strip_error_type(error_type)
    error_message = status_msg
    if cm is not None:
        if error_message is None:
            error_message = _as_text(cm[2])
            if error_message is None:
                _invalid(cm, attrs, warns, "error_message")
        elif cm[2] != error_message:
            attrs[cm[1]] = cm[2]
    if error_message is None:
        error_message = error_msg_ev
    return status, error_type, error_message


# ---- prompt, trace-level fields, span-level extras -------------------------------------------------------


def _prompt(best: list, attrs: dict, warns: list):
    """(prompt_name, prompt_version)."""
    prompt_name = prompt_version = None
    c = best[_G.PROMPT_NAME]
    if c is not None:
        prompt_name = _as_text(c[2])
        if prompt_name is None:
            _invalid(c, attrs, warns, "prompt_name")
    c = best[_G.PROMPT_VERSION]
    if c is not None:
        prompt_version = _as_text(c[2])
        if prompt_version is None:
            _invalid(c, attrs, warns, "prompt_version")
    return prompt_name, prompt_version


def _text_column(c: tuple, attrs: dict, warns: list, column: str):
    v = c[2]
    text = v if type(v) is str else _as_text(v)
    if text is None:
        _invalid(c, attrs, warns, column)
    return text


def _trace_level(best: list, attrs: dict, warns: list):
    """(user_id, session_id, route candidate): propagated / resolved per trace by the payload mapper."""
    user_id = session_id = route_cand = None
    c = best[_G.USER]
    if c is not None:
        user_id = c[2] if type(c[2]) is str else _text_column(c, attrs, warns, "user_id")
    c = best[_G.SESSION]
    if c is not None:
        session_id = c[2] if type(c[2]) is str else _text_column(c, attrs, warns, "session_id")
    c = best[_G.ROUTE]
    if c is not None:
        rv = c[2] if type(c[2]) is str else _text_column(c, attrs, warns, "route")
        if rv is not None:
            route_cand = (c[0], c[1], rv)
            attrs[c[1]] = c[2]  # removed later when it is the trace's route
    return user_id, session_id, route_cand


def _span_extras(sp: dict, attrs: dict, warns: list, scope_name, resource_extra):
    """OTel span kind, scope and resource into attributes; returns the span name (NUL-free text)."""
    okind = sp.get("kind")
    if okind is not None and okind != 1:
        try:
            sk = _OTEL_SPAN_KIND[okind]
        except (KeyError, TypeError):
            sk = _any_value(okind)
            warns.append(f"otel span kind {_short(okind)} is unknown; kept as is")
        if sk is not None:
            attrs["otel.span_kind"] = sk
    if scope_name:
        attrs["otel.scope.name"] = scope_name
    if resource_extra:
        attrs["otel.resource"] = resource_extra
    name = sp.get("name")
    if name is not None:
        if type(name) is not str:
            name = str(name)
        if _NUL in name:
            name = name.replace(_NUL, _REPLACEMENT)
    return name


# ---- Langfuse details (JSON objects in one attribute) ----------------------------------------------------


def _langfuse_usage(raw, input_tokens, output_tokens, cached, warns):
    """Langfuse `usage_details` JSON: its `input` excludes cache reads, which are added back."""
    usage = _parse_json_obj(raw)
    if usage is None:
        warns.append("langfuse.observation.usage_details is not a JSON object")
        return input_tokens, output_tokens, cached
    lf_cache = None
    for uk in _USAGE_CACHE_KEYS:
        if uk in usage:
            lf_cache = _as_int(usage[uk])
            break
    if cached is None:
        cached = lf_cache
    if input_tokens is None:
        for uk in _USAGE_INPUT_KEYS:
            if uk in usage:
                n = _as_int(usage[uk])
                if n is None:
                    warns.append(f"input_tokens: usage_details[{uk!r}] is not a valid value")
                else:
                    input_tokens = n + (lf_cache or 0)
                break
    if output_tokens is None:
        for uk in _USAGE_OUTPUT_KEYS:
            if uk in usage:
                n = _as_int(usage[uk])
                if n is None:
                    warns.append(f"output_tokens: usage_details[{uk!r}] is not a valid value")
                else:
                    output_tokens = n
                break
    return input_tokens, output_tokens, cached


def _body_usage(v):
    """(input, output, cached, model) from a raw provider response body, or None.

    OpenAI chat completions (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`),
    OpenAI responses (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`) and Anthropic
    messages (`input_tokens` without cache reads/writes, which are added back, `cache_read_input_tokens`).
    Only text that looks like a JSON object mentioning "usage" is parsed: outputs are often large.
    """
    if type(v) is not str or v[:1] != "{" or '"usage"' not in v:
        return None
    body = _parse_json_obj(v)
    if body is None:
        return None
    usage = body.get("usage")
    if type(usage) is not dict:
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI chat completions
        inp = _as_int(usage.get("prompt_tokens"))
        out = _as_int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = _as_int(details.get("cached_tokens")) if type(details) is dict else None
    elif "input_tokens" in usage or "output_tokens" in usage:
        inp = _as_int(usage.get("input_tokens"))
        out = _as_int(usage.get("output_tokens"))
        details = usage.get("input_tokens_details")
        if type(details) is dict:  # OpenAI responses: input already includes cached tokens
            cached = _as_int(details.get("cached_tokens"))
        else:
            cache_read = _as_int(usage.get("cache_read_input_tokens"))
            cache_write = _as_int(usage.get("cache_creation_input_tokens"))
            cached = cache_read
            if inp is not None and (cache_read or cache_write):  # Anthropic: input excludes the cache
                inp += (cache_read or 0) + (cache_write or 0)
    else:
        return None
    if inp is None and out is None:
        return None
    model = body.get("model")
    return inp, out, cached, (model if type(model) is str and model else None)


def _langfuse_cost(raw, warns):
    cost = None
    cd = _parse_json_obj(raw)
    if cd is not None:
        total = cd.get("total")
        if total is not None:
            cost = _as_float(total)
        else:
            parts = [_as_float(x) for x in cd.values()]
            if parts and None not in parts:
                cost = sum(cast("list[float]", parts))  # no None, just checked
    if cost is None:
        warns.append("cost_usd: langfuse.observation.cost_details has no usable total")
    return cost


# ---- a payload -----------------------------------------------------------------------------------


def _resource_spans_of(payload) -> list | None:
    """The resourceSpans list of an ExportTraceServiceRequest (or of a bare ResourceSpans)."""
    if type(payload) is not dict:
        return None
    rs = payload.get("resourceSpans")
    if rs is None:
        rs = payload.get("resource_spans")
    if rs is None and ("scopeSpans" in payload or "instrumentationLibrarySpans" in payload):
        return [payload]
    return rs


def map_request(payload) -> tuple[list[dict], list[Reject]]:
    """Map one ExportTraceServiceRequest (OTLP/JSON, already decoded) into rows and rejects."""
    rs = _resource_spans_of(payload)
    if rs is None:
        what = "object" if type(payload) is dict else type(payload).__name__
        return [], [Reject(f"not an OTLP trace request: {what} without resourceSpans", escape_payload(dumps_text(payload)))]
    if type(rs) is not list:
        return [], [Reject("resourceSpans is not an array", escape_payload(dumps_text(payload)))]
    return map_resource_spans(rs)


def _resource(rs: dict):
    resource = rs.get("resource")
    if type(resource) is not dict:
        return None, None
    rattrs = _kv_to_dict(resource.get("attributes"))
    if not rattrs:
        return None, None
    sn = rattrs.pop("service.name", None)
    service_name = _as_text(sn) if sn is not None else None
    for k in [k for k in rattrs if k.startswith("telemetry.sdk.")]:
        del rattrs[k]
    return service_name, (rattrs or None)


def map_resource_spans(resource_spans: list) -> tuple[list[dict], list[Reject]]:
    """Map a list of OTLP/JSON `resourceSpans` entries (one payload) into rows and rejects.

    Trace-level fields (route, user_id, session_id) are resolved over all spans of the payload.
    """
    rows: list[dict] = []
    rejects: list[Reject] = []
    route_cands: list = []
    ids: dict = {}
    # trace_id -> [route_prio, route_key, route_value, user, user_from_root, session, session_from_root, root_name]
    traces: dict[str, list] = {}
    for ri, rs in enumerate(resource_spans):
        if type(rs) is not dict:
            rejects.append(Reject("resourceSpans entry is not an object", escape_payload(dumps_text(rs)), f"resourceSpans[{ri}]"))
            continue
        service_name, resource_extra = _resource(rs)
        scope_spans = rs.get("scopeSpans")
        if scope_spans is None:
            scope_spans = rs.get("instrumentationLibrarySpans") or rs.get("scope_spans") or ()
        if type(scope_spans) is not list:
            rejects.append(Reject("scopeSpans is not an array", escape_payload(dumps_text(rs)), f"resourceSpans[{ri}]"))
            continue
        for si, ss in enumerate(scope_spans):
            if type(ss) is not dict:
                rejects.append(
                    Reject("scopeSpans entry is not an object", escape_payload(dumps_text(ss)), f"resourceSpans[{ri}].scopeSpans[{si}]")
                )
                continue
            scope = ss.get("scope")
            if scope is None:
                scope = ss.get("instrumentationLibrary")
            scope_name = scope.get("name") if type(scope) is dict else None
            if scope_name is not None:
                scope_name = _clean_str(scope_name if type(scope_name) is str else str(scope_name))
            spans = ss.get("spans") or ()
            if type(spans) is not list:
                rejects.append(
                    Reject("spans is not an array", escape_payload(dumps_text(ss)), f"resourceSpans[{ri}].scopeSpans[{si}]")
                )
                continue
            for pi, sp in enumerate(spans):
                try:
                    res = map_span(sp, service_name, scope_name, resource_extra, ids)
                except Exception as exc:  # noqa: BLE001 - a mapping bug must not lose the record
                    res = f"mapping error: {type(exc).__name__}: {exc}"
                if isinstance(res, str):
                    rejects.append(
                        Reject(res, escape_payload(dumps_text(sp)), f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]")
                    )
                    continue
                row, rc = res
                rows.append(row)
                route_cands.append(rc)
                tid = row["trace_id"]
                t = traces.get(tid)
                if t is None:
                    t = traces[tid] = [99, None, None, None, False, None, False, None]
                is_root = row["parent_span_id"] is None
                if rc is not None and rc[0] < t[0]:
                    t[0], t[1], t[2] = rc
                u = row["user_id"]
                if u is not None and (t[3] is None or (is_root and not t[4])):
                    t[3] = u
                    t[4] = is_root
                s = row["session_id"]
                if s is not None and (t[5] is None or (is_root and not t[6])):
                    t[5] = s
                    t[6] = is_root
                if is_root and t[7] is None:
                    t[7] = row["name"]
    for row, rc in zip(rows, route_cands, strict=True):
        t = traces[row["trace_id"]]
        route = t[2] if t[2] is not None else t[7]
        row["route"] = route
        if rc is not None and rc[2] == route:
            del row["attributes"][rc[1]]
        if row["user_id"] is None:
            row["user_id"] = t[3]
        if row["session_id"] is None:
            row["session_id"] = t[5]
    return rows, rejects


__all__ = [
    "ROW_COLUMNS",
    "Reject",
    "WARNINGS_KEY",
    "dumps_text",
    "escape_payload",
    "map_request",
    "map_resource_spans",
    "map_span",
    "normalize_id",
]
