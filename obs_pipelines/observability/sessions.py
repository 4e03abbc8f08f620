"""``session_rollup_daily``: per session and day, from the ``traces`` table of that day (requests belong to
the hour, hence the day, their root starts in; a session that crosses midnight has a row on each day)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.observability.tables import traces
from obs_pipelines.store.query import read_window

_COLUMNS = ("session_id", "user_id", "route", "start_time", "end_time", "status", "input_tokens", "output_tokens",
            "cost_usd")


def session_rollup(engine: Engine, day_start: datetime, day_end: datetime) -> pd.DataFrame:
    """``session_rollup_daily`` rows (without window columns)."""
    columns = ["session_id", "user_id", "first_seen", "last_seen", "turns", "errors", "input_tokens",
               "output_tokens", "cost_usd", "routes", "ended_on_error"]
    frame = read_window(engine, traces, day_start, day_end, _COLUMNS, time_column="window_start",
                        where="session_id IS NOT NULL", typed=False)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], format="ISO8601")
    frame = frame.sort_values(["session_id", "start_time"], kind="stable")
    frame["is_error"] = (frame["status"] == "error").astype("int64")
    g = frame.groupby("session_id", sort=True)
    out = g.agg(user_id=("user_id", "min"), first_seen=("start_time", "min"), last_seen=("end_time", "max"),
                turns=("status", "size"), errors=("is_error", "sum"), input_tokens=("input_tokens", "sum"),
                output_tokens=("output_tokens", "sum"), cost_usd=("cost_usd", "sum"),
                ended_on_error=("is_error", "last"))
    out["routes"] = frame.drop_duplicates(["session_id", "route"]).sort_values(["session_id", "route"]).groupby(
        "session_id")["route"].agg(", ".join)
    out["ended_on_error"] = out["ended_on_error"].astype(bool)
    return out.reset_index()[columns]
