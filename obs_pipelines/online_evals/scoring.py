"""Online scoring of one hour: the settings' rules pick scorers per response, each (response, scorer) pair is
scored once per scorer version, and the hour's ``eval_scores`` rows are built.

Incremental by design (issue 12.4): an hour whose spans, feedback and scorer selection are those it was
scored with (``eval_hours``) is skipped without being read; otherwise rows already stored for the hour with
the current scorer version are kept as they are and only missing pairs are scored, so a scorer whose options or
code version changed is re-scored alone. A scorer that raises on one response records the error on that row and
the hour goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals import registry
from obs_pipelines.online_evals.config import EvalRule, OnlineEvalsSettings, sampled
from obs_pipelines.online_evals.responses import Response, read_responses
from obs_pipelines.online_evals.scorers.base import Scorer
from obs_pipelines.online_evals.tables import HOUR_COLUMNS, SCORE_COLUMNS, eval_hours, eval_scores
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, window_params

Key = tuple[str, str, str, str]  # trace_id, span_id, scorer, scorer_version
_HOUR = timedelta(hours=1)


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


def scorers_for(settings: OnlineEvalsSettings) -> dict[str, Scorer]:
    """One instance of every scorer a rule names, with the settings' options."""
    return registry.build((name for rule in settings.rules for name in rule.scorers), settings.scorer_options)


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


def hour_inputs(engine: Engine, start: datetime, end: datetime) -> dict:
    """What the hour's scores are computed from, cheaply (index range counts): spans and feedback."""
    row = fetch_frame(engine, _STATE_SQL, window_params(start, end)).iloc[0]
    last = row["last_ingested_at"]
    return {"span_count": int(row["span_count"]), "feedback_count": int(row["feedback_count"]),
            "last_ingested_at": None if last is None or pd.isna(last) else str(pd.Timestamp(last))}


def hour_is_current(engine: Engine, start: datetime, selection: str, inputs: Mapping) -> dict | None:
    """The stored ``eval_hours`` row of the hour if it was scored with ``selection`` from the same ``inputs``
    (then its rows are right as they are), else None."""
    frame = fetch_frame(engine, f"SELECT * FROM {eval_hours.name} WHERE window_start >= :start AND window_start < :end",
                        window_params(start, start + _HOUR))
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    stored_last = row["last_ingested_at"]
    stored_last = None if stored_last is None or pd.isna(stored_last) else str(pd.Timestamp(stored_last))
    same = (row["selection"] == selection and int(row["span_count"]) == inputs["span_count"]
            and int(row["feedback_count"]) == inputs["feedback_count"] and stored_last == inputs["last_ingested_at"])
    return row if same else None


def hour_record(start: datetime, end: datetime, selection: str, inputs: Mapping, hour: "HourScores") -> pd.DataFrame:
    last = inputs["last_ingested_at"]
    return pd.DataFrame([{
        "window_start": start, "window_end": end, "selection": selection, "span_count": inputs["span_count"],
        "last_ingested_at": pd.Timestamp(last).to_pydatetime() if last else None,
        "feedback_count": inputs["feedback_count"], "responses": hour.responses, "score_rows": len(hour.frame),
        "scored_at": db.utcnow()}], columns=HOUR_COLUMNS)


def stored_scores(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return fetch_frame(engine, f"SELECT * FROM {eval_scores.name} WHERE window_start >= :start AND window_start < :end",
                       window_params(start, end))


def _details(details: Mapping) -> str | None:
    if not details:
        return None
    return json.dumps(details, default=str, ensure_ascii=False)[:4000]


def score_hour(engine: Engine, start: datetime, end: datetime, settings: OnlineEvalsSettings,
               scorers: Mapping[str, Scorer], stored: pd.DataFrame | None = None, rescore: bool = False) -> HourScores:
    """The rows of ``eval_scores`` for [start, end): stored rows of the current scorer versions are kept
    (unless ``rescore``), missing pairs are scored now."""
    began = time.perf_counter()
    kinds = {kind for rule in settings.rules for kind in rule.span_kinds}
    kept_rows: dict[Key, dict] = {}
    if stored is not None and not stored.empty and not rescore:
        for row in stored.to_dict("records"):
            kept_rows[(row["trace_id"], row["span_id"], row["scorer"], row["scorer_version"])] = row
    now = db.utcnow()
    versions = {name: scorer.fingerprint for name, scorer in scorers.items()}  # (a hash: once per hour)
    rows: list[dict] = []
    result = HourScores(frame=pd.DataFrame())
    for response in read_responses(engine, start, end, kinds, settings.max_text_chars):
        chosen = select(response, settings.rules)
        if not chosen:
            continue
        result.responses += 1
        base = {"window_start": start, "window_end": end, "trace_id": response.trace_id, "span_id": response.span_id,
                "span_kind": response.kind, "route": response.route, "model": response.model,
                "prompt_version": response.prompt_version}
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
                   "scored_at": now, "score": None, "passed": None, "reason": None, "details": None, "error": None}
            try:
                score = scorer(response.example)
            except Exception as exc:  # noqa: BLE001 - one response must not fail the hour
                row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
                result.errors += 1
            else:
                row["score"], row["reason"], row["details"] = score.value, score.reason, _details(score.details)
                if score.value is not None:
                    row["passed"] = score.value >= threshold
                    result.by_scorer.setdefault(name, []).append(score.value)
            result.scored += 1
            rows.append(row)
    result.unchanged = result.scored == 0 and stored is not None and len(stored) == result.kept and not rescore
    result.frame = _frame(rows, start, end)
    result.seconds = time.perf_counter() - began
    return result


def _frame(rows: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=SCORE_COLUMNS)
    if frame.empty:
        return frame
    # kept rows come back from the store as stored (SQLite: text times, 0 / 1 booleans)
    frame["window_start"], frame["window_end"] = start, end
    frame["scored_at"] = pd.to_datetime(frame["scored_at"])
    frame["passed"] = frame["passed"].map(lambda v: None if v is None or v != v else bool(v)).astype(object)
    return frame


__all__ = ["HourScores", "hour_inputs", "hour_is_current", "hour_record", "score_hour", "scorers_for", "select",
           "selection_hash", "stored_scores"]
