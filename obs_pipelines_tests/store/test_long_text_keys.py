"""App text of any length in a derived table's grain (issue 20.1): a span name of 1,400 characters, a 100 KB route
and a 1 MB model name are rolled up like any other value, on both databases. PostgreSQL's btree entries hold at
most ~2.7 kB, so its grain keys index md5 of the dimensions (migration 0009); SQLite keeps any length."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.monitoring import rollups
from obs_pipelines.monitoring.tables import HOURLY_TABLES
from obs_pipelines.observability import hourly as observability
from obs_pipelines.observability.tables import HOURLY_TABLES as OBSERVABILITY_TABLES
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import ObservabilitySettings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces

H = datetime(2026, 11, 2, 10)
RNG = random.Random(20)
# incompressible text (random letters, two UTF-8 bytes each for the name): the size is what the index sees
LONG_NAME = "".join(RNG.choice("абвгдежзийклмнопрстуфхцчшщ") for _ in range(1400))
LONG_ROUTE = "/search?" + "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(100_000))
LONG_MODEL = "gpt-" + "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1_000_000))


@pytest.fixture
def long_hour(store):
    traces = list(generate_traces(H, 1, 0.05, seed=20))
    odd = traces[0]  # one trace carries all three: its route, one step's name, its llm calls' model
    for row in odd:
        row["route"] = LONG_ROUTE
    odd[-1]["name"] = LONG_NAME
    for row in odd:
        if row["kind"] == "llm":
            row["model"] = LONG_MODEL
    db.insert_spans(store.engine, [r for t in traces for r in t])
    return store


def test_monitoring_rolls_up_an_hour_with_a_long_span_name_route_and_model(long_hour):
    engine = long_hour.engine
    frames = rollups.hourly_rollups(engine, H, H + timedelta(hours=1), load_prices(), top_n_users=5)
    db.replace_windows(engine, H, H + timedelta(hours=1), {HOURLY_TABLES[k]: f for k, f in frames.items()})
    step = pd.read_sql(sa.select(HOURLY_TABLES["step"]), engine)
    request = pd.read_sql(sa.select(HOURLY_TABLES["request"]), engine)
    usage = pd.read_sql(sa.select(HOURLY_TABLES["usage"]), engine)
    assert LONG_NAME in set(step["span_name"])  # the full text, not a hash of it
    assert LONG_ROUTE in set(request["dimension_value"])
    assert any(LONG_MODEL in str(v) for v in usage["dimension_value"]) or any(
        LONG_MODEL in str(v) for v in usage["model_names"])
    # written again (a re-run): the key still tells the rows apart and nothing duplicates
    again = db.replace_windows(engine, H, H + timedelta(hours=1), {HOURLY_TABLES[k]: f for k, f in frames.items()})
    assert again[HOURLY_TABLES["step"].name] == len(step)


def test_observability_writes_an_hour_with_a_long_span_name_route_and_model(long_hour):
    engine = long_hour.engine
    frames, _ = observability.hourly_tables(engine, H, H + timedelta(hours=1), ObservabilitySettings(), load_prices())
    written = db.replace_windows(engine, H, H + timedelta(hours=1),
                                 {OBSERVABILITY_TABLES[n]: f for n, f in frames.items()})
    assert sum(written.values()) > 0
    texts = set()
    for name in written:
        table = OBSERVABILITY_TABLES[name]
        with engine.connect() as conn:
            for row in conn.execute(sa.select(table)):
                texts.update(v for v in row if isinstance(v, str))
    assert LONG_ROUTE in texts


def test_two_values_that_share_a_long_prefix_stay_two_rows(store):
    # the key hashes the whole value: names equal in their first 2,000 characters are still different names
    from obs_pipelines.monitoring.tables import step_rollup_hourly

    prefix = "x" * 2000
    frame = pd.DataFrame([{"window_start": H, "window_end": H + timedelta(hours=1), "dimension": "overall",
                           "dimension_value": None, "span_kind": "tool", "span_name": prefix + tail,
                           "span_count": 1} for tail in ("a", "b")])
    assert db.replace_window(store.engine, step_rollup_hourly, H, H + timedelta(hours=1), frame) == 2
