"""Online scoring of one hour: the settings' rules pick scorers per response, each (response, scorer) pair is
scored once per scorer version, and the hour's ``eval_scores`` rows are built.

Incremental by design (issue 12.4): rows already stored for the hour with the current scorer version are
kept as they are, so re-running a scored month computes nothing, and a scorer whose options or code
version changed is re-scored alone. A scorer that raises on one response records the error on that row and
the hour goes on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals import registry
from obs_pipelines.online_evals.config import EvalRule, OnlineEvalsSettings, sampled
from obs_pipelines.online_evals.responses import Response, read_responses
from obs_pipelines.online_evals.scorers.base import Scorer
from obs_pipelines.online_evals.tables import SCORE_COLUMNS, eval_scores
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, window_params

Key = tuple[str, str, str, str]  # trace_id, span_id, scorer, scorer_version


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
            version = scorer.fingerprint
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


__all__ = ["HourScores", "score_hour", "scorers_for", "select", "stored_scores"]
