"""Incidents from the ``alerts`` table: one per alert row, with its start, end, duration, time to resolve,
severity, cause and exemplars (pure; the rows come from ``reading.read_alerts``).

An alert's row keeps its first breached window (``window_start``), the newest window judged
(``last_window_start``) and the good windows seen since the last breach (``good_windows``). The breach ended
where the run of good windows began: ``last_window_start - (good_windows - 1) x window``; a resolved alert
resolved at the end of ``last_window_start`` (``resolve_after_windows`` good windows later). Both assume the
rule's windows are judged back to back, which is how the rules run (hourly partitions in order).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pandas as pd


def _minutes(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds() / 60


def incident(row: dict[str, Any]) -> dict[str, Any]:
    """One alert row as an incident (times as ISO strings, durations in minutes)."""
    payload = json.loads(row["payload"]) if row.get("payload") else {}
    start = pd.Timestamp(row["window_start"]).to_pydatetime()
    window = pd.Timestamp(row["window_end"]).to_pydatetime() - start
    last = pd.Timestamp(row["last_window_start"]).to_pydatetime()
    good = int(row["good_windows"] or 0)
    resolved = row["status"] == "resolved"
    # end of the breach: the first good window of the final run of good windows (firing: None while it lasts)
    breach_end: datetime | None = (last - (good - 1) * window) if good > 0 else None
    if not resolved and good == 0:
        breach_end = None
    resolved_at = last + window if resolved else None
    attribution = payload.get("attribution") or []
    cause = ", ".join(f"{a.get('dimension')}={a.get('value')} ({float(a.get('share') or 0):.0%})"
                      for a in attribution[:3])
    return {
        "id": row["id"], "rule": row["rule"], "severity": row["severity"], "status": row["status"],
        "group": payload.get("group") or json.loads(row.get("group_key") or "{}"),
        "metric": payload.get("metric"), "value": payload.get("value"), "threshold": payload.get("threshold"),
        "start": start.isoformat(),
        "end": breach_end.isoformat() if breach_end else None,
        "duration_minutes": _minutes(breach_end - start) if breach_end else None,
        "resolved_at": resolved_at.isoformat() if resolved_at else None,
        "time_to_resolve_minutes": _minutes(resolved_at - start) if resolved_at else None,
        "cause": cause or None,
        "summary": payload.get("summary"),
        "exemplar_trace_ids": list(payload.get("exemplar_trace_ids") or [])[:5],
        "link": payload.get("link"),
    }


def incidents(alert_rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Every alert row as an incident, oldest first (ties by id: a stable order)."""
    rows = alert_rows.sort_values(["window_start", "id"], kind="stable").to_dict("records")
    return [incident(r) for r in rows]
