"""Rollups by model survive errors: a failed call (request model) and a successful one (response model)
of one model share a row; provider outages show as provider_5xx, not as rate limits."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.ingest.runner import ingest_requests
from obs_pipelines.monitoring import rollups
from obs_pipelines.pricing import load_prices
from obs_pipelines.synth.generator import generate_traces, parse_incident, trace_to_otlp
from obs_pipelines_tests.monitoring.conftest import H, TraceBuilder, insert

HOUR = timedelta(hours=1)
DAY_START = H.replace(hour=0)

# (request model of a failed call, response model of a successful call, provider, error type, message)
CALLS = [
    ("gpt-4o", "gpt-4o-2024-08-06", "openai", "openai.RateLimitError", "Error code: 429 - Rate limit reached"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022", "anthropic", "anthropic.InternalServerError",
     "Error code: 529 - overloaded_error: Overloaded"),
]
OK_CALLS, FAILED_CALLS = 4, 2  # per model and hour


def calls_of_two_hours() -> list[dict]:
    b = TraceBuilder(random.Random(3))
    for hour in (H, H + HOUR):
        for request_model, response_model, provider, error_type, message in CALLS:
            for i in range(OK_CALLS + FAILED_CALLS):
                start = hour + timedelta(minutes=5 * i + 1)
                failed = i >= OK_CALLS
                root = b.span(b.trace_id(), None, "POST /chat", "chain", start, 900.0, route="chat",
                              user_id="u1", status="error" if failed else "ok")
                llm = b.span(root["trace_id"], root, "chat", "llm", start + timedelta(milliseconds=5), 500.0,
                             model=request_model if failed else response_model, provider=provider,
                             input_tokens=None if failed else 1000, output_tokens=None if failed else 100)
                if failed:
                    llm.update(status="error", error_type=error_type, error_message=message)
    return b.rows


@pytest.fixture
def two_hours(store):
    insert(store, calls_of_two_hours())
    prices = load_prices()
    for hour in (H, H + HOUR):
        rollups.write_hourly_rollups(store.engine, hour, hour + HOUR, prices)
    rollups.write_daily_rollups(store.engine, DAY_START)
    return store


def model_rows(engine, kind: str, grain: str) -> pd.DataFrame:
    """The stored model rows of the rollup ``kind`` for H (hourly) or its day (daily), by dimension_value."""
    table, start = ((rollups.HOURLY_TABLES[kind], H) if grain == "hourly" else (rollups.DAILY_TABLES[kind], DAY_START))
    query = sa.select(table).where(table.c.dimension == "model", table.c.window_start == start)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all()).set_index("dimension_value")


EXPECTED_NAMES = {"gpt-4o": "gpt-4o, gpt-4o-2024-08-06",
                  "claude-3-5-sonnet": "claude-3-5-sonnet-20241022, claude-3-5-sonnet-latest"}


@pytest.mark.parametrize(("grain", "hours"), [("hourly", 1), ("daily", 2)])
def test_request_rollup_by_model_puts_failed_and_successful_calls_in_one_row(two_hours, grain, hours):
    rows = model_rows(two_hours.engine, "request", grain)
    assert sorted(rows.index) == sorted(EXPECTED_NAMES)
    for key, names in EXPECTED_NAMES.items():
        assert rows.loc[key, "request_count"] == hours * (OK_CALLS + FAILED_CALLS)
        assert rows.loc[key, "error_count"] == hours * FAILED_CALLS
        assert rows.loc[key, "error_rate"] == pytest.approx(FAILED_CALLS / (OK_CALLS + FAILED_CALLS))
        assert rows.loc[key, "model_names"] == names
        assert rows.loc[key, "latency_count"] == hours * (OK_CALLS + FAILED_CALLS)
        assert rows.loc[key, "latency_p50_ms"] == pytest.approx(500.0)


@pytest.mark.parametrize(("grain", "hours"), [("hourly", 1), ("daily", 2)])
def test_error_rollup_by_model_puts_failed_and_successful_calls_in_one_row(two_hours, grain, hours):
    rows = model_rows(two_hours.engine, "error", grain)
    assert sorted(rows.index) == sorted([*EXPECTED_NAMES, "(none)"])  # (none): the root spans
    for key, names in EXPECTED_NAMES.items():
        assert rows.loc[key, "error_count"] == hours * FAILED_CALLS  # origins only: roots are not counted
        assert rows.loc[key, "span_count"] == hours * (OK_CALLS + FAILED_CALLS)
        assert rows.loc[key, "model_names"] == names
    assert rows.loc["(none)", "error_count"] == 0


@pytest.mark.parametrize(("grain", "hours"), [("hourly", 1), ("daily", 2)])
def test_usage_rollup_by_model_puts_failed_and_successful_calls_in_one_row(two_hours, grain, hours):
    rows = model_rows(two_hours.engine, "usage", grain)
    assert sorted(rows.index) == sorted(EXPECTED_NAMES)
    prices = load_prices()
    for key, names in EXPECTED_NAMES.items():
        assert rows.loc[key, "call_count"] == hours * (OK_CALLS + FAILED_CALLS)
        assert rows.loc[key, "input_tokens"] == hours * OK_CALLS * 1000
        assert rows.loc[key, "model_names"] == names
        response_model = next(r for _q, r, *_ in CALLS if r in names)
        one_call = prices.compute_costs(pd.DataFrame({
            "model": [response_model], "input_tokens": [1000], "output_tokens": [100], "start_time": [H]}))[0]
        assert rows.loc[key, "cost_usd"] == pytest.approx(hours * OK_CALLS * one_call, rel=1e-9)


def test_provider_outage_on_anthropic_is_provider_5xx_not_rate_limit(store):
    start = datetime(2026, 11, 2, 9, 0)
    outage = start + HOUR
    incident = parse_incident(f"provider_outage:anthropic@{outage:%Y-%m-%dT%H:%M}+1h")
    traces = list(generate_traces(start, 2, 0.15, 5, [incident]))
    # through OTLP and ingest, as the demo's spans arrive
    summary = ingest_requests(store.engine, (trace_to_otlp(t) for t in traces))
    assert summary.rejected == 0

    # what the failed anthropic calls carry: the SDK's exception, its message and the HTTP status
    with store.engine.connect() as conn:
        failed = pd.DataFrame(conn.execute(sa.text(
            "SELECT error_type, error_message, attributes FROM spans "
            "WHERE provider = 'anthropic' AND kind = 'llm' AND status = 'error'")).mappings().all())
    attrs = failed["attributes"].map(lambda a: a if isinstance(a, dict) else json.loads(a))
    server = failed["error_type"] == "anthropic.InternalServerError"
    assert server.sum() >= 20
    assert set(failed.loc[server, "error_message"]) == {"Error code: 529 - overloaded_error: Overloaded"}
    assert set(attrs[server].map(lambda a: a.get("http.response.status_code"))) == {529}

    def pairs(hour):
        err = rollups.error_rollup(store.engine, hour, hour + HOUR)
        return err[err["dimension"] == "provider_error_class"].set_index("dimension_value")["error_count"]

    before, during = pairs(start), pairs(outage)
    outage_5xx = during.get("anthropic/provider_5xx", 0)
    assert outage_5xx >= max(20, 5 * before.get("anthropic/provider_5xx", 0))
    assert during.get("anthropic/rate_limit", 0) <= 2 * before.get("anthropic/rate_limit", 0) + 5
    assert outage_5xx > 3 * during.get("anthropic/rate_limit", 0)
