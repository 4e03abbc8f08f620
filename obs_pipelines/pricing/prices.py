"""Model prices: genai-prices' bundled (offline) data plus per-model overrides from YAML.

How a span's cost is found
--------------------------
* the app-reported ``cost_usd`` wins when present;
* else a user override for the model (USD per 1M tokens: ``input``, ``output``, ``cached_input``
  (alias ``cached``), optional ``request`` (USD per call));
* else genai-prices: provider + model are matched with genai-prices' own matching
  (``DataSnapshot.find_provider_model``, i.e. its provider aliases, model match clauses and fallback
  providers); when the span's provider is unknown to genai-prices, or does not list the model, the model
  alone is matched;
* else the cost is unknown (NaN) and the span is counted as unpriced.

Vectorized, with genai-prices' semantics
----------------------------------------
For a given model, request time and tier, genai-prices' price is linear in the token counts:
``(input - cached) * input_mtok + cached * cache_read_mtok + output * output_mtok`` (per 1M tokens) plus
``requests_kcount / 1000`` per call. ``input`` includes cached tokens (as in genai-prices and the spans
contract); when the model has no ``cache_read_mtok`` price, cached tokens are billed as input (genai-prices
then does not split them out). Tiered prices are cliffs on the total input tokens (``input > tier.start``
selects the tier, for every token); conditional prices (price changes on a date, off-peak hours) are
selected by the span's start time.

So prices are resolved once per distinct (provider, model) into a few *rate rows*
(time segment x input-token segment -> rates), and costs are computed with a merge plus column arithmetic
(:meth:`PriceTable.compute_costs`), or inside SQL by joining the same rate rows (the usage rollup).
No per-row price lookup, no Python loop over spans.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

GENAI_PRICES_DIST = "genai-prices"
MTOK = 1_000_000
# input-token upper bound of the last tier segment (no upper bound)
INPUT_MAX = 2**62
RATE_COLUMNS = ("rate_input", "rate_cached", "rate_output", "rate_request")
_OVERRIDE_KEYS = {
    "input": "input",
    "input_mtok": "input",
    "output": "output",
    "output_mtok": "output",
    "cached_input": "cached",
    "cached": "cached",
    "cache_read": "cached",
    "cache_read_mtok": "cached",
    "request": "request",
    "per_request": "request",
}


def _genai_prices_version() -> str:
    from importlib.metadata import version

    return version(GENAI_PRICES_DIST)


def _normalize_overrides(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for model, spec in (overrides or {}).items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"price override for {model!r}: expected a mapping of prices, got {spec!r}")
        norm: dict[str, float] = {}
        for key, value in spec.items():
            canonical = _OVERRIDE_KEYS.get(str(key).lower())
            if canonical is None:
                raise ValueError(
                    f"price override for {model!r}: unknown key {key!r}; "
                    "use input / output / cached_input (USD per 1M tokens) and request (USD per call)"
                )
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"price override for {model!r}: {key} must be a non-negative number")
            norm[canonical] = value
        if "input" not in norm and "output" not in norm:
            raise ValueError(f"price override for {model!r}: give at least input or output")
        norm.setdefault("input", 0.0)
        norm.setdefault("output", 0.0)
        norm.setdefault("cached", norm["input"])
        norm.setdefault("request", 0.0)
        out[str(model).strip().lower()] = norm
    return out


@dataclass(frozen=True)
class PriceMatch:
    """What a (provider, model) of the spans resolved to."""

    source: str  # "override" | "genai-prices" | "unpriced"
    provider_id: str | None = None
    model_id: str | None = None


@dataclass
class PriceTable:
    """Prices in force for a run: genai-prices' bundled data + overrides, with a version string.

    ``version`` (``genai-prices <pkg version>`` plus ``+overrides.<hash>`` when there are overrides) is
    recorded in every usage row, so a re-materialized partition shows which prices it used.
    """

    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    version: str = ""
    _matches: dict[tuple[str, str], tuple[PriceMatch, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.overrides = _normalize_overrides(self.overrides)
        if not self.version:
            self.version = f"genai-prices {_genai_prices_version()}"
            if self.overrides:
                digest = hashlib.sha256(
                    json.dumps(self.overrides, sort_keys=True).encode()
                ).hexdigest()[:10]
                self.version += f"+overrides.{digest}"

    # ---- resolution (once per distinct provider / model) -----------------------------------------

    def match(self, provider: str | None, model: str | None) -> PriceMatch:
        return self._resolve(provider, model)[0]

    def _resolve(self, provider: str | None, model: str | None) -> tuple[PriceMatch, Any]:
        key = (provider or "", model or "")
        if key in self._matches:
            return self._matches[key]
        result: tuple[PriceMatch, Any]
        if not model:
            result = (PriceMatch("unpriced"), None)
        elif model.strip().lower() in self.overrides:
            result = (PriceMatch("override", provider, model), self.overrides[model.strip().lower()])
        else:
            from genai_prices import data_snapshot

            snapshot = data_snapshot.get_snapshot()
            found = None
            for provider_id in ([provider, None] if provider else [None]):
                try:
                    found = snapshot.find_provider_model(model, None, provider_id, None)
                    break
                except LookupError:
                    continue
            if found is None:
                result = (PriceMatch("unpriced"), None)
            else:
                prov, info = found
                result = (PriceMatch("genai-prices", prov.id, info.id), info)
        self._matches[key] = result
        return result

    def rate_rows(self, pairs: pd.DataFrame | Iterable[tuple[str | None, str | None]], start: datetime,
                  end: datetime) -> pd.DataFrame:
        """Rate rows for the distinct (provider, model) pairs over requests starting in [start, end).

        Columns: provider_key, model, t0, t1, in_lo, in_hi, rate_input, rate_cached, rate_output
        (USD per token), rate_request (USD per call), source, matched_provider, matched_model.
        A span matches the row with ``t0 <= start_time < t1`` and ``in_lo < input_tokens <= in_hi``
        (exactly one row per priced span; ``provider_key`` is the span's provider or '').
        """
        if isinstance(pairs, pd.DataFrame):
            pairs = pairs[["provider", "model"]].drop_duplicates().itertuples(index=False, name=None)
        rows: list[dict] = []
        start, end = _naive_utc(start), _naive_utc(end)
        # a missing provider or model may come as None, '' or NaN (a text column of a frame)
        named = {(p if isinstance(p, str) and p else None, m if isinstance(m, str) and m else None)
                 for p, m in pairs}
        for provider, model in sorted(named, key=str):
            match, info = self._resolve(provider, model)
            base = {
                "provider_key": provider or "",
                "model": model,
                "source": match.source,
                "matched_provider": match.provider_id,
                "matched_model": match.model_id,
            }
            if match.source == "unpriced":
                continue
            if match.source == "override":
                o = info
                rows.append({
                    **base, "t0": start, "t1": end, "in_lo": -1, "in_hi": INPUT_MAX,
                    "rate_input": o["input"] / MTOK, "rate_cached": o["cached"] / MTOK,
                    "rate_output": o["output"] / MTOK, "rate_request": o["request"],
                })
                continue
            for t0, t1 in _time_segments(info, start, end):
                model_price = info.get_prices(t0.replace(tzinfo=UTC))
                for in_lo, in_hi, rates in _tier_segments(model_price):
                    rows.append({**base, "t0": t0, "t1": t1, "in_lo": in_lo, "in_hi": in_hi, **rates})
        columns = ["provider_key", "model", "t0", "t1", "in_lo", "in_hi", *RATE_COLUMNS,
                   "source", "matched_provider", "matched_model"]
        return pd.DataFrame(rows, columns=columns)

    # ---- vectorized costs ------------------------------------------------------------------------

    def compute_costs(self, frame: pd.DataFrame, use_reported: bool = True) -> pd.Series:
        """Cost in USD of each row of ``frame`` (index preserved).

        ``frame`` has ``model``, ``input_tokens``, ``output_tokens`` and optionally ``provider``,
        ``cached_input_tokens``, ``start_time`` (for date / time-of-day prices; default: now) and
        ``cost_usd`` (the app-reported cost, used as is when present and ``use_reported``).
        NaN where the cost is unknown (no reported cost and no price for the model).
        """
        n = len(frame)
        if n == 0:
            return pd.Series([], index=frame.index, dtype="float64", name="cost_usd")
        provider = _text_col(frame, "provider")
        model = _text_col(frame, "model")
        now = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None))
        if "start_time" in frame:
            start_col = pd.to_datetime(frame["start_time"], utc=True).dt.tz_localize(None)
            start_col = start_col.fillna(now)
        else:
            start_col = pd.Series(now, index=frame.index)
        starts = start_col.to_numpy(dtype="datetime64[us]")
        t_min = start_col.min().to_pydatetime()
        t_max = start_col.max().to_pydatetime() + timedelta(microseconds=1)
        pairs = pd.DataFrame({"provider": provider, "model": model}).drop_duplicates()
        rates = self.rate_rows(pairs.itertuples(index=False, name=None), t_min, t_max)

        inp = _num_col(frame, "input_tokens")
        out = _num_col(frame, "output_tokens")
        cached = np.minimum(_num_col(frame, "cached_input_tokens"), inp)
        left = pd.DataFrame({
            "_row": np.arange(n),
            "provider_key": provider.fillna("").to_numpy(),
            "model": model.to_numpy(),
            "_start": starts,
            "_input": inp,
        })
        merged = left.merge(rates, on=["provider_key", "model"], how="inner")
        merged = merged[
            (merged["_start"] >= merged["t0"]) & (merged["_start"] < merged["t1"])
            & (merged["_input"] > merged["in_lo"]) & (merged["_input"] <= merged["in_hi"])
        ]
        idx = merged["_row"].to_numpy()
        computed = np.full(n, np.nan)
        computed[idx] = (
            (inp[idx] - cached[idx]) * merged["rate_input"].to_numpy()
            + cached[idx] * merged["rate_cached"].to_numpy()
            + out[idx] * merged["rate_output"].to_numpy()
            + merged["rate_request"].to_numpy()
        )
        result = pd.Series(computed, index=frame.index, name="cost_usd")
        if use_reported and "cost_usd" in frame:
            reported = pd.to_numeric(frame["cost_usd"], errors="coerce").astype("float64")
            result = reported.where(reported.notna(), result).rename("cost_usd")
        return result


def load_prices(overrides: str | Path | Mapping[str, Any] | None = None) -> PriceTable:
    """A :class:`PriceTable` from overrides given as a dict or a YAML file path.

    The YAML may be the overrides mapping itself (``model: {input, output, cached_input}``) or a settings
    file with a top-level ``price_overrides`` key.
    """
    if overrides is None:
        data: Mapping[str, Any] = {}
    elif isinstance(overrides, (str, Path)):
        loaded = yaml.safe_load(Path(overrides).read_text()) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{overrides}: expected a mapping of model -> prices")
        data = loaded.get("price_overrides", loaded) if "price_overrides" in loaded else loaded
        data = data or {}
    else:
        data = overrides
    return PriceTable(overrides=dict(data))


def compute_costs(frame: pd.DataFrame, prices: PriceTable | None = None, use_reported: bool = True) -> pd.Series:
    """Module-level shortcut for ``prices.compute_costs(frame)`` (bundled prices when ``prices`` is None)."""
    return (prices or load_prices()).compute_costs(frame, use_reported=use_reported)


# ---- helpers -------------------------------------------------------------------------------------


def _naive_utc(value: datetime) -> datetime:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _text_col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series([None] * len(frame), index=frame.index, dtype="object")
    col = frame[name].astype("object")
    return col.where(col.notna() & (col.astype(str) != ""), None)


def _num_col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.zeros(len(frame))
    return pd.to_numeric(frame[name], errors="coerce").fillna(0).clip(lower=0).to_numpy(dtype="float64")


def _time_segments(info: Any, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split [start, end) where the model's conditional prices may switch (dates, times of day)."""
    from genai_prices import types

    if not isinstance(info.prices, list):
        return [(start, end)]
    cuts: set[datetime] = set()
    day = start.date()
    while day <= end.date():
        for cond in info.prices:
            c = cond.constraint
            if isinstance(c, types.StartDateConstraint):
                cuts.add(datetime.combine(c.start_date, time()))
            elif isinstance(c, types.TimeOfDateConstraint):
                for t in (c.start_time, c.end_time):
                    tt = types._utc_timetz(t)  # noqa: SLF001 - genai-prices' own UTC normalisation
                    cuts.add(datetime.combine(day, tt.replace(tzinfo=None)))
        day += timedelta(days=1)
    points = sorted({start, end} | {c for c in cuts if start < c < end})
    return list(pairwise(points))


def _price_at(value: Any, tier_floor: int | None) -> Decimal | None:
    """Price of a Decimal / TieredPrices for totals of input tokens in the segment above tier_floor."""
    from genai_prices import types

    if value is None:
        return None
    if isinstance(value, types.TieredPrices):
        if tier_floor is None:
            return value.base
        applicable = value.base
        for tier in value.tiers:  # sorted ascending
            if tier.start <= tier_floor:
                applicable = tier.price
        return applicable
    return value


def _tier_segments(model_price: Any) -> list[tuple[int, int, dict[str, float]]]:
    """(in_lo, in_hi, rates) per input-token segment between the tier thresholds of this price."""
    from genai_prices import types

    keys = ("input_mtok", "cache_read_mtok", "output_mtok", "requests_kcount")
    values = {k: getattr(model_price, k, None) for k in keys}
    starts = sorted({
        tier.start
        for v in values.values() if isinstance(v, types.TieredPrices)
        for tier in v.tiers
    })
    bounds = [-1, *starts, INPUT_MAX]
    segments = []
    for i, (lo, hi) in enumerate(pairwise(bounds)):
        floor = None if i == 0 else lo  # segment (lo, hi]: every tier with start <= lo applies
        p_in = _price_at(values["input_mtok"], floor)
        p_cached = _price_at(values["cache_read_mtok"], floor)
        p_out = _price_at(values["output_mtok"], floor)
        p_req = _price_at(values["requests_kcount"], floor)
        rate_in = float((p_in or Decimal(0)) / MTOK)
        segments.append((lo, hi, {
            "rate_input": rate_in,
            # without a cache-read price genai-prices bills cached tokens as ordinary input
            "rate_cached": float(p_cached / MTOK) if p_cached is not None else rate_in,
            "rate_output": float((p_out or Decimal(0)) / MTOK),
            "rate_request": float((p_req or Decimal(0)) / 1000),
        }))
    return segments


__all__ = ["PriceMatch", "PriceTable", "compute_costs", "load_prices"]
