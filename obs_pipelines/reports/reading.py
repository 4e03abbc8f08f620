"""What a report reads: the published rollup tables of the phases and the ``alerts`` table, for a window.

Only rollups (hourly grain) and alerts are read, never ``spans``: a month is ~30 k rollup rows at 20 routes.
A table a phase has not created yet (phase off, fresh store) reads as an empty frame with its columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts.tables import alerts
from obs_pipelines.monitoring.tables import (
    error_rollup_hourly,
    request_rollup_hourly,
    slo_status_hourly,
    step_rollup_hourly,
    usage_rollup_hourly,
)
from obs_pipelines.online_evals.tables import score_rollup_hourly
from obs_pipelines.store.query import fetch_frame, read_window

# the columns each report reads (narrow reads: the model_names text and timestamps of computation stay home)
_COLUMNS = {
    request_rollup_hourly: ["window_start", "dimension", "dimension_value", "request_count", "error_count",
                            "latency_p50_ms", "latency_p95_ms", "latency_count"],
    error_rollup_hourly: ["window_start", "dimension", "dimension_value", "error_class", "provider",
                          "error_count", "span_count"],
    step_rollup_hourly: ["window_start", "dimension", "span_kind", "span_name", "span_count", "error_count",
                         "latency_p50_ms", "latency_p95_ms", "latency_count"],
    usage_rollup_hourly: ["window_start", "dimension", "dimension_value", "call_count", "input_tokens",
                          "output_tokens", "cost_usd"],
    slo_status_hourly: ["window_start", "slo_name", "metric", "dimension", "dimension_value", "objective",
                        "target", "value", "met", "burn_rate_1h", "burn_rate_6h"],
    score_rollup_hourly: ["window_start", "scorer", "dimension", "dimension_value", "scored_count", "mean_score"],
}
_NUMERIC = {"request_count", "error_count", "latency_p50_ms", "latency_p95_ms", "latency_count", "span_count",
            "call_count", "input_tokens", "output_tokens", "cost_usd", "target", "value", "burn_rate_1h",
            "burn_rate_6h", "scored_count", "mean_score"}


@dataclass
class Rollups:
    """The hourly rollups of a window, one frame per table (``window_start`` as pandas timestamps)."""

    request: pd.DataFrame
    error: pd.DataFrame
    step: pd.DataFrame
    usage: pd.DataFrame
    slo: pd.DataFrame
    score: pd.DataFrame

    @property
    def hours_with_data(self) -> int:
        overall = self.request[self.request["dimension"] == "overall"]
        return int(overall["window_start"].nunique())


def _existing(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def read_table(engine: Engine, table: sa.Table, start: datetime, end: datetime,
               tables: set[str] | None = None) -> pd.DataFrame:
    """Rows of ``table`` whose window starts in [start, end), typed (numbers as floats, times as
    timestamps, ``met`` as a nullable boolean)."""
    columns = _COLUMNS[table]
    if table.name not in (tables if tables is not None else _existing(engine)):
        return pd.DataFrame({c: pd.Series(dtype="float64" if c in _NUMERIC else "object") for c in columns})
    frame = read_window(engine, table, start, end, columns, time_column="window_start", typed=False)
    frame["window_start"] = pd.to_datetime(frame["window_start"])
    for column in columns:
        if column in _NUMERIC:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    if "met" in frame:  # SQLite returns 0/1, PostgreSQL booleans; both may be null (hour not judged)
        frame["met"] = frame["met"].map(lambda v: None if v is None or pd.isna(v) else bool(v)).astype("object")
    return frame


def read_rollups(engine: Engine, start: datetime, end: datetime) -> Rollups:
    tables = _existing(engine)
    return Rollups(*(read_table(engine, t, start, end, tables) for t in (
        request_rollup_hourly, error_rollup_hourly, step_rollup_hourly, usage_rollup_hourly, slo_status_hourly,
        score_rollup_hourly)))


def read_alerts(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Alerts whose first breached window starts before ``end`` and that were still open at ``start`` or
    later (their newest judged window is at or after ``start``, or they are still firing)."""
    columns = [c.name for c in alerts.columns]
    if alerts.name not in _existing(engine):
        return pd.DataFrame(columns=columns)
    frame = fetch_frame(
        engine,
        sa.select(alerts).where(alerts.c.window_start < sa.bindparam("end", type_=sa.DateTime),
                                sa.or_(alerts.c.last_window_start >= sa.bindparam("start", type_=sa.DateTime),
                                       alerts.c.status == "firing")).order_by(alerts.c.window_start, alerts.c.id),
        {"start": start, "end": end})
    for column in ("window_start", "window_end", "last_window_start", "created_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def newest_hour(engine: Engine) -> datetime | None:
    """Start of the newest hour in the request rollup (the dashboard's "now"), None when nothing is rolled up."""
    if request_rollup_hourly.name not in _existing(engine):
        return None
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(request_rollup_hourly.c.window_start))).scalar()
    return pd.Timestamp(value).to_pydatetime() if value is not None else None
