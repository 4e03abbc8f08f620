"""The cause of an alert: which values of which dimensions (prompt version, model, step, error class, tool ...)
carry the change of the alert's group against its baseline. Pure pandas, no store: ``causes.py`` reads the
per-value aggregates of the alert's window and of its baseline windows.

Additive metrics (cost, tokens, errors, loops, scores summed). Each value i has an amount A_i over a volume n_i
(calls, spans, responses) in the window (') and in the baseline (the mean baseline window). The group's change
``Δ = A' − A`` splits exactly into

    volume  V = (N' − N)·U          more calls at the baseline amount per call U = A / N
    unit    W = N'·(U' − U)         more per call: more tokens, a pricier model, a lower score ...

and each into the values' parts (the price / volume / mix split):

    unit_i = (n_i' − s_i·N')·(u_i − U)  +  n_i'·(u_i' − u_i)      (Σ unit_i = W)
             calls moved to a value           the value itself
             dearer than the group's average  got dearer per call
    vol_i  = (n_i' − n_i)·U                                         (Σ vol_i = V)

with s_i = n_i / N and u_i = A_i / n_i (a value new in the window takes u_i = u_i': it is all mix). A value
that replaced another (prompt v2 for v1) carries the unit change it brought; the one it replaced carries none.
Dimensions that split the amount but not the volume (error classes of a provider's spans) give each value the
group's volume: unit_i = A_i' − A_i·N'/N, vol_i = A_i·(N'/N − 1). For a mean (an eval score, a top document
score) only the unit part exists.

The group's driver is the larger of V and W; a value's contribution is its part of the driver, its ``share``
= contribution / Δ. Values are ranked by ``share`` minus the share a uniform change would give them (their share
of the baseline amount for a unit change, of the baseline volume for a volume change): a value that carries
the change only because it carries the whole group (a route's only model) ranks after the value that changed.

Percentiles (a step's p95) are not additive: a step's part is its own shift ``p_i' − p_i`` against the group's
``P' − P``, and a uniform slowdown gives each step ``p_i / P`` of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_CONTRIBUTORS = 5
# per-value aggregates: dimension, value, amount, volume (null: the dimension does not split the volume)
COLUMNS = ["dimension", "value", "amount", "volume"]


def round_figure(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _safe(num: float, den: float) -> float:
    return num / den if den else np.nan


def additive(now: pd.DataFrame, base: pd.DataFrame, totals_now: tuple[float, float],
             totals_base: tuple[float, float], mean: bool = False, order: tuple[str, ...] = ()) -> list[dict]:
    """Ranked contributors of an additive metric. ``now`` / ``base``: per-value aggregates (``COLUMNS``) of the
    window and of the mean baseline window; ``totals_*``: the group's (amount, volume). ``mean``: the alert's
    metric is the amount per unit (a mean score): only the unit change counts. ``order``: the dimensions in the
    order a tie names them (the family's own first: a provider before the model it serves)."""
    a1, n1 = map(float, totals_now)
    a0, n0 = map(float, totals_base)
    if n1 <= 0:
        return []
    unit0 = _safe(a0, n0)
    if not np.isfinite(unit0):  # no baseline at all: everything is new, judged against zero
        unit0 = 0.0
    volume_effect = (n1 - n0) * unit0
    unit_effect = n1 * (a1 / n1 - unit0)
    driver = "unit" if mean or abs(unit_effect) >= abs(volume_effect) else "volume"
    delta = unit_effect if mean else a1 - a0
    if abs(delta) < 1e-12:
        return []
    keys = ["dimension", "value"]
    rows = now.merge(base, on=keys, how="outer", suffixes=("_now", "_base"))
    rows[["amount_now", "amount_base"]] = rows[["amount_now", "amount_base"]].fillna(0.0)
    split_volume = rows["volume_now"].notna() | rows["volume_base"].notna()
    n_now = rows["volume_now"].astype("float64").fillna(0.0)
    n_base = rows["volume_base"].astype("float64").fillna(0.0)
    # per item: over the value's own volume, or the group's for a dimension that does not split it
    per_now, per_base = n_now.where(split_volume, n1), n_base.where(split_volume, n0)
    u_now = rows["amount_now"] / per_now.where(per_now > 0)
    u_base = (rows["amount_base"] / per_base.where(per_base > 0)).fillna(u_now).fillna(0.0)
    u_now = u_now.fillna(0.0)
    share_base = n_base / n0 if n0 else 0.0
    unit = np.where(split_volume, (n_now - share_base * n1) * (u_base - unit0) + n_now * (u_now - u_base),
                    rows["amount_now"] - rows["amount_base"] * _ratio(n1, n0))
    vol = np.where(split_volume, (n_now - n_base) * unit0, rows["amount_base"] * (_ratio(n1, n0) - 1.0))
    expected_unit = rows["amount_base"] / a0 if a0 else pd.Series(0.0, index=rows.index)
    expected_volume = np.where(split_volume, n_base / n0 if n0 else 0.0, expected_unit)
    if driver == "unit":
        part, expected, effect = unit, expected_unit, unit_effect
    else:
        part, expected, effect = vol, expected_volume, volume_effect
    seen = ~split_volume | (n_base > 0)  # a value new in the window has no baseline figure to show
    rows = rows.assign(share=part / delta, excess=part / delta - np.asarray(expected) * effect / delta,
                       unit_share=unit / delta, volume_share=vol / delta, per_now=u_now,
                       per_base=u_base.where(seen, np.nan),
                       expected=np.asarray(expected, dtype="float64"))
    entries = []
    for r in _top(rows, order):
        entry = {"dimension": r.dimension, "value": str(r.value), "share": round_figure(r.share),
                 "baseline_share": round_figure(r.expected), "now": round_figure(r.per_now), "baseline": round_figure(r.per_base),
                 "driver": driver}
        if not mean:
            entry.update(unit_share=round_figure(r.unit_share), volume_share=round_figure(r.volume_share))
        entries.append(entry)
    return entries


def _ratio(n1: float, n0: float) -> float:
    return n1 / n0 if n0 else 1.0


def shifts(now: pd.DataFrame, base: pd.DataFrame, group_now: float, group_base: float,
           order: tuple[str, ...] = ()) -> list[dict]:
    """Ranked contributors of a non-additive statistic (a p95): ``now`` / ``base`` hold ``dimension``, ``value``
    and ``stat`` per value; ``group_*`` the group's statistic. A value unseen in the baseline is not judged."""
    delta = group_now - group_base
    if not np.isfinite(delta) or abs(delta) < 1e-12 or not group_base:
        return []
    rows = now.merge(base, on=["dimension", "value"], how="inner", suffixes=("_now", "_base"))
    part = rows["stat_now"] - rows["stat_base"]
    expected = rows["stat_base"] / group_base
    rows = rows.assign(share=part / delta, excess=part / delta - expected, expected=expected)
    return [{"dimension": r.dimension, "value": str(r.value), "share": round_figure(r.share),
             "baseline_share": round_figure(r.expected), "now": round_figure(r.stat_now), "baseline": round_figure(r.stat_base)}
            for r in _top(rows, order)]


def _top(rows: pd.DataFrame, order: tuple[str, ...] = ()):
    """Values that moved with the group (share > 0), most excess first; ties (to 1e-9) by share, then by the
    dimension's place in ``order``, then by name."""
    share = pd.to_numeric(rows["share"], errors="coerce").astype("float64")
    rows = rows[(share > 1e-9).to_numpy() & np.isfinite(share.to_numpy())]
    rank = {d: i for i, d in enumerate(order)}
    rows = rows.assign(_e=np.round(rows["excess"].astype("float64"), 9),
                       _s=np.round(rows["share"].astype("float64"), 9),
                       _d=[rank.get(d, len(rank)) for d in rows["dimension"]], _v=rows["value"].astype(str))
    rows = rows.sort_values(["_e", "_s", "_d", "dimension", "_v"], ascending=[False, False, True, True, True],
                            kind="stable")
    return rows.head(MAX_CONTRIBUTORS).itertuples(index=False)
