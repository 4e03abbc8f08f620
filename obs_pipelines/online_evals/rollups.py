"""Score rollups of one hour: per scorer, overall and by route, model and prompt version, the counts, mean,
p10 / p50 and the share below the threshold; user feedback of the hour's requests alongside, as scorers named
``feedback:<name>``. Quality then reads like latency: one number per hour and dimension, plotted per partition.

The route x model x prompt version combination is a dimension too (its values also in the route, model and
prompt_version columns): the alert rules judge every score per scorer x route x prompt version x model.

An hour holds a few thousand scores in a few hundred groups: one pass over the rows in plain Python is several
times faster than pandas' groupby machinery on frames this small (bench/bench_online_evals.py, backfill).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.tables import ROLLUP_COLUMNS
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, read_window, window_params
from obs_pipelines.store.traces import NULL_LABEL

DIMENSIONS = ("route", "model", "prompt_version")
_HOUR = timedelta(hours=1)
# the three at once: an eval-score rule per scorer x route x prompt version x model (alerts) groups these rows
COMBINATION = "route_model_prompt_version"
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


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks of sorted ``values`` (= percentile_cont, numpy's default)."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class _Group:
    __slots__ = ("responses", "errors", "scores", "below", "threshold")

    def __init__(self) -> None:
        self.responses, self.errors, self.below = 0, 0, 0
        self.scores: list[float] = []
        self.threshold: float | None = None

    def add(self, score: float | None, threshold: float | None, error: bool) -> None:
        self.responses += 1
        if error:
            self.errors += 1
        if threshold is not None and (self.threshold is None or threshold < self.threshold):
            self.threshold = threshold
        if score is not None:
            self.scores.append(score)
            if threshold is not None and score < threshold:
                self.below += 1

    def merge(self, other: _Group) -> None:
        """Count ``other``'s rows here too (its below-threshold count was taken against each row's threshold)."""
        self.responses += other.responses
        self.errors += other.errors
        self.below += other.below
        self.scores.extend(other.scores)
        if other.threshold is not None and (self.threshold is None or other.threshold < self.threshold):
            self.threshold = other.threshold

    def row(self) -> dict:
        scores = sorted(self.scores)  # (sorted: the mean and percentiles do not depend on the order rows came in)
        scored = len(scores)
        return {
            "response_count": self.responses,
            "scored_count": scored,
            "error_count": self.errors,
            "null_count": self.responses - scored - self.errors,
            "mean_score": sum(scores) / scored if scored else None,
            "p10_score": percentile(scores, 0.1),
            "p50_score": percentile(scores, 0.5),
            "below_threshold_share": self.below / scored if scored and self.threshold is not None else None,
            "threshold": self.threshold,
        }


def _label(value) -> str:
    return NULL_LABEL if _missing(value) else str(value)


def _rows(records: Iterable[tuple]) -> list[dict]:
    """records: (scorer, scorer_version, score, threshold, error, route, model, prompt_version)."""
    groups: dict[tuple, _Group] = {}
    _accumulate(groups, records)
    return _finish(groups)


def _accumulate(groups: dict[tuple, _Group], records: Iterable[tuple]) -> None:
    # each row into its finest group (scorer x version x route x model x prompt version: a few hundred an hour),
    # then each finest group into the five it counts in: one add per row instead of five
    finest: dict[tuple, _Group] = {}
    for scorer, version, score, threshold, error, route, model, prompt_version in records:
        key = (scorer, None if _missing(version) else version, _label(route), _label(model), _label(prompt_version))
        group = finest.get(key)
        if group is None:
            group = finest[key] = _Group()
        group.add(None if _missing(score) else float(score), None if _missing(threshold) else float(threshold),
                  not _missing(error))
    for (scorer, version, route, model, prompt_version), group in finest.items():
        for key in ((scorer, version, "overall", None, None, None, None),
                    (scorer, version, "route", route, route, None, None),
                    (scorer, version, "model", model, None, model, None),
                    (scorer, version, "prompt_version", prompt_version, None, None, prompt_version),
                    (scorer, version, COMBINATION, f"{route} | {model} | {prompt_version}", route, model,
                     prompt_version)):
            target = groups.get(key)
            if target is None:
                target = groups[key] = _Group()
            target.merge(group)


def _finish(groups: dict[tuple, _Group]) -> list[dict]:
    return [{"scorer": k[0], "scorer_version": k[1], "dimension": k[2], "dimension_value": k[3], "route": k[4],
             "model": k[5], "prompt_version": k[6], **g.row()}
            for k, g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][3] or ""))]


_SCORE_COLUMNS = ["scorer", "scorer_version", "score", "threshold", "error", *DIMENSIONS]


def _request_dims(scores: pd.DataFrame) -> dict[str, tuple]:
    """Dimensions of a request: those of its root-span scores (the same for every scorer of a span)."""
    roots = scores[scores["span_kind"] == "root"]
    return {t: tuple(d) for t, *d in roots[["trace_id", *DIMENSIONS]].itertuples(index=False, name=None)}


def _feedback_rows(feedback: pd.DataFrame, dims: dict[str, tuple]) -> list[dict]:
    if feedback.empty:
        return []
    none = (None,) * len(DIMENSIONS)
    return _rows((FEEDBACK_PREFIX + str(name), None, value, None, None, *dims.get(trace, none))
                 for trace, name, value in feedback[["trace_id", "name", "value"]].itertuples(index=False, name=None))


def score_rollup(scores: pd.DataFrame, feedback: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The hour's ``score_rollup_hourly`` rows from its ``eval_scores`` rows and its feedback."""
    rows = _rows(scores[_SCORE_COLUMNS].itertuples(index=False, name=None)) if not scores.empty else []
    rows += _feedback_rows(feedback, _request_dims(scores) if not scores.empty and not feedback.empty else {})
    return _rollup_frame(rows, start, end)


def _rollup_frame(rows: list[dict], start: datetime, end: datetime) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=ROLLUP_COLUMNS)
    if not frame.empty:
        frame["window_start"], frame["window_end"], frame["computed_at"] = start, end, db.utcnow()
    return frame


_DAY_SCORE_COLUMNS = ("trace_id", "span_kind", "scorer", "scorer_version", "score", "threshold", "error", "route",
                      "model", "prompt_version")


def daily_rollup(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The day's ``score_rollup_daily`` rows, recomputed from its scores (percentiles cannot be merged), read an
    hour at a time: the day's scores are held as one float per group they count in, never as the day's rows
    (issue 23: a day of a busy app is a million rows)."""
    groups: dict[tuple, _Group] = {}
    dims: dict[str, tuple] = {}
    hour = start
    while hour < end:
        scores = read_window(engine, "eval_scores", hour, min(hour + _HOUR, end), _DAY_SCORE_COLUMNS,
                             time_column="window_start", typed=False)
        if not scores.empty:
            _accumulate(groups, scores[_SCORE_COLUMNS].itertuples(index=False, name=None))
            dims.update(_request_dims(scores))
        hour += _HOUR
    rows = _finish(groups) + _feedback_rows(read_feedback(engine, start, end), dims)
    return _rollup_frame(rows, start, end)


def stored_means(engine: Engine, start: datetime, end: datetime) -> dict[str, float]:
    """The hour's stored overall mean per scorer (figures of an hour a run left as it was), as ``headline``."""
    rows = read_window(engine, "score_rollup_hourly", start, end, ("scorer", "mean_score"), time_column="window_start",
                       where="dimension = 'overall'", typed=False)
    return {f"mean/{scorer}": float(mean) for scorer, mean in rows.itertuples(index=False, name=None) if pd.notna(mean)}


def headline(rollup: pd.DataFrame) -> dict[str, float]:
    """Per scorer, the hour's overall mean (numeric metadata: the UI plots it per partition)."""
    if rollup.empty:
        return {}
    overall = rollup[rollup["dimension"] == "overall"]
    return {f"mean/{row.scorer}": float(row.mean_score) for row in overall.itertuples()
            if row.mean_score is not None and not pd.isna(row.mean_score)}


__all__ = ["COMBINATION", "DIMENSIONS", "FEEDBACK_PREFIX", "daily_rollup", "headline", "percentile", "read_feedback", "score_rollup",
           "stored_means"]
