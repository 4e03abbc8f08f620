"""Test helpers: a reference OTLP -> contract-row mapping (what a correct ingest yields) and a groundedness proxy."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_EPOCH = datetime(1970, 1, 1)

KIND_FROM_OPENINFERENCE = {
    "LLM": "llm",
    "RETRIEVER": "retrieval",
    "RERANKER": "reranker",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "EMBEDDING": "embedding",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
# attribute key -> contract column (the keys the generator documents; they leave `attributes`)
COLUMN_KEYS = {
    "gen_ai.response.model": "model",
    "gen_ai.provider.name": "provider",
    "langfuse.observation.prompt.name": "prompt_name",
    "langfuse.observation.prompt.version": "prompt_version",
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.cache_read.input_tokens": "cached_input_tokens",
    "llm.cost.total": "cost_usd",
    "input.value": "input",
    "output.value": "output",
    "error.type": "error_type",
    "app.route": "route",
    "user.id": "user_id",
    "session.id": "session_id",
}


def any_value(v: dict):
    (kind, x), = v.items()
    if kind == "intValue":
        return int(x)
    if kind == "arrayValue":
        return [any_value(a) for a in x.get("values", [])]
    return x


def _dt(ns: str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def otlp_to_rows(request: dict) -> list[dict]:
    """Reference ingest of one ExportTraceServiceRequest into `spans` rows (without ingested_at)."""
    rows = []
    for rs in request["resourceSpans"]:
        res = {a["key"]: any_value(a["value"]) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                attrs = {a["key"]: any_value(a["value"]) for a in sp.get("attributes", [])}
                row = {
                    "trace_id": sp["traceId"],
                    "span_id": sp["spanId"],
                    "parent_span_id": sp.get("parentSpanId") or None,
                    "name": sp["name"],
                    "kind": KIND_FROM_OPENINFERENCE.get(attrs.pop("openinference.span.kind", ""), "other"),
                    "start_time": _dt(sp["startTimeUnixNano"]),
                    "end_time": _dt(sp["endTimeUnixNano"]),
                    "status": "error" if sp.get("status", {}).get("code") == 2 else "ok",
                    "error_type": None,
                    "error_message": sp.get("status", {}).get("message") if sp.get("status", {}).get("code") == 2 else None,
                    "service_name": res.get("service.name"),
                    "route": None,
                    "model": None,
                    "provider": None,
                    "prompt_name": None,
                    "prompt_version": None,
                    "input_tokens": None,
                    "output_tokens": None,
                    "cached_input_tokens": None,
                    "cost_usd": None,
                    "user_id": None,
                    "session_id": None,
                    "input": None,
                    "output": None,
                }
                for key, col in COLUMN_KEYS.items():
                    if key in attrs:
                        row[col] = attrs.pop(key)
                if row["kind"] == "reranker" and "reranker.model_name" in attrs:
                    row["model"] = row["model"] or attrs.pop("reranker.model_name")
                request_model = attrs.get("gen_ai.request.model")
                if row["model"] is None:
                    row["model"] = request_model
                if request_model is not None and request_model == row["model"]:
                    del attrs["gen_ai.request.model"]  # kept only when it differs from the model
                if row["prompt_version"] is not None:
                    row["prompt_version"] = str(row["prompt_version"])
                if row["provider"] is not None:
                    row["provider"] = row["provider"].lower()
                for list_key in ("retrieval.documents", "reranker.output_documents"):
                    pattern = re.compile(rf"^{re.escape(list_key)}\.(\d+)\.document\.(id|content|score)$")
                    docs: dict[int, dict] = {}
                    for key in [k for k in attrs if pattern.match(k)]:
                        i, field = pattern.match(key).groups()
                        docs.setdefault(int(i), {})[field] = attrs.pop(key)
                    if docs:
                        attrs[list_key] = [docs[i] for i in sorted(docs)]
                row["attributes"] = attrs
                rows.append(row)
    roots = [r for r in rows if r["parent_span_id"] is None]
    if roots:
        for r in rows:
            for col in ("route", "user_id", "session_id"):
                if r[col] is None:
                    r[col] = roots[0][col]
    return rows


STOPWORDS = frozenset(
    "the a an and or of to in on for is are be can with your you our we it this that from by as at if not "
    "after until under within more most some any have has will would could should may might".split()
)


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9$]+", text.lower()) if len(w) > 2 and w not in STOPWORDS}


def grounding(answer: str, docs: list[dict]) -> float:
    """Share of the answer's content words that appear in the retrieved documents (0 when none retrieved)."""
    words = content_words(answer)
    if not words:
        return 0.0
    source: set[str] = set()
    for d in docs:
        source |= content_words(d["content"])
    return len(words & source) / len(words)
