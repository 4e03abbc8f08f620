"""What the alerts read from the store: a rule's table over its windows, and for a breached group its cause
(the contributors of its change against its baseline, ``causes.py``) and the exemplar traces that show it.

The causes are read from the raw spans (the public contract), the online evals' ``eval_scores`` and the
observability phase's ``agent_paths``; with that phase on, an hour it has not written yet is computed in memory
through the phase's published entry point, ``observability.api`` (``Diagnosis``). Every exemplar is checked to
belong to the group and the window.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import causes
from obs_pipelines.alerts.evaluate import RuleResult, history_needed
from obs_pipelines.alerts.scope import traces_in_group
from obs_pipelines.store.query import fetch_frame, read_window

MAX_EXEMPLARS = 5
log = logging.getLogger("obs_pipelines.alerts")


def table_exists(engine: Engine, table: str) -> bool:
    return sa.inspect(engine).has_table(table)


def rule_time_column(rule) -> str:
    return getattr(rule, "time_column", "window_start") if rule.kind == "eval_score" else "window_start"


def read_rule_frame(engine: Engine, rule, start: datetime, end: datetime) -> pd.DataFrame:
    """The rule's table over [start - history, end)."""
    column = rule_time_column(rule)
    sql = f"SELECT * FROM {rule.table} WHERE {column} >= :start AND {column} < :end"  # names from settings
    return fetch_frame(engine, sql, {"start": start - history_needed(rule), "end": end})


# the family of a rule's table (checked before the metric's words: retrieval_rollup_hourly has an error_rate)
TABLE_FAMILIES = {"agent_paths": "agent", "retrieval_rollup_hourly": "retrieval", "retrieval_log": "retrieval",
                  "eval_scores": "quality", "score_rollup_hourly": "quality", "score_rollup_daily": "quality",
                  "latency_attribution_hourly": "latency", "cost_attribution_hourly": "cost",
                  "error_causes_hourly": "error"}
METRIC_WORDS = (("error", ("error",)), ("latency", ("latency", "_ms", "duration")), ("cost", ("cost", "token")),
                ("agent", ("loop", "tool")), ("retrieval", ("retriev", "top_score", "empty")),
                ("quality", ("score",)))


def family_of_metric(metric: str) -> str:
    metric = metric.lower()
    return next((family for family, words in METRIC_WORDS if any(w in metric for w in words)), "other")


def metric_family(rule) -> str:
    """latency, error, cost, quality, agent, retrieval or other: where the rule's causes live (the
    attribution and the exemplars). A burn-rate rule takes its SLO's metric (``_slo_scope``)."""
    if rule.kind == "eval_score":
        return "quality"
    if rule.table in TABLE_FAMILIES:
        return TABLE_FAMILIES[rule.table]
    return family_of_metric(f"{getattr(rule, 'metric', '')} {rule.table}")


class _SloRule:
    """A burn-rate rule seen as a rule on its SLO's metric (the family and the percentile come from it)."""

    def __init__(self, rule, metric: str) -> None:
        self.name, self.kind, self.metric, self.table = rule.name, "slo", metric, "request_rollup_hourly"


def _slo_scope(engine: Engine, rule, result: RuleResult) -> tuple[Any, dict[str, Any]]:
    """A burn-rate rule's SLO: its metric and the group it is about ({} overall, {route: ...}, {model: ...})."""
    if not table_exists(engine, rule.table):
        return None, {}
    rows = read_window(engine, rule.table, result.window_start, result.window_end,
                       ("metric", "dimension", "dimension_value"), time_column="window_start", where="slo_name = :slo",
                       params={"slo": rule.slo}, typed=False)
    if rows.empty:
        return None, {}
    row = rows.iloc[0]
    group = {} if row["dimension"] in (None, "overall") or pd.isna(row["dimension_value"]) else {
        str(row["dimension"]): row["dimension_value"]}
    return _SloRule(rule, str(row["metric"])), group


# ---- the cause and the exemplars of a breach (causes.py) -------------------------------------------------
_BREACHES: dict[tuple, tuple[float, causes.Breach]] = {}  # the attribution and the exemplars share one breach
_KEEP_BREACHES = 16


def breach(engine: Engine, rule, result: RuleResult, diagnosis: Diagnosis | None = None) -> causes.Breach:
    """The breached group's cause and its window's reading (once per rule, window and group; read again after
    a few minutes, when late spans may have arrived)."""
    key = (str(engine.url), rule.name, rule.kind, getattr(rule, "table", None), getattr(rule, "metric", None),
           result.window_start, result.window_end, result.group_key)
    found = _BREACHES.get(key)
    if found is None or time.monotonic() - found[0] > causes.SUMMARY_TTL_SECONDS:
        while len(_BREACHES) >= _KEEP_BREACHES:
            _BREACHES.pop(next(iter(_BREACHES)))
        found = _BREACHES[key] = (time.monotonic(), _diagnose(engine, rule, result, diagnosis))
    return found[1]


def _diagnose(engine: Engine, rule, result: RuleResult, diagnosis: Diagnosis | None) -> causes.Breach:
    group = dict(result.group)
    if rule.kind == "burn_rate":
        rule, group = _slo_scope(engine, rule, result)
        if rule is None:
            return causes.Breach("other", [], None, None)
        family = family_of_metric(rule.metric)
    else:
        family = metric_family(rule)
    settings = diagnosis.settings if diagnosis is not None else None
    ctx = causes.Context(engine, rule, group, prices=diagnosis.prices if diagnosis is not None else _prices(),
                         settings=settings, diagnosis=diagnosis)
    try:
        return causes.diagnose(ctx, family, result.window_start, result.window_end)
    except Exception:  # noqa: BLE001 (a cause that cannot be computed never fails the rule's check)
        log.exception(f"cause of {rule.name} {group} in {result.window_start:%Y-%m-%d %H:%M} could not be computed")
        return causes.Breach(family, [], None, ctx)


_PRICES: list = []


def _prices():
    if not _PRICES:
        from obs_pipelines.pricing import load_prices

        _PRICES.append(load_prices())
    return _PRICES[0]


def exemplar_trace_ids(engine: Engine, rule, result: RuleResult, rollup_rows: pd.DataFrame | None = None,
                       diagnosis: Diagnosis | None = None) -> list[str]:
    """A few traces of the breached group and window that show the breach: the slowest traces that contain
    the slow step, the failing ones of the breached provider, the costliest calls, the lowest-scoring
    responses, the looping traces, the emptiest retrievals (of the top contributor first); each checked to
    have a span of the group in the window. The rollup's example_trace_id is a candidate too."""
    candidates = causes.exemplars(breach(engine, rule, result, diagnosis))
    if rollup_rows is not None and "example_trace_id" in rollup_rows.columns:
        candidates += [t for t in rollup_rows["example_trace_id"].dropna().astype(str)]
    candidates = list(dict.fromkeys(candidates))[:MAX_EXEMPLARS * 4]
    if not candidates or not table_exists(engine, "spans"):
        return []
    scope_group = result.group if rule.kind != "burn_rate" else {}
    inside = traces_in_group(engine, candidates, scope_group, result.window_start, result.window_end)
    return [t for t in candidates if t in inside][:MAX_EXEMPLARS]


def attribution(engine: Engine, rule, result: RuleResult, diagnosis: Diagnosis | None = None) -> list[dict]:
    """Ranked contributors of the breached group's change against its baseline (causes.py)."""
    return breach(engine, rule, result, diagnosis).cause


def observability_rows(engine: Engine, table: str, start: datetime, end: datetime,
                       diagnosis: Diagnosis | None = None) -> pd.DataFrame:
    """An observability table's rows of a window: as stored, else (with a diagnosis) computed in memory."""
    if diagnosis is not None:
        return diagnosis.rows(table, start, end)
    if table_exists(engine, table):
        return _stored_rows(engine, table, start, end)
    return pd.DataFrame()


class Diagnosis:
    """The observability phase's tables of an hour as its diagnosis run writes them: read from the store when
    that run has written the hour, else computed in memory by the phase's entry point (once per hour), so
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
            # the phase's published entry point (docs/architecture.md); loaded only when an hour needs it
            from obs_pipelines.observability.api import hour_tables

            try:
                self._computed[start] = hour_tables(self.engine, start, end, self.settings, self.prices)
            except Exception:  # noqa: BLE001 (a diagnosis never fails the check: the fallback attribution stands)
                log.exception(f"observability attribution of {start:%Y-%m-%d %H:%M} could not be computed")
                self._computed[start] = {}
        return self._computed[start].get(table, pd.DataFrame())


def _stored_rows(engine: Engine, table: str, start: datetime, end: datetime) -> pd.DataFrame:
    return read_window(engine, table, start, end, time_column="window_start", typed=False)

