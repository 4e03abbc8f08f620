"""The day's requests with their input and whether they failed, for the clusters of failing inputs.

A request (its root span) fails when one of its scores is below its rule's threshold (``eval_scores.passed`` is
false: the threshold is the rule's, so a scorer failing means what the team said it means) or when its feedback
is negative (a value at or below ``negative_feedback_max``). Each failing request lists what it failed.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.rollups import FEEDBACK_PREFIX
from obs_pipelines.store.query import fetch_text_frame, window_params

_REQUESTS_SQL = """
SELECT trace_id, route, input FROM spans
WHERE start_time >= :start AND start_time < :end AND parent_span_id IS NULL
"""
_FAILED_SCORES_SQL = """
SELECT DISTINCT trace_id, scorer FROM eval_scores
WHERE window_start >= :start AND window_start < :end AND span_kind = 'root' AND passed IS NOT NULL AND NOT passed
"""
_NEGATIVE_FEEDBACK_SQL = """
SELECT DISTINCT f.trace_id AS trace_id, f.name AS name
FROM feedback f
JOIN spans s ON s.trace_id = f.trace_id AND s.parent_span_id IS NULL
WHERE s.start_time >= :start AND s.start_time < :end AND f.value IS NOT NULL AND f.value <= :negative_max
"""


def read_day_requests(engine: Engine, start: datetime, end: datetime, negative_feedback_max: float) -> pd.DataFrame:
    """Columns trace_id, route, input, failing (bool), failing_scorers (comma-separated, sorted)."""
    params = window_params(start, end)
    requests = fetch_text_frame(engine, _REQUESTS_SQL, params)
    failed = fetch_text_frame(engine, _FAILED_SCORES_SQL, params)
    feedback = fetch_text_frame(engine, _NEGATIVE_FEEDBACK_SQL, {**params, "negative_max": negative_feedback_max})
    reasons = pd.concat([
        failed.rename(columns={"scorer": "what"})[["trace_id", "what"]] if not failed.empty else None,
        feedback.assign(what=FEEDBACK_PREFIX + feedback["name"].astype(str))[["trace_id", "what"]]
        if not feedback.empty else None,
    ]) if not (failed.empty and feedback.empty) else pd.DataFrame({"trace_id": [], "what": []})
    if requests.empty:
        return pd.DataFrame({"trace_id": [], "route": [], "input": [], "failing": [], "failing_scorers": []})
    by_trace = reasons.groupby("trace_id")["what"].agg(lambda s: ",".join(sorted(set(map(str, s)))))
    out = requests.drop_duplicates("trace_id").copy()
    out["failing_scorers"] = out["trace_id"].map(by_trace).fillna("")
    out["failing"] = out["failing_scorers"] != ""
    return out.reset_index(drop=True)
