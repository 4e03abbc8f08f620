"""The production responses of an hour, as scorer ``Example``s.

A response is a span with something to judge: the request's root span (the question the user asked and the
answer the app gave: ``spans.input`` / ``spans.output``) and any span whose kind a rule names (``llm`` calls).
What a scorer sees besides the text, from the spans of the same trace in the hour:

* context: the content of every document the trace's retrieval spans returned (``attributes``'
  ``retrieval.documents``, ingest/MAPPING.md), in rank order;
* tool calls: the trace's tool spans (name, arguments = span input, status, result = span output);
* metadata: route, model / prompt version (of the span, or for a root span the trace's last llm call),
  retrieval_spans, steps (llm + tool spans), the span's name and status; ``text_cut`` when the input or output
  was longer than ``max_text_chars`` and was cut (the full lengths; scoring copies it into each score's details).

A response belongs to the hour its span starts in. Spans of its trace that started in the previous hour (a
request running across :00) are not read: their documents and tool calls are missing from that response.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.config import ROOT
from obs_pipelines.scorers.base import Example
from obs_pipelines.store.query import fetch_frame, window_params
from obs_pipelines.store.traces import NULL_LABEL

TEXT_CUT = "text_cut"  # metadata key: {"limit": max_text_chars, "lengths": {field: characters before the cut}}

# attributes are read only where the documents are: other spans' attributes can be large and are not needed
_SQL = """
SELECT trace_id, span_id, parent_span_id, kind, name, status, route, model, prompt_version, start_time,
       input, output,
       CASE WHEN kind = 'retrieval' THEN attributes END AS attributes
FROM spans
WHERE start_time >= :start AND start_time < :end
  AND (parent_span_id IS NULL OR kind IN ('llm', 'tool', 'retrieval'{extra}))
ORDER BY trace_id, start_time, span_id
"""


@dataclass(frozen=True)
class Response:
    trace_id: str
    span_id: str
    kind: str  # 'root' for the request's root span, else the span kind
    route: str
    model: str | None
    prompt_version: str | None
    example: Example


def _attributes(value) -> dict:
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _documents(attributes) -> list[str]:
    docs = _attributes(attributes).get("retrieval.documents") or []
    out = []
    for doc in docs if isinstance(docs, list) else []:
        content = doc.get("content") if isinstance(doc, dict) else doc
        if content:
            out.append(str(content))
    return out


def _cut(text, limit: int) -> str | None:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    text = str(text)
    return text if len(text) <= limit else text[:limit]


def _value(v) -> str | None:
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)


def read_responses(engine: Engine, start: datetime, end: datetime, kinds: set[str],
                   max_text_chars: int = 20000) -> Iterator[Response]:
    """Every response of [start, end) whose kind is in ``kinds`` ('root' and / or span kinds)."""
    extra_kinds = sorted(k for k in kinds if k not in (ROOT, "llm", "tool", "retrieval") and k.isidentifier())
    extra = "".join(f", '{k}'" for k in extra_kinds)
    frame = fetch_frame(engine, _SQL.format(extra=extra), window_params(start, end))
    if frame.empty:
        return
    columns = list(frame.columns)
    rows = frame.itertuples(index=False, name=None)
    index = {c: i for i, c in enumerate(columns)}
    trace: list[tuple] = []
    current = None
    for row in rows:
        if row[index["trace_id"]] != current and trace:
            yield from _trace_responses(trace, index, kinds, max_text_chars)
            trace = []
        current = row[index["trace_id"]]
        trace.append(row)
    if trace:
        yield from _trace_responses(trace, index, kinds, max_text_chars)


def _trace_responses(rows: list[tuple], i: dict[str, int], kinds: set[str], limit: int) -> Iterator[Response]:
    K, P = i["kind"], i["parent_span_id"]
    documents: list[str] = []
    retrievals = 0
    tool_calls = []
    llm_rows = []
    route = None
    for row in rows:
        kind = row[K]
        if kind == "retrieval":
            retrievals += 1
            documents.extend(_documents(row[i["attributes"]]))
        elif kind == "tool":
            tool_calls.append({"name": row[i["name"]], "arguments": _value(row[i["input"]]),
                               "status": _value(row[i["status"]]), "output": _value(row[i["output"]])})
        elif kind == "llm":
            llm_rows.append(row)
        if route is None and _value(row[i["route"]]) and _value(row[P]) is None:
            route = row[i["route"]]
    route = route or next((r[i["route"]] for r in rows if _value(r[i["route"]])), None) or NULL_LABEL
    last_llm = llm_rows[-1] if llm_rows else None
    steps = len(llm_rows) + len(tool_calls)
    for row in rows:
        is_root = _value(row[P]) is None  # (pandas reads a null as NaN)
        kind = ROOT if is_root else row[K]
        if kind not in kinds:
            continue
        source = last_llm if is_root and last_llm is not None else row
        model, prompt_version = _value(source[i["model"]]), _value(source[i["prompt_version"]])
        metadata = {"route": route, "model": model, "prompt_version": prompt_version, "span_kind": kind,
                    "span_name": _value(row[i["name"]]), "status": _value(row[i["status"]]),
                    "retrieval_spans": retrievals, "steps": steps}
        cut = {name: len(text) for name in ("input", "output")
               if isinstance(text := row[i[name]], str) and len(text) > limit}
        if cut:  # scoring records it in each score's details: no text is cut silently
            metadata[TEXT_CUT] = {"limit": limit, "lengths": cut}
        example = Example(
            input=_cut(row[i["input"]], limit),
            output=_cut(row[i["output"]], limit),
            context=tuple(documents),
            tool_calls=tuple(tool_calls) if is_root else (),
            metadata=metadata,
        )
        yield Response(row[i["trace_id"]], row[i["span_id"]], kind, route, model, prompt_version, example)
