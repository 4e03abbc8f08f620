"""Numbers for people: alert summaries, check metadata and previews print these, never ``3.345e+04`` or
``99.99999999999991``. Plain functions (no dagster, no store).

The unit of a figure is read from its metric's name (``latency_p95_ms``: a duration, ``error_rate``: a
percentage, ``cost_usd``: dollars, ``request_count``: a whole count); an unknown name gets three significant
digits with thousands separators.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# metric-name words -> unit (first match wins; ratios "a / b" take the numerator's unit unless it is a count)
_UNITS = (
    ("factor", ("burn",)),  # a burn rate is a multiple of the allowed pace, not a share
    ("duration", ("_ms", "latency", "duration")),
    ("percent", ("rate", "share", "ratio", "attainment", "budget", "_pct")),
    ("usd", ("usd", "cost")),
    ("count", ("count", "tokens", "requests", "calls", "spans", "samples", "retrievals")),
)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(value: Any, digits: int = 3) -> str:
    """``33450.0`` -> ``33,450``; ``0.733275`` -> ``0.733``; ``99.99999999999991`` -> ``100``;
    ``0.000123456`` -> ``0.000123`` (no exponent); text and booleans as they are; NaN / None -> ``n/a``."""
    if isinstance(value, (bool, str)):
        return str(value)
    x = _finite(value)
    if x is None:
        return "n/a"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{round(x):,}"
    text = np.format_float_positional(x, precision=digits, fractional=False, trim="-")
    return text.rstrip(".")


def percent(share: Any) -> str:
    """A share as a percentage: ``0.0224`` -> ``2.2%``; a small non-zero share keeps two significant digits
    (``35 / 1563`` is ``2.2%``, ``1 / 20000`` is ``0.005%``, never ``0.0``)."""
    x = _finite(share)
    if x is None:
        return "n/a"
    pct = x * 100
    if pct == 0 or abs(pct) >= 10:
        return f"{pct:,.0f}%" if abs(pct - round(pct)) < 0.05 or abs(pct) >= 100 else f"{pct:.1f}%"
    if abs(pct) >= 1:
        return f"{pct:.1f}%".replace(".0%", "%")
    return np.format_float_positional(pct, precision=2, fractional=False, trim="-").rstrip(".") + "%"


def duration_ms(ms: Any) -> str:
    """``845`` -> ``845 ms``; ``33450`` -> ``33.5 s``; ``125000`` -> ``2 min 5 s``; ``5400000`` -> ``1 h 30 min``."""
    x = _finite(ms)
    if x is None:
        return "n/a"
    sign, x = ("-" if x < 0 else ""), abs(x)
    if round(x) < 1000:
        return f"{sign}{number(x)} ms"
    seconds = x / 1000
    if seconds < 60:
        return f"{sign}{seconds:.1f} s".replace(".0 s", " s")
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes} min" + (f" {seconds} s" if seconds else "")
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours} h" + (f" {minutes} min" if minutes else "")


def usd(value: Any) -> str:
    """``1234.5`` -> ``$1,234.50``; ``0.0026`` -> ``$0.0026`` (small amounts keep 2 significant digits)."""
    x = _finite(value)
    if x is None:
        return "n/a"
    sign, x = ("-" if x < 0 else ""), abs(x)
    if x >= 1 or x == 0:
        return f"{sign}${x:,.2f}"
    return f"{sign}$" + np.format_float_positional(x, precision=2, fractional=False, trim="-").rstrip(".")


def unit_of(metric: str) -> str:
    """factor, duration, percent, usd, count or number, from a metric's (or column's) name."""
    name = metric.lower().split("/")[0].strip() if "/" in metric else metric.lower()
    if "/" in metric:
        denominator = metric.lower().split("/")[1].strip()
        counts = dict(_UNITS)["count"]
        if any(w in name for w in counts) and any(w in denominator for w in counts):
            return "number"  # count / count: a plain ratio (retries per call ...)
    for unit, words in _UNITS:
        if any(w in name for w in words):
            return unit
    return "number"


def metric_value(metric: str, value: Any) -> str:
    """``value`` in the unit its metric's name implies (see unit_of)."""
    if isinstance(value, (bool, str)):
        return str(value)
    unit = unit_of(metric)
    if unit == "factor":
        return f"{number(value)}x"
    if unit == "duration":
        return duration_ms(value)
    if unit == "percent":
        return percent(value)
    if unit == "usd":
        return usd(value)
    return number(value)


def rounded(value: Any, digits: int = 4) -> Any:
    """A float for metadata the UI plots: ``digits`` significant digits (``0.733275412684622`` -> ``0.7333``),
    integers as ints; other values unchanged."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return value
    x = float(value)
    if not math.isfinite(x):
        return x
    if x == int(x) and abs(x) < 1e15:
        return int(x)
    return float(f"{x:.{digits}g}")
