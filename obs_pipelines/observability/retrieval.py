"""The retrieval log (one row per retrieval span: query, documents, scores, ranks, previews, flags) and its
hourly rollup per route. A vector store that returns nothing shows here as the empty rate, even when the
retrieval spans are fast and in status ok.

Documents are the contract's ``attributes["retrieval.documents"]`` (``[{"id", "content", "score", ...}]``,
what ingest makes of OpenInference's ``retrieval.documents.N.document.*``)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from obs_pipelines.store.traces import NULL_LABEL

ALL_ROUTES = "(all)"
PREVIEW_CHARS = 120
QUERY_CHARS = 1000


def _documents(attributes) -> list:
    if attributes is None:
        return []
    if isinstance(attributes, str | bytes):
        try:
            attributes = orjson.loads(attributes)  # C: several times json's speed on document lists
        except orjson.JSONDecodeError:
            return []
    docs = attributes.get("retrieval.documents") if isinstance(attributes, dict) else None
    return [d for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []


def _json(value) -> str:
    return orjson.dumps(value).decode()  # compact JSON, in C (json.dumps was half of the log's time)


_RANKS: dict[int, str] = {}  # document count -> its ranks as JSON ("[1,2,3]"), built once per count


def _row(attributes, low_score: float) -> tuple:
    """document_count, document_ids, scores, ranks, previews (JSON), top_score, all scores below ``low_score``,
    duplicate ids: the per-span fields of the log, from one span's attributes. One pass over the documents
    (this runs once per retrieval span)."""
    docs = _documents(attributes)
    ids, scores, previews = [], [], []
    for doc in docs:
        doc_id = doc.get("id")
        ids.append(None if doc_id is None else str(doc_id))
        score = doc.get("score")
        # a number, never a boolean (JSON's true is no score); parsed JSON has no subclasses of int / float
        scores.append(float(score) if type(score) is float or type(score) is int else None)
        previews.append(str(doc.get("content") or "")[:PREVIEW_CHARS])
    known = [x for x in scores if x is not None]
    present = [x for x in ids if x]
    n = len(docs)
    if n not in _RANKS:
        _RANKS[n] = _json(list(range(1, n + 1)))
    return (n, _json(ids), _json(scores), _RANKS[n], _json(previews),
            max(known) if known else np.nan, bool(known) and max(known) < low_score,
            len(present) != len(set(present)))


def retrieval_log(spans: pd.DataFrame, texts: pd.DataFrame, routes: pd.Series, low_score: float) -> pd.DataFrame:
    """``retrieval_log`` rows (without window columns): the window's retrieval spans."""
    columns = ["trace_id", "span_id", "route", "span_name", "start_time", "latency_ms", "status", "query",
               "document_count", "document_ids", "scores", "ranks", "previews", "top_score", "no_documents",
               "all_below_threshold", "duplicate_documents"]
    base = spans.loc[spans["kind"] == "retrieval", ["trace_id", "span_id", "name", "start_time", "duration_ms",
                                                    "status", "route"]]
    if base.empty:
        return pd.DataFrame(columns=columns)
    extra = texts.loc[texts["kind"] == "retrieval", ["trace_id", "span_id", "input", "attributes"]]
    out = base.merge(extra, on=["trace_id", "span_id"], how="left")
    # one parse and one pass per retrieval span (its document list is JSON in the attributes)
    parsed = [_row(attributes, low_score) for attributes in out["attributes"].tolist()]
    fields = ["document_count", "document_ids", "scores", "ranks", "previews", "top_score", "all_below_threshold",
              "duplicate_documents"]
    per_span = pd.DataFrame(parsed, columns=fields, index=out.index)
    for col in fields:
        out[col] = per_span[col]
    out["document_count"] = out["document_count"].astype("int64")
    out["top_score"] = out["top_score"].astype("float64")
    out["no_documents"] = out["document_count"] == 0
    out["all_below_threshold"] = (out["document_count"] > 0) & out["all_below_threshold"].astype(bool)
    out["duplicate_documents"] = out["duplicate_documents"].astype(bool)
    # (object first: a window whose traces have no request route maps to all-NaN floats, which strings may not fill)
    out["route"] = out["trace_id"].map(routes).astype("object").fillna(out["route"]).fillna(NULL_LABEL)
    out["query"] = out["input"].astype("object").where(out["input"].notna(), None).str.slice(0, QUERY_CHARS)
    out = out.rename(columns={"name": "span_name", "duration_ms": "latency_ms"})
    return out.sort_values(["start_time", "trace_id", "span_id"])[columns].reset_index(drop=True)


def retrieval_rollup(log: pd.DataFrame) -> pd.DataFrame:
    """``retrieval_rollup_hourly`` rows: per route and over all routes."""
    columns = ["route", "retrievals", "empty_rate", "low_score_rate", "duplicate_rate", "mean_top_score",
               "mean_documents", "error_rate"]
    if log.empty:
        return pd.DataFrame(columns=columns)
    frame = log.assign(is_error=(log["status"] == "error").astype("float64"))
    parts = [frame, frame.assign(route=ALL_ROUTES)]
    g = pd.concat(parts, ignore_index=True).groupby("route")
    out = g.agg(retrievals=("span_id", "size"), empty_rate=("no_documents", "mean"),
                low_score_rate=("all_below_threshold", "mean"), duplicate_rate=("duplicate_documents", "mean"),
                mean_top_score=("top_score", "mean"), mean_documents=("document_count", "mean"),
                error_rate=("is_error", "mean")).reset_index()
    for col in columns[2:]:
        out[col] = out[col].astype("float64")
    return out[columns]
