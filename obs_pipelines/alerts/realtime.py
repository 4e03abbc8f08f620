"""The fast path: the rules on the monitoring rollups judged over the last minutes of spans, so that an outage
that starts now pages within minutes instead of after the hourly run (issue 24).

Every ``realtime_interval_seconds`` the sensor (alerts/defs.py) computes the rule tables' rows over trailing
windows of spans (5 and 15 minutes by default) with the monitoring phase's own rollup functions (its published
entry point ``monitoring.rollups``: the same definition of a request, an error, a step as the hourly tables),
puts them in place of the current hour's row and judges them with the same rule and the same evaluation
(alerts/evaluate.py) against the same history the hourly check uses (the rollup table's earlier hours).

The breaches go to the results queue as rows of the current hour, so an alert fired here is THE alert of that
rule and group: the hourly check of the hour judges the same (rule, group, hour) and updates its figures
(results.py) instead of paging again. The fast path never resolves an alert (it queues breaches only): the
hourly tables stay the record of good hours.

Counts (request_count, error_count, span_count, ...) of a window are scaled to the hour (x 60 / minutes) when
they are the rule's metric, so an hourly threshold or baseline compares like with like; the sample size a rule
needs (``min_samples``) is counted on the window's own spans. Count metrics (traffic) are judged only on the
longest window: the newest minutes always miss the requests still in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import results as results_queue
from obs_pipelines.alerts import source
from obs_pipelines.alerts.evaluate import HOUR, RuleResult, evaluate
from obs_pipelines.monitoring import (
    rollups,  # the monitoring phase's published entry point (docs/architecture.md)
)

# rule table -> the rollup over any window of spans (the hourly table's columns)
FAST_TABLES: dict[str, Callable[[Engine, datetime, datetime], pd.DataFrame]] = {
    "request_rollup_hourly": rollups.request_rollup,
    "step_rollup_hourly": rollups.step_rollup,
    "error_rollup_hourly": rollups.error_rollup,
}
# columns that count within the window: scaled to the hour when a rule's metric reads them
COUNT_COLUMNS = {"request_count", "error_count", "span_count", "latency_count"}


def fast_rules(rules: Iterable) -> list:
    """The rules the fast path judges: thresholds and anomalies on the monitoring rollups."""
    return [r for r in rules if r.kind in ("threshold", "anomaly") and r.table in FAST_TABLES]


def metric_columns(rule) -> set[str]:
    return {part.strip() for part in rule.metric.split("/")}


def windows_for(rule, windows_minutes: list[int]) -> list[int]:
    """Shortest first; a count metric only on the longest window (see the module's docstring)."""
    ordered = sorted(set(windows_minutes))
    if metric_columns(rule) & COUNT_COLUMNS and "/" not in rule.metric:
        return ordered[-1:]
    return ordered


@dataclass
class FastBreach:
    """One rule's breach of one group over a trailing window, judged as the rule's result for ``hour``."""

    rule: object
    hour: datetime
    minutes: int
    window_start: datetime
    window_end: datetime
    result: RuleResult


def hourly_scale(rule, rows: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """The window's rows with the rule's count metric columns scaled to an hour (x 60 / minutes); the sample
    column keeps the window's own count unless it is the metric itself."""
    rows = rows.copy()
    factor = 60.0 / minutes
    for column in metric_columns(rule) & COUNT_COLUMNS:
        if column in rows.columns and "/" not in rule.metric:
            rows[column] = pd.to_numeric(rows[column], errors="coerce") * factor
    return rows


def judge(engine: Engine, rules: list, now: datetime, windows_minutes: list[int],
          frames: dict | None = None) -> list[FastBreach]:
    """Every breach of ``rules`` over the trailing windows ending at ``now`` (naive UTC), each judged as the
    current hour's result of its rule: the hour's row replaced by the window's, the earlier hours from the
    rule's table (its history). A group breached in several windows is reported once (the shortest)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    frames = {} if frames is None else frames  # (table, minutes) -> the window's rollup rows
    out: list[FastBreach] = []
    for rule in rules:
        history = None
        seen: set[str] = set()
        for minutes in windows_for(rule, windows_minutes):
            start = now - timedelta(minutes=minutes)
            key = (rule.table, minutes)
            if key not in frames:
                frames[key] = FAST_TABLES[rule.table](engine, start, now)
            window = frames[key]
            if window.empty:
                continue
            if history is None:
                history = source.read_rule_frame(engine, rule, hour, hour + HOUR)
                if not history.empty:
                    history = history[pd.to_datetime(history["window_start"]) != pd.Timestamp(hour)]
            current = hourly_scale(rule, window, minutes).assign(window_start=hour, window_end=hour + HOUR)
            frame = pd.concat([f for f in (history, current) if f is not None and not f.empty], ignore_index=True)
            for result in evaluate(rule, frame, hour, hour + HOUR):
                if result.judged and not result.passed and result.group_key not in seen:
                    seen.add(result.group_key)
                    result.detail = {**result.detail, "realtime_window_minutes": minutes}
                    out.append(FastBreach(rule, hour, minutes, start, now, result))
    return out


def metric_label(metric: str, minutes: int) -> str:
    """The metric as the fast path's alert names it: ``error_rate (last 5 min)``."""
    return f"{metric} (last {minutes} min)"


def queue_rows(breaches: list[FastBreach], metric_of: Callable[[object], str], link_of: Callable[[object, datetime], str],
               found: dict[int, tuple[list, list]], now: datetime) -> list[dict]:
    """The results-queue rows of the breaches: one per rule and window length, as a row of the current hour,
    the metric named with its window (``error_rate (last 5 min)``), run_id marking the fast path."""
    by_rule: dict[tuple[str, int], list[FastBreach]] = {}
    for b in breaches:
        by_rule.setdefault((b.rule.name, b.minutes), []).append(b)
    rows = []
    for (_, minutes), part in by_rule.items():
        first = part[0]
        rows.append(results_queue.row(
            first.rule.name, metric_label(metric_of(first.rule), minutes), first.hour, first.hour + HOUR,
            [b.result for b in part], link_of(first.rule, first.hour), found,
            f"{results_queue.REALTIME_RUN_PREFIX}{now:%Y-%m-%dT%H:%M:%S}", now))
    return rows
