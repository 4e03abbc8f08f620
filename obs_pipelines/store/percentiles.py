"""THE percentile engine, one per dialect: exact percentiles, linearly interpolated between the closest ranks.

* PostgreSQL: ``percentile_cont`` over an array of fractions, in the query (``pg_percentiles``), unpacked into
  one float column per fraction (``unpack_pg_percentiles``);
* SQLite: pandas' ``quantile`` (its default, linear interpolation: ``percentile_cont``'s), over the fetched
  values, overall (``percentiles``) or per group (``grouped_percentiles``).

Monitoring's rollups (p50 / p90 / p95 / p99 of latencies) and observability's step / route percentiles (p50 /
p95 of durations) both compute through here, so a number is the same whichever phase and dialect computed it.
Both take durations in milliseconds from ``pg_ms`` in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.core.groupby import SeriesGroupBy


def pg_ms(start: str, end: str) -> str:
    """SQL (PostgreSQL) of the milliseconds from ``start`` to ``end`` (date_part's double precision: several
    times cheaper than EXTRACT's numeric)."""
    return f"date_part('epoch', {end} - {start}) * 1000.0"


def pg_percentiles(value: str, quantiles: Sequence[float]) -> str:
    """SQL (PostgreSQL) of the aggregate giving the ``quantiles`` of ``value`` as one array (NULL for a group
    without a value): ``unpack_pg_percentiles`` turns it into columns."""
    return f"percentile_cont(ARRAY[{', '.join(str(q) for q in quantiles)}]) WITHIN GROUP (ORDER BY {value})"


def unpack_pg_percentiles(frame: pd.DataFrame, column: str, names: Sequence[str]) -> pd.DataFrame:
    """Replace the array column ``column`` of a PostgreSQL result by one float64 column per fraction, named
    ``names`` (NaN where the array is NULL)."""
    arrays = frame.pop(column)
    arr = np.array([a if a is not None else [np.nan] * len(names) for a in arrays.tolist()], dtype="float64")
    arr = arr.reshape(len(frame), len(names))
    for i, name in enumerate(names):
        frame[name] = arr[:, i]
    return frame


def percentiles(values: pd.Series, quantiles: Sequence[float]) -> list[float]:
    """The ``quantiles`` of ``values`` (NaN ignored; all NaN for no value)."""
    values = values.astype("float64")
    if not values.notna().any():
        return [float("nan")] * len(quantiles)
    return [float(v) for v in values.quantile(list(quantiles)).to_numpy()]


def grouped_percentiles(grouped: SeriesGroupBy, quantiles: Sequence[float], names: Sequence[str]) -> pd.DataFrame:
    """The ``quantiles`` of each group of ``grouped`` as columns ``names``, indexed like the groups."""
    frame = grouped.quantile(np.asarray(quantiles, dtype="float64")).unstack(level=-1)
    frame.columns = list(names)
    return frame


__all__ = ["grouped_percentiles", "percentiles", "pg_ms", "pg_percentiles", "unpack_pg_percentiles"]
