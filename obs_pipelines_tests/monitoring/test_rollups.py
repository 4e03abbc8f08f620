"""Hourly rollups equal an independent pandas computation over the same spans (SQLite and PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.monitoring import rollups
from obs_pipelines.store.errors import ERROR_CLASSES, classify_errors
from obs_pipelines.monitoring.tables import HOURLY_TABLES, column_names
from obs_pipelines.pricing import load_prices
from obs_pipelines_tests.monitoring import reference as ref
from obs_pipelines_tests.monitoring.conftest import H, H_END, OVERRIDES, PREV, TOP_N, insert

STAT_APPROX = ["latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
               "latency_mean_ms"]


@pytest.fixture
def loaded(store, handmade):
    insert(store, handmade)
    return store, ref.spans_frame(handmade)


def test_request_rollup_equals_pandas_over_the_same_spans(loaded):
    store, spans = loaded
    actual = rollups.request_rollup(store.engine, H, H_END)
    expected = ref.request_rollup(spans, H, H_END)
    ref.compare(actual, expected, ["dimension", "dimension_value"],
                exact=["request_count", "error_count", "latency_count"], approx=STAT_APPROX)
    assert set(actual["dimension"]) == {"overall", "route", "model", "prompt_version"}


def test_request_belongs_to_the_hour_of_its_root_span(loaded):
    store, spans = loaded
    this_hour = rollups.request_rollup(store.engine, H, H_END).set_index("dimension")
    prev_hour = rollups.request_rollup(store.engine, PREV, H).set_index("dimension")
    roots_this_hour = ((spans["parent_span_id"].isna()) & (spans["start_time"] >= H)
                       & (spans["start_time"] < H_END)).sum()
    # + the trace whose root was lost, counted where its first span is
    assert this_hour.loc["overall", "request_count"] == roots_this_hour + 1
    # 5 classify requests + the request whose root started 300 ms before 10:00 + the rootless one at 09:59:30
    assert prev_hour.loc["overall", "request_count"] == 7


def test_request_rollup_throughput_and_error_rate(loaded):
    store, _ = loaded
    overall = rollups.request_rollup(store.engine, H, H_END).iloc[0]
    assert overall["dimension"] == "overall"
    assert overall["throughput_per_min"] == pytest.approx(overall["request_count"] / 60.0)
    assert overall["error_rate"] == pytest.approx(overall["error_count"] / overall["request_count"])


def test_step_rollup_equals_pandas_over_the_same_spans(loaded):
    store, spans = loaded
    actual = rollups.step_rollup(store.engine, H, H_END)
    expected = ref.step_rollup(spans, H, H_END)
    ref.compare(actual, expected, ["dimension", "span_kind", "span_name"],
                exact=["span_count", "error_count", "latency_count"], approx=STAT_APPROX)


def test_error_rollup_counts_origin_errors_by_class_and_provider(loaded):
    store, spans = loaded
    actual = rollups.error_rollup(store.engine, H, H_END)
    origins = ref.origin_errors(spans, H, H_END).copy()
    origins["cls"] = classify_errors(origins)
    window = ref.window(spans, H, H_END)

    overall = actual[actual["dimension"] == "overall"].iloc[0]
    assert overall["error_count"] == len(origins)
    assert overall["span_count"] == len(window)
    by_class = actual[actual["dimension"] == "error_class"].set_index("error_class")["error_count"]
    assert set(by_class.index) == set(ERROR_CLASSES)
    expected_class = origins["cls"].value_counts().reindex(list(ERROR_CLASSES), fill_value=0)
    assert by_class.reindex(list(ERROR_CLASSES)).tolist() == expected_class.tolist()
    # the propagated root errors are not counted twice: rate limits == failed llm spans with a 429
    assert by_class["rate_limit"] == ((window["kind"] == "llm") & (window["status"] == "error")
                                      & window["error_type"].eq("openai.RateLimitError")).sum()
    assert by_class["tool_error"] > 0 and by_class["guardrail_block"] > 0 and by_class["provider_5xx"] == 1

    prov = actual[actual["dimension"] == "provider"].set_index("provider")
    provider_label = window["provider"].astype(object).where(window["provider"].notna(), "(none)")
    assert prov["span_count"].sort_index().to_dict() == provider_label.value_counts().sort_index().to_dict()
    origin_provider = origins["provider"].astype(object).where(origins["provider"].notna(), "(none)")
    assert prov["error_count"][prov["error_count"] > 0].sort_index().to_dict() == \
        origin_provider.value_counts().sort_index().to_dict()
    pairs = actual[actual["dimension"] == "provider_error_class"]
    assert pairs["error_count"].sum() == len(origins)


@pytest.mark.parametrize("top_n", [TOP_N, 50])
def test_usage_rollup_equals_pandas_and_genai_prices_to_the_cent(loaded, top_n):
    store, spans = loaded
    prices = load_prices(OVERRIDES)
    actual = rollups.usage_rollup(store.engine, H, H_END, prices, top_n_users=top_n)
    expected = ref.usage_rollup(spans, H, H_END, top_n, OVERRIDES)
    ref.compare(actual, expected, ["dimension", "dimension_value"],
                exact=["call_count", "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_call_count"],
                approx=["cost_usd", "reported_cost_usd", "computed_cost_usd"], rel=1e-9, abs_tol=0.005)
    assert (actual["price_version"] == prices.version).all()
    users = actual[actual["dimension"] == "user"]["dimension_value"]
    assert len(set(users) - {"(other)", "(none)"}) == min(top_n, 8)


def test_usage_rollup_reports_unpriced_models(loaded):
    store, spans = loaded
    actual = rollups.usage_rollup(store.engine, H, H_END, load_prices(OVERRIDES))
    by_model = actual[actual["dimension"] == "model"].set_index("dimension_value")
    calls = ref.window(spans, H, H_END)
    mystery = calls[(calls["model"] == "mystery-llm") & calls["cost_usd"].isna()]
    assert by_model.loc["mystery-llm", "unpriced_call_count"] == len(mystery)
    assert by_model.loc["acme-ft-1", "unpriced_call_count"] == 0  # priced by the override


def test_rewriting_a_window_twice_gives_identical_tables(loaded):
    store, _ = loaded
    prices = load_prices(OVERRIDES)

    def snapshot():
        out = {}
        with store.engine.connect() as conn:
            for name, table in HOURLY_TABLES.items():
                cols = [c for c in column_names(table) if c != "computed_at"]
                frame = pd.DataFrame(conn.execute(sa.select(*[table.c[c] for c in cols])).all(), columns=cols)
                out[name] = frame.sort_values(cols[:4] + cols[4:6], na_position="first").reset_index(drop=True)
        return out

    rollups.write_hourly_rollups(store.engine, H, H_END, prices, TOP_N)
    first = snapshot()
    written = rollups.write_hourly_rollups(store.engine, H, H_END, prices, TOP_N)
    second = snapshot()
    for name in HOURLY_TABLES:
        assert len(second[name]) == written[name] > 0
        pd.testing.assert_frame_equal(first[name], second[name])


def test_rewriting_one_window_leaves_the_neighbouring_windows_alone(loaded):
    store, _ = loaded
    prices = load_prices()
    rollups.write_hourly_rollups(store.engine, PREV, H, prices)
    rollups.write_hourly_rollups(store.engine, H, H_END, prices)
    rollups.write_hourly_rollups(store.engine, H, H_END, prices)
    table = HOURLY_TABLES["request"]
    with store.engine.connect() as conn:
        starts = [r[0] for r in conn.execute(sa.select(table.c.window_start).distinct().order_by(table.c.window_start))]
    assert starts == [PREV, H]


def test_rollups_of_an_empty_window_keep_one_overall_row(store):
    empty = H + pd.Timedelta(hours=5)
    req = rollups.request_rollup(store.engine, empty, empty + pd.Timedelta(hours=1))
    assert req["dimension"].tolist() == ["overall"]
    assert req.loc[0, "request_count"] == 0 and pd.isna(req.loc[0, "error_rate"])
    usage = rollups.usage_rollup(store.engine, empty, empty + pd.Timedelta(hours=1), load_prices())
    assert usage["dimension"].tolist() == ["overall"] and usage.loc[0, "call_count"] == 0
    assert rollups.step_rollup(store.engine, empty, empty + pd.Timedelta(hours=1)).empty
    err = rollups.error_rollup(store.engine, empty, empty + pd.Timedelta(hours=1))
    assert err["error_count"].sum() == 0


def test_usage_and_request_rollups_take_an_hour_with_700_priced_models(store):
    # SQLite allows 500 terms in a compound SELECT: the rate rows (and model keys) travel as one JSON value
    n = 700
    rows = [{
        "trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "parent_span_id": None, "name": "chat",
        "kind": "llm", "start_time": H + pd.Timedelta(seconds=i),
        "end_time": H + pd.Timedelta(seconds=i, milliseconds=50), "status": "ok", "model": f"acme-{i}-chat", "provider": f"acme{i % 3}", "input_tokens": 1000,
        "output_tokens": 100, "cached_input_tokens": 0,
    } for i in range(n)]
    insert(store, rows)
    overrides = {f"acme-{i}-chat": {"input": 1.0 + i / 100, "output": 2.0} for i in range(n)}
    prices = load_prices(overrides)
    usage = rollups.usage_rollup(store.engine, H, H_END, prices)
    overall = usage[usage["dimension"] == "overall"].iloc[0]
    assert overall["call_count"] == n and overall["unpriced_call_count"] == 0
    expected = sum((1000 * (1.0 + i / 100) + 100 * 2.0) / 1e6 for i in range(n))
    assert overall["computed_cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert (usage["dimension"] == "model").sum() == n
    request = rollups.request_rollup(store.engine, H, H_END)
    models = request[request["dimension"] == "model"]
    assert len(models) == n and (models["request_count"] == 1).all()
    assert set(models["model_names"]) == {f"acme-{i}-chat" for i in range(n)}
