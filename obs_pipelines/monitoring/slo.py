"""Service-level objectives over the hourly request rollup: a pure function of the rollup frame.

An SLO (from settings) says: in each hourly window, ``metric`` of the requests (overall, of one ``route``
or of one ``model``) must meet ``objective`` (e.g. ``"< 2500"``), and at least ``target`` of the windows
must do so. Per window this computes:

* ``value``: the metric in that window, and ``met``: whether it meets the objective. A window without
  requests for the SLO's scope is not judged (``value`` and ``met`` null), so idle hours neither spend
  nor earn budget.
* ``attainment``: share of judged windows that met the objective over the trailing compliance period
  (default 720 windows = 30 days of hours, including the current one).
* ``error_budget_remaining``: ``1 - bad / allowed`` with ``allowed = (1 - target) * judged`` over the
  compliance period; 1 = untouched, 0 = spent, negative = overspent. With ``target == 1`` nothing is
  allowed: 1 while no window was bad, ``-inf`` after.
* ``burn_rate_1h`` / ``burn_rate_6h``: how fast the budget burns over the last 1 and 6 windows:
  ``(bad / judged) / (1 - target)`` -- 1 means exactly on budget; a multi-window alert fires when both the
  short and the long rate are high (the short one confirms the problem is still happening).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from obs_pipelines.store import db

HOUR = timedelta(hours=1)  # the request rollup's window

METRIC_ALIASES = {
    "p50_latency_ms": "latency_p50_ms",
    "p90_latency_ms": "latency_p90_ms",
    "p95_latency_ms": "latency_p95_ms",
    "p99_latency_ms": "latency_p99_ms",
    "max_latency_ms": "latency_max_ms",
    "mean_latency_ms": "latency_mean_ms",
    "avg_latency_ms": "latency_mean_ms",
    "throughput": "throughput_per_min",
    "requests": "request_count",
    "errors": "error_count",
}
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
        "!=": operator.ne}
_OBJECTIVE = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
SLO_COLUMNS = [
    "window_start", "window_end", "slo_name", "metric", "dimension", "dimension_value", "objective", "target",
    "value", "met", "windows_judged", "attainment", "error_budget_remaining", "burn_rate_1h", "burn_rate_6h",
    "computed_at",
]


def parse_objective(text: str) -> tuple[str, float]:
    """``"< 2500"`` -> ``("<", 2500.0)``; raises ValueError on anything else."""
    m = _OBJECTIVE.match(str(text))
    if not m:
        raise ValueError(f"invalid SLO objective {text!r}: use an operator and a number, e.g. '< 2500'")
    return m.group(1), float(m.group(2))


@dataclass(frozen=True)
class SLO:
    name: str
    metric: str
    objective: str
    target: float = 0.99
    route: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        parse_objective(self.objective)
        if not 0 < self.target <= 1:
            raise ValueError(f"SLO {self.name}: target must be in (0, 1], got {self.target}")
        if self.route and self.model:
            raise ValueError(f"SLO {self.name}: give route or model, not both")

    @classmethod
    def from_any(cls, spec: SLO | Mapping[str, Any] | Any) -> SLO:
        if isinstance(spec, SLO):
            return spec
        if not isinstance(spec, Mapping):  # e.g. settings.SLOSpec (pydantic)
            spec = spec.model_dump() if hasattr(spec, "model_dump") else vars(spec)
        known = {k: spec[k] for k in ("name", "metric", "objective", "target", "route", "model") if k in spec}
        return cls(**known)

    @property
    def column(self) -> str:
        return METRIC_ALIASES.get(self.metric, self.metric)

    @property
    def scope(self) -> tuple[str, str | None]:
        if self.route:
            return "route", self.route
        if self.model:
            return "model", self.model
        return "overall", None


def slo_status(
    rollup: pd.DataFrame,
    slos: Iterable[SLO | Mapping[str, Any]],
    compliance_windows: int = 720,
) -> pd.DataFrame:
    """SLO status per (SLO, hourly window) from the hourly request rollup frame (hourly only: the burn rates
    are named for 1 and 6 windows of one hour).

    ``rollup`` has the columns of ``request_rollup_hourly`` for consecutive windows (the trailing
    compliance period up to the windows of interest). Windows missing from the frame, and windows
    without requests in the SLO's scope, are not judged.
    """
    slos = [SLO.from_any(s) for s in slos]
    if not slos or rollup.empty:
        return pd.DataFrame(columns=SLO_COLUMNS)
    starts = pd.to_datetime(rollup["window_start"])
    grid = pd.date_range(starts.min(), starts.max(), freq=pd.Timedelta(HOUR))
    frames = []
    for slo in slos:
        if slo.column not in rollup.columns:
            raise ValueError(f"SLO {slo.name}: unknown metric {slo.metric!r} (not a request rollup column)")
        dim, value = slo.scope
        rows = rollup[rollup["dimension"] == dim]
        if value is not None:
            rows = rows[rows["dimension_value"] == value]
        if "request_count" in rows:
            rows = rows[pd.to_numeric(rows["request_count"]) > 0]
        measured = pd.Series(
            pd.to_numeric(rows[slo.column]).astype("float64").to_numpy(),
            index=pd.to_datetime(rows["window_start"]),
        )
        measured = measured[~measured.index.duplicated(keep="last")].reindex(grid)
        op, threshold = parse_objective(slo.objective)
        judged = measured.notna()
        good = judged & _OPS[op](measured.fillna(np.nan), threshold)
        bad = judged & ~good

        def trailing(series: pd.Series, n: int) -> pd.Series:
            return series.astype("float64").rolling(n, min_periods=1).sum()

        judged_n = trailing(judged, compliance_windows)
        bad_n = trailing(bad, compliance_windows)
        allowed_share = 1.0 - slo.target
        allowed = allowed_share * judged_n
        with np.errstate(divide="ignore", invalid="ignore"):
            if allowed_share > 0:
                remaining = 1.0 - bad_n / allowed
            else:
                remaining = pd.Series(np.where(bad_n > 0, -math.inf, 1.0), index=grid)
            remaining = remaining.where(judged_n > 0)
            attainment = ((judged_n - bad_n) / judged_n).where(judged_n > 0)
            burn = {}
            for label, n in (("burn_rate_1h", 1), ("burn_rate_6h", 6)):
                j, b = trailing(judged, n), trailing(bad, n)
                share = (b / j).where(j > 0)
                burn[label] = share / allowed_share if allowed_share > 0 else share.where(share == 0, math.inf)
        frames.append(pd.DataFrame({
            "window_start": grid,
            "window_end": grid + pd.Timedelta(HOUR),
            "slo_name": slo.name,
            "metric": slo.column,
            "dimension": dim,
            "dimension_value": value,
            "objective": slo.objective,
            "target": slo.target,
            "value": measured.to_numpy(),
            "met": pd.array(np.where(judged, good, None), dtype="boolean"),
            "windows_judged": judged_n.astype("int64").to_numpy(),
            "attainment": attainment.to_numpy(),
            "error_budget_remaining": remaining.to_numpy(),
            "burn_rate_1h": burn["burn_rate_1h"].to_numpy(),
            "burn_rate_6h": burn["burn_rate_6h"].to_numpy(),
        }))
    out = pd.concat(frames, ignore_index=True)
    out["computed_at"] = db.utcnow()
    return out[SLO_COLUMNS]


__all__ = ["METRIC_ALIASES", "SLO", "SLO_COLUMNS", "parse_objective", "slo_status"]
