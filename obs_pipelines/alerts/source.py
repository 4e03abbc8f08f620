"""What the alerts read from the store: a rule's table over its windows, and for a breached group the
exemplar traces and the attribution (which span / model / error class / route explains the value).

Attribution prefers the observability phase's tables (latency_attribution_hourly, cost_attribution_hourly,
error_causes_hourly): with that phase enabled they are read when written, else computed in memory by the
phase's own functions (``Diagnosis``); without it, attribution is computed from the monitoring rollups and the
raw spans of the window. Exemplars come from the raw spans (the public contract) and the rollups'
example_trace_id column.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts.evaluate import RuleResult, history_needed
from obs_pipelines.store.query import fetch_frame

MAX_EXEMPLARS = 5
log = logging.getLogger("obs_pipelines.alerts")
MAX_CONTRIBUTORS = 5
# a group's dimension -> the spans column that holds it (model rows use a canonical key: not filterable)
SPAN_COLUMNS = {"route": "route", "provider": "provider", "span_kind": "kind", "span_name": "name",
                "prompt_version": "prompt_version", "service_name": "service_name"}
OBSERVABILITY_ATTRIBUTION = {"latency": "latency_attribution_hourly", "cost": "cost_attribution_hourly",
                             "error": "error_causes_hourly"}


def table_exists(engine: Engine, table: str) -> bool:
    return sa.inspect(engine).has_table(table)


def rule_time_column(rule) -> str:
    return getattr(rule, "time_column", "window_start") if rule.kind == "eval_score" else "window_start"


def read_rule_frame(engine: Engine, rule, start: datetime, end: datetime) -> pd.DataFrame:
    """The rule's table over [start - history, end)."""
    column = rule_time_column(rule)
    sql = f"SELECT * FROM {rule.table} WHERE {column} >= :start AND {column} < :end"  # names from settings
    return fetch_frame(engine, sql, {"start": start - history_needed(rule), "end": end})


def metric_family(rule) -> str:
    """latency, error, cost or other: picks the attribution and the exemplar ordering."""
    name = f"{getattr(rule, 'metric', '')} {rule.table}".lower()
    for family, words in (("error", ("error",)), ("latency", ("latency", "_ms")), ("cost", ("cost", "token"))):
        if any(w in name for w in words):
            return family
    return "other"


# ---- exemplars --------------------------------------------------------------------------------------------
def _span_filter(group: dict[str, Any]) -> tuple[str, dict]:
    clauses, params = [], {}
    for i, (dim, value) in enumerate(group.items()):
        if dim in SPAN_COLUMNS and value is not None:
            clauses.append(f"{SPAN_COLUMNS[dim]} = :g{i}")
            params[f"g{i}"] = value
    return "".join(f" AND {c}" for c in clauses), params


def window_spans(engine: Engine, result: RuleResult, columns: str) -> pd.DataFrame:
    where, params = _span_filter(result.group)
    sql = f"SELECT {columns} FROM spans WHERE start_time >= :start AND start_time < :end{where}"
    return fetch_frame(engine, sql, {"start": result.window_start, "end": result.window_end, **params})


def exemplar_trace_ids(engine: Engine, rule, result: RuleResult, rollup_rows: pd.DataFrame | None = None,
                       diagnosis: Diagnosis | None = None) -> list[str]:
    """A few traces of the breached group and window that show the problem: failed ones for error rules, the
    slowest for latency rules, the most expensive for cost rules; the rollup's example_trace_id first."""
    ids: list[str] = _observability_exemplars(engine, metric_family(rule), result, diagnosis)
    if rollup_rows is not None and "example_trace_id" in rollup_rows.columns:
        ids += [t for t in rollup_rows["example_trace_id"].dropna().astype(str)]
    if table_exists(engine, "spans"):
        family = metric_family(rule)
        spans = window_spans(engine, result, "trace_id, start_time, end_time, status, cost_usd, input_tokens")
        if not spans.empty:
            if family == "error":
                spans = spans[spans["status"] == "error"].sort_values("trace_id", ascending=False)
            elif family == "latency":
                duration = pd.to_datetime(spans["end_time"]) - pd.to_datetime(spans["start_time"])
                spans = spans.assign(_d=duration).sort_values("_d", ascending=False)
            elif family == "cost":
                spans = spans.assign(_c=pd.to_numeric(spans["input_tokens"], errors="coerce").fillna(0))
                spans = spans.sort_values("_c", ascending=False)
            ids += list(spans["trace_id"].astype(str))
    return list(dict.fromkeys(ids))[:MAX_EXEMPLARS]


# ---- attribution ------------------------------------------------------------------------------------------
def _ranked(dimension: str, weights: pd.Series) -> list[dict]:
    weights = weights[weights > 0]
    total = float(weights.sum())
    if not total:
        return []
    top = weights.sort_values(ascending=False).head(MAX_CONTRIBUTORS)
    return [{"dimension": dimension, "value": str(k), "share": round(float(v) / total, 4)} for k, v in top.items()]


class Diagnosis:
    """The observability phase's tables of an hour as its diagnosis run writes them: read from the store when
    that run has written the hour, else computed in memory by the phase's own functions (once per hour), so
    an alert carries the observability attribution at once instead of waiting for that run.

    ``settings``: the ObservabilitySettings; ``prices``: the price table."""

    def __init__(self, engine: Engine, settings, prices) -> None:
        self.engine, self.settings, self.prices = engine, settings, prices
        self._computed: dict[datetime, dict[str, pd.DataFrame]] = {}
        self._rows: dict[tuple[str, datetime], pd.DataFrame] = {}  # every rule and group of an hour reads them

    def rows(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        if (table, start) not in self._rows:
            self._rows[(table, start)] = self._read(table, start, end)
        return self._rows[(table, start)]

    def _read(self, table: str, start: datetime, end: datetime) -> pd.DataFrame:
        if table_exists(self.engine, table):
            stored = _stored_rows(self.engine, table, start, end)
            if len(stored):
                return stored
        if start not in self._computed:
            from obs_pipelines.observability.hourly import hourly_tables  # pandas-only; loaded when needed

            try:
                self._computed[start] = hourly_tables(self.engine, start, end, self.settings, self.prices)[0]
            except Exception:  # noqa: BLE001 (a diagnosis never fails the check: the fallback attribution stands)
                log.exception(f"observability attribution of {start:%Y-%m-%d %H:%M} could not be computed")
                self._computed[start] = {}
        return self._computed[start].get(table, pd.DataFrame())


def _stored_rows(engine: Engine, table: str, start: datetime, end: datetime) -> pd.DataFrame:
    return fetch_frame(engine, f"SELECT * FROM {table} WHERE window_start >= :start AND window_start < :end",
                       {"start": start, "end": end})


def _window_rows(engine: Engine, table: str, result: RuleResult, diagnosis: Diagnosis | None = None) -> pd.DataFrame:
    rows = (diagnosis.rows(table, result.window_start, result.window_end) if diagnosis is not None
            else _stored_rows(engine, table, result.window_start, result.window_end))
    for dim, value in result.group.items():  # the group's own rows (route=..., provider=...)
        if dim in rows.columns:
            rows = rows[rows[dim].astype(str) == str(value)]
    return rows


def _observability_attribution(engine: Engine, family: str, result: RuleResult,
                               diagnosis: Diagnosis | None = None) -> list[dict] | None:
    """From the observability phase's tables (observability/tables.py) when it has written the window:
    error_causes_hourly (errors by class / model / failing step / route), latency_attribution_hourly (each
    step's share of its route's p95 change), cost_attribution_hourly (each value's share of the cost change)."""
    table = OBSERVABILITY_ATTRIBUTION.get(family)
    if not table or (diagnosis is None and not table_exists(engine, table)):
        return None
    rows = _window_rows(engine, table, result, diagnosis)
    if rows.empty:
        return None
    out: list[dict] = []
    if family == "error":
        counts = pd.to_numeric(rows["error_count"], errors="coerce").fillna(0)
        for dim, column in (("error_class", "error_class"), ("provider", "provider"), ("model", "model"),
                            ("span", "failing_step"), ("route", "route")):
            if dim not in result.group:
                out += _ranked(dim, counts.groupby(rows[column]).sum())[:2]
    elif family == "latency":
        steps = rows[~rows["wraps_steps"].astype(str).str.lower().isin(["true", "1"])]
        delta = pd.to_numeric(steps["delta_p95_ms"], errors="coerce").fillna(0).clip(lower=0)
        out += _ranked("span", delta.groupby(steps["span_name"]).sum())
    elif family == "cost":
        rows = rows[~rows["dimension"].isin(list(result.group))]
        delta = pd.to_numeric(rows["delta_cost_usd"], errors="coerce").fillna(0).clip(lower=0)
        for dim, part in delta.groupby(rows["dimension"]):
            out += _ranked(str(dim), part.groupby(rows.loc[part.index, "dimension_value"]).sum())[:2]
    return out or None


def _observability_exemplars(engine: Engine, family: str, result: RuleResult,
                             diagnosis: Diagnosis | None = None) -> list[str]:
    if family != "error" or (diagnosis is None and not table_exists(engine, "error_causes_hourly")):
        return []
    rows = _window_rows(engine, "error_causes_hourly", result, diagnosis)
    if rows.empty:
        return []
    rows = rows.sort_values("error_count", ascending=False)
    ids: list[str] = []
    for raw in rows["example_trace_ids"].dropna():
        try:
            ids += [str(t) for t in json.loads(raw)]
        except (TypeError, ValueError):
            continue
    return ids


def attribution(engine: Engine, rule, result: RuleResult, diagnosis: Diagnosis | None = None) -> list[dict]:
    """Ranked contributors of the breached group's value in its window: from the observability tables of the
    window (``diagnosis``: computed when not written yet), else from the rollups and the raw spans."""
    family = metric_family(rule)
    found = _observability_attribution(engine, family, result, diagnosis)
    if found:
        return found
    out: list[dict] = []
    if family == "error" and table_exists(engine, "error_rollup_hourly"):
        rows = fetch_frame(engine, "SELECT dimension_value, error_count FROM error_rollup_hourly "
                                   "WHERE window_start = :start AND dimension = 'provider_error_class'",
                           {"start": result.window_start})
        provider = result.group.get("provider")
        if provider is not None:
            rows = rows[rows["dimension_value"].astype(str).str.startswith(f"{provider}/")]
        classes = rows.assign(cls=rows["dimension_value"].astype(str).str.split("/").str[-1])
        out += _ranked("error_class", pd.to_numeric(classes.groupby("cls")["error_count"].sum()))
    if not table_exists(engine, "spans"):
        return out
    spans = window_spans(engine, result, "trace_id, parent_span_id, name, kind, model, provider, route, status, "
                                          "start_time, end_time")
    if spans.empty:
        return out
    if family == "error":
        failed = spans[spans["status"] == "error"]
        for dim, column in (("provider", "provider"), ("model", "model"), ("span", "name"), ("route", "route")):
            if dim not in result.group and failed[column].notna().any():
                out += _ranked(dim, failed.groupby(column).size())[:2]
    elif family == "latency":
        steps = spans[spans["parent_span_id"].notna()]
        duration = (pd.to_datetime(steps["end_time"]) - pd.to_datetime(steps["start_time"])).dt.total_seconds()
        out += _ranked("span", duration.groupby(steps["name"]).sum())
    elif family == "cost":
        out += _ranked("model", spans[spans["model"].notna()].groupby("model").size())
    return out


def partition_link(base_url: str, asset: str, window_start: datetime) -> str:
    key = window_start.strftime("%Y-%m-%d-%H:%M")
    return f"{base_url.rstrip('/')}/assets/{asset}?partition={key}"

