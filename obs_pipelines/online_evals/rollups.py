"""Score rollups of one hour: per scorer, overall and by route, model and prompt version, the counts, mean,
p10 / p50 and the share below the threshold; user feedback of the hour's requests alongside, as scorers named
``feedback:<name>``. Quality then reads like latency: one number per hour and dimension, plotted per partition.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.tables import ROLLUP_COLUMNS
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, window_params
from obs_pipelines.store.traces import NULL_LABEL

DIMENSIONS = ("route", "model", "prompt_version")
FEEDBACK_PREFIX = "feedback:"

# feedback on the requests whose root span starts in the hour (feedback rows carry the trace id)
_FEEDBACK_SQL = """
SELECT f.trace_id AS trace_id, f.name AS name, f.value AS value
FROM feedback f
JOIN spans s ON s.trace_id = f.trace_id AND s.parent_span_id IS NULL
WHERE s.start_time >= :start AND s.start_time < :end AND f.value IS NOT NULL
"""


def read_feedback(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    return fetch_frame(engine, _FEEDBACK_SQL, window_params(start, end))


def _stats(scores: pd.DataFrame) -> dict:
    values = pd.to_numeric(scores["score"], errors="coerce").to_numpy(dtype=float)
    scored = values[~np.isnan(values)]
    errors = int(scores["error"].notna().sum()) if "error" in scores else 0
    row = {
        "response_count": int(len(scores)),
        "scored_count": int(len(scored)),
        "error_count": errors,
        "null_count": int(len(values) - len(scored) - errors),
        "mean_score": float(scored.mean()) if len(scored) else None,
        "p10_score": float(np.percentile(scored, 10)) if len(scored) else None,
        "p50_score": float(np.percentile(scored, 50)) if len(scored) else None,
        "below_threshold_share": None,
        "threshold": None,
    }
    if "threshold" in scores and len(scored):
        thresholds = pd.to_numeric(scores["threshold"], errors="coerce").to_numpy(dtype=float)
        mask = ~np.isnan(values)
        row["below_threshold_share"] = float((values[mask] < thresholds[mask]).mean())
        row["threshold"] = float(np.nanmin(thresholds))
    return row


def _grouped(frame: pd.DataFrame, name_column: str) -> list[dict]:
    out = []
    for (name, version), by_scorer in frame.groupby([name_column, "scorer_version"], dropna=False, sort=True):
        version = None if isinstance(version, float) and np.isnan(version) else version
        out.append({"scorer": name, "scorer_version": version, "dimension": "overall", "dimension_value": None,
                    **_stats(by_scorer)})
        for dimension in DIMENSIONS:
            values = by_scorer[dimension].fillna(NULL_LABEL)
            for value, group in by_scorer.groupby(values, sort=True):
                out.append({"scorer": name, "scorer_version": version, "dimension": dimension,
                            "dimension_value": str(value), **_stats(group)})
    return out


def score_rollup(scores: pd.DataFrame, feedback: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The hour's ``score_rollup_hourly`` rows from its ``eval_scores`` rows and its feedback."""
    rows = _grouped(scores, "scorer") if not scores.empty else []
    if not feedback.empty:
        # dimensions of a request: those of its root-span scores (any scorer: they are the same per span)
        roots = scores[scores["span_kind"] == "root"] if not scores.empty else scores
        dims = (roots.drop_duplicates("trace_id").set_index("trace_id")[list(DIMENSIONS)]
                if not roots.empty else pd.DataFrame(columns=list(DIMENSIONS)))
        fb = feedback.join(dims, on="trace_id")
        fb["scorer"] = FEEDBACK_PREFIX + fb["name"].astype(str)
        fb["scorer_version"] = "feedback"
        fb["score"] = pd.to_numeric(fb["value"], errors="coerce")
        fb["error"] = None
        rows += _grouped(fb[["scorer", "scorer_version", "score", "error", *DIMENSIONS]], "scorer")
        for row in rows:
            if row["scorer"].startswith(FEEDBACK_PREFIX):
                row["scorer_version"] = None
    frame = pd.DataFrame.from_records(rows, columns=ROLLUP_COLUMNS)
    if not frame.empty:
        frame["window_start"], frame["window_end"], frame["computed_at"] = start, end, db.utcnow()
    return frame


def headline(rollup: pd.DataFrame) -> dict[str, float]:
    """Per scorer, the hour's overall mean (numeric metadata: the UI plots it per partition)."""
    if rollup.empty:
        return {}
    overall = rollup[rollup["dimension"] == "overall"]
    return {f"mean/{row.scorer}": float(row.mean_score) for row in overall.itertuples()
            if row.mean_score is not None and not pd.isna(row.mean_score)}


__all__ = ["DIMENSIONS", "FEEDBACK_PREFIX", "headline", "read_feedback", "score_rollup"]
