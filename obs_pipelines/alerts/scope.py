"""An alert's group and window as filters: which spans, calls, scores and paths belong to it. The attribution
reads only these (a route's cost alert lists that route's prompt versions), and every exemplar is checked
against them before it is shown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.pricing.models import model_key, model_keys
from obs_pipelines.store.query import bind_window, fetch_frame, window_params

# a group's dimension -> the spans column that holds it (filtered in SQL)
SPAN_COLUMNS = {"route": "route", "provider": "provider", "span_kind": "kind", "span_name": "name",
                "prompt_version": "prompt_version", "service_name": "service_name", "user": "user_id",
                "user_id": "user_id"}
# a call's prompt as the monitoring rollups label it
PROMPT_LABEL = ("CASE WHEN {p}prompt_name IS NOT NULL AND {p}prompt_version IS NOT NULL "
                "THEN {p}prompt_name || '@' || {p}prompt_version END")
# dimensions filtered after reading (model rows carry the canonical model key; error classes are computed)
MODEL = "model"


def span_filter(group: dict[str, Any], alias: str = "") -> tuple[str, dict]:
    """`` AND col = :g0 ...`` for the group's dimensions that are spans columns."""
    clauses, params = [], {}
    prefix = f"{alias}." if alias else ""
    for i, (dim, value) in enumerate(sorted(group.items())):
        if dim == "prompt_version" and value is not None:  # the rollups' label (name@version) or the version
            clauses.append(f"({prefix}prompt_version = :g{i} OR {PROMPT_LABEL.format(p=prefix)} = :g{i})")
            params[f"g{i}"] = str(value)
        elif dim in SPAN_COLUMNS and value is not None:
            clauses.append(f"{prefix}{SPAN_COLUMNS[dim]} = :g{i}")
            params[f"g{i}"] = str(value)
    return "".join(f" AND {c}" for c in clauses), params


def same_model(models: pd.Series, wanted: Any) -> pd.Series:
    """Rows whose model is the group's model (by canonical key, as monitoring's model rows name it)."""
    key = model_key(str(wanted)) or str(wanted)
    return (model_keys(models) == key) | (models.astype(str) == str(wanted))


def keep_group(frame: pd.DataFrame, group: dict[str, Any], columns: dict[str, str]) -> pd.DataFrame:
    """The rows of ``frame`` in the group, for the dimensions ``columns`` maps to frame columns."""
    for dim, value in group.items():
        column = columns.get(dim)
        if column is None or column not in frame.columns or value is None:
            continue
        if dim == MODEL:
            frame = frame[same_model(frame[column], value).to_numpy()]
        else:
            frame = frame[(frame[column].astype(str) == str(value)).to_numpy()]
    return frame


def traces_in_group(engine: Engine, trace_ids: Sequence[str], group: dict[str, Any], start: datetime,
                    end: datetime) -> set[str]:
    """Of ``trace_ids``, those with a span of the group starting in [start, end) (dimensions the spans do
    not hold, e.g. an error class or a scorer, are checked by the exemplar's own query)."""
    if not trace_ids:
        return set()
    where, params = span_filter(group)
    sql = f"SELECT trace_id, model FROM spans WHERE start_time >= :start AND start_time < :end{where} " \
          "AND trace_id IN :ids"
    stmt = bind_window(sql).bindparams(sa.bindparam("ids", expanding=True))
    rows = fetch_frame(engine, stmt, {**window_params(start, end), **params, "ids": [str(t) for t in trace_ids]})
    if MODEL in group and len(rows):
        rows = rows[same_model(rows["model"], group[MODEL]).to_numpy()]
    return set(rows["trace_id"].astype(str)) if len(rows) else set()
