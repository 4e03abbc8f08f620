"""The alert JSON of ARCHITECTURE.md ("Alerts"): id, rule, severity, status, metric, value, threshold,
window_start, window_end, group, attribution, exemplar_trace_ids, summary, plus the UI link of the partition.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from obs_pipelines import formatting
from obs_pipelines.alerts.evaluate import group_key


def alert_id(rule: str, window_start: datetime, group: dict[str, Any]) -> str:
    """Stable for one rule + window + group: a redelivery carries the same id."""
    raw = f"{rule}|{window_start:%Y-%m-%dT%H:%M}|{group_key(group)}"
    return f"{rule}-{window_start:%Y%m%d%H}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def format_value(value: Any, metric: str = "") -> str:
    """A figure for people, in its metric's unit (obs_pipelines/formatting.py): 33.5 s, 84%, $0.0026, 1,563."""
    if value is None:
        return "n/a"
    return formatting.metric_value(metric, value) if metric else formatting.number(value)


def summary_line(rule: str, status: str, metric: str, value: Any, threshold: Any, group: dict[str, Any],
                 window_start: datetime, attribution: list[dict]) -> str:
    """One readable line: what, where, how much, and the top contributor."""
    where = ", ".join(f"{k}={v}" for k, v in group.items()) or "overall"
    line = (f"[{status.upper()}] {rule}: {metric} = {format_value(value, metric)} (threshold {format_value(threshold, metric)}) for {where} "
            f"in {window_start:%Y-%m-%d %H:00} UTC")
    if attribution:
        line += f"; top contributor {contributor_text(attribution[0])}"
    cluster = next((a for a in attribution[1:] if a.get("dimension") == CLUSTER), None)
    if cluster:
        line += f"; failing inputs: {contributor_text(cluster)}"
    return line


CLUSTER = "input_cluster"  # a quality alert's cluster of failing inputs (causes.failure_cluster)


DRIVERS = {"unit": "per item", "volume": "volume"}


def contributor_text(top: dict) -> str:
    """``prompt_version=v2 (100% of the change, per item: 0.0021 vs 0.0007 baseline)``: the value, its share
    of the group's change against the baseline, whether the change is per item (cost per call, errors per span,
    a mean score) or volume (more calls), and the value's figure per item now vs in the baseline."""
    details = []
    if isinstance(top.get("share"), int | float):
        details.append(f"{top['share']:.0%} of the change")
    figure = ""
    if top.get("now") is not None:
        figure = (f"{format_value(top['now'])} vs {format_value(top['baseline'])} baseline" if top.get("baseline") is not None
                  else f"{format_value(top['now'])}, new")
    driver = DRIVERS.get(top.get("driver"), "")
    if driver or figure:
        details.append(": ".join(x for x in (driver, figure) if x))
    if top.get("failure_share") is not None:  # a cluster of failing inputs against its share of the traffic
        details.append(f"{top['failure_share']:.0%} of the day's failures from {top['traffic_share']:.0%} of its "
                       f"traffic")
    if top.get("path"):  # a looping tool's repeated path, a path's tool
        details.append(f"repeated path: {top['path']}")
    if top.get("tool"):
        details.append(f"tool {top['tool']}")
    text = f"{top['dimension']}={top['value']}"
    return f"{text} ({', '.join(details)})" if details else text


def build_alert(*, rule, status: str, metric: str, value: Any, threshold: Any, window_start: datetime,
                window_end: datetime, group: dict[str, Any], attribution: list[dict], exemplar_trace_ids: list[str],
                link: str | None, alert_id_: str | None = None, samples: Any = None) -> dict[str, Any]:
    return {
        "id": alert_id_ or alert_id(rule.name, window_start, group),
        "rule": rule.name,
        "severity": rule.severity,
        "status": status,
        "metric": metric,
        # 6 significant digits: 99.99999999999991 is 100 (float noise of the rollups' arithmetic)
        "value": formatting.rounded(value, 6),
        "threshold": formatting.rounded(threshold, 6),
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "group": group,
        "samples": samples,
        "attribution": attribution,
        "exemplar_trace_ids": exemplar_trace_ids,
        "summary": summary_line(rule.name, status, metric, value, threshold, group, window_start, attribution),
        "link": link,
    }


def notification(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of one notification: the alert itself, or for related alerts of the same window and status
    a group listing the rule names."""
    if len(alerts) == 1:
        return alerts[0]
    first = alerts[0]
    rules = sorted({a["rule"] for a in alerts})
    return {
        "status": first["status"],
        "window_start": first["window_start"],
        "window_end": first["window_end"],
        "rules": rules,
        "summary": f"[{first['status'].upper()}] {len(alerts)} alerts in {first['window_start'][:13].replace('T', ' ')}:00 UTC: "
                   + "; ".join(_what_and_where(a) for a in alerts),
        "alerts": alerts,
    }


def _what_and_where(alert: dict[str, Any]) -> str:
    """``provider_error_rate (provider=openai: error_rate 84%)``: which rule broke, where, by how much."""
    where = ", ".join(f"{k}={v}" for k, v in (alert.get("group") or {}).items()) or "overall"
    metric = str(alert.get("metric") or "")
    value = alert.get("value")
    figure = f" {metric} {format_value(value, metric)}" if value is not None and metric else ""
    return f"{alert['rule']} ({where}:{figure})" if figure else f"{alert['rule']} ({where})"


def idempotency_key(alerts: list[dict[str, Any]]) -> str:
    """Same alerts in the same state -> same key, on every attempt and after a crash."""
    raw = json.dumps(sorted(f"{a['id']}:{a['status']}" for a in alerts))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
