"""Prices: genai-prices' own calculation, overrides, app-reported cost, versioning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from genai_prices import Usage, __version__, calc_price

from obs_pipelines.pricing import compute_costs, load_prices

T = datetime(2026, 11, 2, 10, 0)


def _genai(model, provider, inp, cached, out, when) -> float:
    usage = Usage(input_tokens=int(inp), cache_read_tokens=int(cached), output_tokens=int(out))
    return float(calc_price(usage, model, provider_id=provider, genai_request_timestamp=when.replace(tzinfo=UTC))
                 .total_price)


def test_known_model_cost_from_tokens_matches_genai_prices_calc():
    frame = pd.DataFrame({
        "provider": ["openai"], "model": ["gpt-4o-mini-2024-07-18"], "input_tokens": [12_000],
        "cached_input_tokens": [4_000], "output_tokens": [800], "start_time": [T],
    })
    cost = load_prices().compute_costs(frame)
    assert cost.iloc[0] == pytest.approx(_genai("gpt-4o-mini-2024-07-18", "openai", 12_000, 4_000, 800, T), rel=1e-12)
    # the cached tokens are billed at the cache-read price, not the input price
    assert cost.iloc[0] < _genai("gpt-4o-mini-2024-07-18", "openai", 12_000, 0, 800, T)


@pytest.mark.parametrize(
    ("model", "provider", "start"),
    [
        ("gemini-2.5-pro", "google", T),  # tiered: > 200k input tokens switches every token's price
        ("claude-sonnet-4-6", "anthropic", datetime(2026, 3, 12, 12)),  # tiered, price change on 2026-03-13
        ("deepseek-chat", "deepseek", datetime(2026, 3, 12, 12)),  # off-peak prices by time of day
        ("claude-3-5-sonnet-20241022", "anthropic", T),
        ("gpt-4o", "azure", T),  # another provider's price of the same model
        ("text-embedding-3-small", "openai", T),
    ],
)
def test_vectorized_costs_match_genai_prices_row_by_row(model, provider, start):
    rng = np.random.default_rng(3)
    n = 400
    inp = rng.integers(0, 400_000, n)
    frame = pd.DataFrame({
        "provider": provider, "model": model, "input_tokens": inp,
        "cached_input_tokens": (inp * rng.random(n) * rng.integers(0, 2, n)).astype(int),
        "output_tokens": rng.integers(0, 4_000, n),
        "start_time": [start + timedelta(minutes=int(m)) for m in rng.integers(0, 48 * 60, n)],
    })
    cost = load_prices().compute_costs(frame)
    expected = [_genai(model, provider, r.input_tokens, r.cached_input_tokens, r.output_tokens, r.start_time)
                for r in frame.itertuples()]
    np.testing.assert_allclose(cost.to_numpy(), expected, rtol=1e-12, atol=1e-15)


def test_override_wins_over_genai_prices():
    prices = load_prices({"gpt-4o-mini-2024-07-18": {"input": 1.0, "output": 2.0, "cached_input": 0.5}})
    frame = pd.DataFrame({"provider": ["openai"], "model": ["gpt-4o-mini-2024-07-18"], "input_tokens": [1_000_000],
                          "cached_input_tokens": [200_000], "output_tokens": [500_000], "start_time": [T]})
    assert prices.compute_costs(frame).iloc[0] == pytest.approx(0.8 * 1.0 + 0.2 * 0.5 + 0.5 * 2.0)
    assert prices.match("openai", "gpt-4o-mini-2024-07-18").source == "override"


def test_override_prices_a_model_genai_prices_does_not_know():
    frame = pd.DataFrame({"model": ["acme-ft-1", "acme-ft-2"], "input_tokens": [2_000_000, 10],
                          "output_tokens": [1_000_000, 10]})
    cost = load_prices({"ACME-FT-1": {"input": 0.3, "output": 1.2}}).compute_costs(frame)
    assert cost.iloc[0] == pytest.approx(0.6 + 1.2)
    assert np.isnan(cost.iloc[1])  # unknown and not overridden: unpriced


def test_app_reported_cost_wins():
    frame = pd.DataFrame({"provider": ["openai", "openai"], "model": ["gpt-4o", "gpt-4o"],
                          "input_tokens": [1000, 1000], "output_tokens": [10, 10], "cost_usd": [0.123, None],
                          "start_time": [T, T]})
    cost = load_prices().compute_costs(frame)
    assert cost.iloc[0] == 0.123
    assert cost.iloc[1] == pytest.approx(_genai("gpt-4o", "openai", 1000, 0, 10, T))
    assert compute_costs(frame, use_reported=False).iloc[0] == pytest.approx(cost.iloc[1])


def test_unknown_provider_falls_back_to_matching_the_model():
    frame = pd.DataFrame({"provider": ["my-gateway"], "model": ["gpt-4o-mini"], "input_tokens": [1000],
                          "output_tokens": [100], "start_time": [T]})
    assert load_prices().compute_costs(frame).iloc[0] == pytest.approx(_genai("gpt-4o-mini", None, 1000, 0, 100, T))


def test_price_version_names_the_package_and_the_overrides(tmp_path):
    assert load_prices().version == f"genai-prices {__version__}"
    a = load_prices({"m": {"input": 1, "output": 2}}).version
    b = load_prices({"m": {"input": 1, "output": 3}}).version
    assert a.startswith(f"genai-prices {__version__}+overrides.") and a != b
    path = tmp_path / "prices.yaml"
    path.write_text("price_overrides:\n  m:\n    input: 1\n    output: 2\n")
    assert load_prices(path).version == a


def test_bad_override_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match="unknown key"):
        load_prices({"m": {"inputt": 1}})
    with pytest.raises(ValueError, match="non-negative"):
        load_prices({"m": {"input": -1}})


def test_prices_are_looked_up_once_per_distinct_model(monkeypatch):
    from genai_prices import data_snapshot

    calls = []
    real = data_snapshot.DataSnapshot.find_provider_model

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counting)
    frame = pd.DataFrame({"provider": "openai", "model": ["gpt-4o", "gpt-4o-mini"] * 5000,
                          "input_tokens": 100, "output_tokens": 10, "start_time": T})
    load_prices().compute_costs(frame)
    assert sorted(calls) == ["gpt-4o", "gpt-4o-mini"]


def test_rate_rows_take_a_missing_provider_as_none_whatever_its_spelling():
    # pairs read from a frame carry NaN for a NULL provider: the same rows as None or ''
    from datetime import datetime

    prices = load_prices()
    start, end = datetime(2026, 11, 2), datetime(2026, 11, 3)
    expected = prices.rate_rows([(None, "gpt-4o")], start, end)
    for missing in (float("nan"), ""):
        assert prices.rate_rows([(missing, "gpt-4o")], start, end).equals(expected)
    assert len(expected) > 0
