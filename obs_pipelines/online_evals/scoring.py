"""Online scoring of one hour: the settings' rules pick scorers per response, each (response, scorer) pair is
scored once per scorer version, and the hour's ``eval_scores`` rows are built.

Incremental by design (issue 12.4): an hour whose spans, feedback and scorer selection are those it was
scored with (``eval_hours``) is skipped without being read; otherwise rows already stored for the hour with
the current scorer version are kept as they are and only missing pairs are scored, so a scorer whose options or
code version changed is re-scored alone. A scorer that raises on one response records the error on that row and
the hour goes on.

A judge call that failed (no answer after its retries: timeout, 429 / 5xx, connection error) leaves a row whose
error starts with ``JudgeFailed``: such rows are never kept, and an hour holding one is never skipped as
current, so the hour's next run asks the judge again for exactly those pairs, keeping every answered judgment
(and its ``judge_calls`` row) as it is. A judge answer without a readable verdict is a null score, kept.
Texts cut at ``max_text_chars`` are recorded in each score's details (``text_cut``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals import parallel
from obs_pipelines.online_evals.config import EvalRule, OnlineEvalsSettings, sampled
from obs_pipelines.online_evals.responses import TEXT_CUT, Response, read_responses
from obs_pipelines.online_evals.score_store import informative_details
from obs_pipelines.online_evals.tables import (
    HOUR_COLUMNS,
    JUDGE_COLUMNS,
    SCORE_COLUMNS,
    eval_hours,
    eval_scores,
    judge_calls,
)
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example, Scorer
from obs_pipelines.scorers.judge_client import storable
from obs_pipelines.store import db
from obs_pipelines.store.query import bind_window, read_window, window_params

Key = tuple[str, str, str, str]  # trace_id, span_id, scorer, scorer_version
_HOUR = timedelta(hours=1)
RETRY_ERROR = "JudgeFailed"  # error prefix of a row whose judge did not answer: scored again on the next run


@dataclass
class HourScores:
    """What scoring one hour did."""

    frame: pd.DataFrame  # every row the hour should hold, kept and new
    responses: int = 0
    scored: int = 0  # pairs computed in this run
    kept: int = 0  # pairs taken over from the stored rows
    errors: int = 0
    unchanged: bool = False  # the stored rows are exactly right: nothing to write
    seconds: float = 0.0
    by_scorer: dict[str, list[float]] = field(default_factory=dict)
    judge_calls: list[dict] = field(default_factory=list)  # judge_calls rows of the pairs scored in this run


def scorers_for(settings: OnlineEvalsSettings, judge_client=None) -> dict[str, Scorer]:
    """One instance of every scorer a rule names, with the settings' options; judge scorers bound to
    ``judge_client`` (None: they give null scores)."""
    scorers = registry.build((name for rule in settings.rules for name in rule.scorers), settings.scorer_options)
    for scorer in scorers.values():
        if hasattr(scorer, "bind"):
            scorer.bind(judge_client)
    return scorers


def select(response: Response, rules: Iterable[EvalRule]) -> dict[str, EvalRule]:
    """scorer name -> the first rule that runs it on this response (kind, route, model, prompt version and the
    rule's trace sample all match)."""
    chosen: dict[str, EvalRule] = {}
    for rule in rules:
        if rule.matches(response.kind, response.route, response.model, response.prompt_version) \
                and sampled(response.trace_id, rule.sample_rate):
            for name in rule.scorers:
                chosen.setdefault(name, rule)
    return chosen


def selection_hash(settings: OnlineEvalsSettings, scorers: Mapping[str, Scorer]) -> str:
    """What decides an hour's rows besides its spans: the rules, each scorer's version, the text bound."""
    blob = json.dumps({"rules": [r.model_dump() for r in settings.rules], "max_text_chars": settings.max_text_chars,
                       "scorers": {n: s.fingerprint for n, s in sorted(scorers.items())}}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


_STATE_SQL = """
SELECT (SELECT COUNT(*) FROM spans WHERE start_time >= :start AND start_time < :end) AS span_count,
       (SELECT MAX(ingested_at) FROM spans WHERE start_time >= :start AND start_time < :end) AS last_ingested_at,
       (SELECT COUNT(*) FROM feedback f JOIN spans s ON s.trace_id = f.trace_id AND s.parent_span_id IS NULL
        WHERE s.start_time >= :start AND s.start_time < :end) AS feedback_count
"""


def _timestamp_text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(pd.Timestamp(value))


def hour_inputs(engine: Engine, start: datetime, end: datetime) -> dict:
    """What the hour's scores are computed from, cheaply (index range counts): spans and feedback."""
    with engine.connect() as conn:
        span_count, last, feedback_count = conn.execute(bind_window(_STATE_SQL), window_params(start, end)).one()
    return {"span_count": int(span_count), "feedback_count": int(feedback_count),
            "last_ingested_at": _timestamp_text(last)}


def hour_is_current(engine: Engine, start: datetime, selection: str, inputs: Mapping) -> dict | None:
    """The stored ``eval_hours`` row of the hour if it was scored with ``selection`` from the same ``inputs``
    (then its rows are right as they are), else None; also None while a judge call of the hour failed (it
    is asked again). Plain rows, no frame: this is all a re-run of a scored hour does."""
    query = bind_window(f"SELECT * FROM {eval_hours.name} WHERE window_start >= :start AND window_start < :end")
    with engine.connect() as conn:
        row = conn.execute(query, window_params(start, start + _HOUR)).mappings().first()
        if row is None:
            return None
        same = (row["selection"] == selection and int(row["span_count"]) == inputs["span_count"]
                and int(row["feedback_count"]) == inputs["feedback_count"]
                and _timestamp_text(row["last_ingested_at"]) == inputs["last_ingested_at"])
        if same and conn.execute(bind_window(_FAILED_JUDGE_SQL), window_params(start, start + _HOUR)).first():
            return None  # judge calls to ask again
    return dict(row) if same else None


_FAILED_JUDGE_SQL = (f"SELECT 1 FROM {eval_scores.name} WHERE window_start >= :start AND window_start < :end "
                    f"AND error LIKE '{RETRY_ERROR}:%' LIMIT 1")


def retry_failed(row: Mapping) -> bool:
    """A stored row to score again rather than keep: its judge did not answer."""
    error = row.get("error")
    return isinstance(error, str) and error.startswith(f"{RETRY_ERROR}:")


def hour_record(start: datetime, end: datetime, selection: str, inputs: Mapping, hour: "HourScores") -> pd.DataFrame:
    last = inputs["last_ingested_at"]
    return pd.DataFrame([{
        "window_start": start, "window_end": end, "selection": selection, "span_count": inputs["span_count"],
        "last_ingested_at": pd.Timestamp(last).to_pydatetime() if last else None,
        "feedback_count": inputs["feedback_count"], "responses": hour.responses, "score_rows": len(hour.frame),
        "scored_at": db.utcnow()}], columns=HOUR_COLUMNS)


def stored_scores(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return read_window(engine, eval_scores, start, end, time_column="window_start", typed=False)


DETAILS_CHARS = 4000  # of a score's details JSON


def _details(details: Mapping) -> str | None:
    """The details as JSON (NUL and control characters escaped by JSON itself), at most DETAILS_CHARS: longer
    ones keep every key with long texts shortened, and say so (``details_cut``), so the JSON stays valid."""
    details = informative_details(details) if details else details  # (issue 23: most say nothing)
    if not details:
        return None
    text = json.dumps(details, default=str, ensure_ascii=False)
    if len(text) <= DETAILS_CHARS:
        return text
    short = {k: (v[:300] + "…" if isinstance(v, str) and len(v) > 300 else v) for k, v in details.items()}
    text = json.dumps({**short, "details_cut": len(text)}, default=str, ensure_ascii=False)
    if len(text) <= DETAILS_CHARS:
        return text
    return json.dumps({"details_cut": len(text), "keys": sorted(map(str, details))[:50]}, ensure_ascii=False)


def score_hour(engine: Engine, start: datetime, end: datetime, settings: OnlineEvalsSettings,
               scorers: Mapping[str, Scorer], stored: pd.DataFrame | None = None, rescore: bool = False,
               workers: int | None = None) -> HourScores:
    """The rows of ``eval_scores`` for [start, end): stored rows of the current scorer versions are kept
    (unless ``rescore``), missing pairs are scored now, the local scorers on ``workers`` processes (default:
    every CPU; the rows are the same whatever the count)."""
    began = time.perf_counter()
    kinds = {kind for rule in settings.rules for kind in rule.span_kinds}
    kept_rows: dict[Key, dict] = {}
    if stored is not None and not stored.empty and not rescore:
        for row in stored.to_dict("records"):
            if not retry_failed(row):
                kept_rows[(row["trace_id"], row["span_id"], row["scorer"], row["scorer_version"])] = row
    now = db.utcnow()
    versions = {name: scorer.fingerprint for name, scorer in scorers.items()}  # (a hash: once per hour)
    rows: list[dict] = []
    result = HourScores(frame=pd.DataFrame())
    judged: list[dict] = []  # judge_calls rows of the pairs scored now
    pending: list[tuple[dict, Future]] = []
    concurrent = [s for s in scorers.values() if getattr(s, "concurrent", False) and getattr(s, "client", None)]
    pool = ThreadPoolExecutor(max(s.client.concurrency for s in concurrent)) if concurrent else None
    local_rows: list[dict] = []
    local_pairs: list[tuple[str, Example]] = []
    for response in read_responses(engine, start, end, kinds, settings.max_text_chars):
        chosen = select(response, settings.rules)
        if not chosen:
            continue
        result.responses += 1
        base = {"window_start": start, "window_end": end, "trace_id": response.trace_id, "span_id": response.span_id,
                "span_kind": response.kind, "route": response.route, "model": response.model,
                "prompt_version": response.prompt_version}
        cut = response.example.metadata.get(TEXT_CUT)
        for name, rule in chosen.items():
            scorer = scorers[name]
            version = versions[name]
            old = kept_rows.get((response.trace_id, response.span_id, name, version))
            if old is not None:
                rows.append(old)
                result.kept += 1
                value = old.get("score")
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    result.by_scorer.setdefault(name, []).append(float(value))
                continue
            threshold = rule.threshold_of(name)
            row = {**base, "rule": rule.name, "scorer": name, "scorer_version": version, "threshold": threshold,
                   "scored_at": now, "score": None, "passed": None, "reason": None, "details": None, "error": None,
                   TEXT_CUT: cut}
            if pool is not None and getattr(scorer, "concurrent", False):  # network-bound: judge calls in parallel
                pending.append((row, pool.submit(scorer, response.example)))
            else:  # CPU-bound: scored below on every core (online_evals/parallel.py)
                local_rows.append(row)
                local_pairs.append((name, response.example))
            result.scored += 1
            rows.append(row)
    for row, (value, reason, details, error) in zip(local_rows, parallel.score_pairs(local_pairs, scorers, workers),
                                                    strict=True):
        if error is None:
            _apply(row, value, reason, details, result, judged)
        else:
            _failed(row, error, result, judged)
    for row, future in pending:
        try:
            score = future.result()
            _apply(row, score.value, score.reason, score.details, result, judged)
        except Exception as exc:  # noqa: BLE001 - one response must not fail the hour
            _failed(row, f"{type(exc).__name__}: {exc}", result, judged, getattr(exc, "call", None))
    if pool is not None:
        pool.shutdown()
    result.unchanged = result.scored == 0 and stored is not None and len(stored) == result.kept and not rescore
    result.frame = _frame(rows, start, end)
    result.judge_calls = judged
    result.seconds = time.perf_counter() - began
    return result


def _apply(row: dict, value: float | None, reason: str | None, details: Mapping, result: "HourScores",
           judged: list[dict]) -> None:
    details = dict(details)
    call = details.pop("judge_call", None)
    cut = row.pop(TEXT_CUT, None)
    if cut:
        details[TEXT_CUT] = cut
    if call is not None:
        judged.append(_judge_row(row, call))
    row["score"], row["reason"], row["details"] = value, reason, _details(details)
    if value is not None:
        row["passed"] = value >= row["threshold"]
        result.by_scorer.setdefault(row["scorer"], []).append(value)


def _failed(row: dict, error: str, result: "HourScores", judged: list[dict], call=None) -> None:
    """The row of a pair whose scorer raised ``error`` ("<Type>: <message>"); ``call``: a judge that did not
    answer, whose attempts are recorded too."""
    cut = row.pop(TEXT_CUT, None)
    row["details"] = _details({TEXT_CUT: cut} if cut else {})
    row["error"] = storable(error, 1000)
    result.errors += 1
    if call is not None:
        judged.append(_judge_row(row, call))


def _judge_row(row: dict, call) -> dict:
    return {"window_start": row["window_start"], "window_end": row["window_end"], "trace_id": row["trace_id"],
            "span_id": row["span_id"], "scorer": row["scorer"], "scorer_version": row["scorer_version"],
            "model": call.model, **call.stored(), "status": call.status, "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
            "cost_usd": call.cost_usd, "latency_ms": call.latency_ms, "attempts": call.attempts,
            "called_at": row["scored_at"]}


def judge_frame(hour: "HourScores", stored_calls: pd.DataFrame | None, start: datetime, end: datetime) -> pd.DataFrame:
    """The hour's ``judge_calls`` rows: the stored calls behind the scores kept, plus the calls made now."""
    keep = set(zip(hour.frame["trace_id"], hour.frame["span_id"], hour.frame["scorer"],
                   hour.frame["scorer_version"], strict=True)) if not hour.frame.empty else set()
    rows = list(hour.judge_calls)
    new = {(r["trace_id"], r["span_id"], r["scorer"], r["scorer_version"]) for r in rows}
    if stored_calls is not None and not stored_calls.empty:
        for row in stored_calls.to_dict("records"):
            key = (row["trace_id"], row["span_id"], row["scorer"], row["scorer_version"])
            if key in keep and key not in new:
                rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=JUDGE_COLUMNS)
    if not frame.empty:
        frame["window_start"], frame["window_end"] = start, end
        frame["called_at"] = pd.to_datetime(frame["called_at"])
    return frame


def stored_judge_calls(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return read_window(engine, judge_calls, start, end, time_column="window_start", typed=False)


def _frame(rows: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=SCORE_COLUMNS)
    if frame.empty:
        return frame
    # kept rows come back from the store as stored (SQLite: text times, 0 / 1 booleans)
    frame["window_start"], frame["window_end"] = start, end
    frame["scored_at"] = pd.to_datetime(frame["scored_at"])
    frame["passed"] = frame["passed"].map(lambda v: None if v is None or v != v else bool(v)).astype(object)
    for column in ("reason", "details", "error"):  # None, not NaN, where a text is missing (pandas mixes them)
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


__all__ = ["HourScores", "judge_frame", "stored_judge_calls", "hour_inputs", "hour_is_current", "hour_record", "score_hour", "scorers_for", "select",
           "selection_hash", "stored_scores"]
