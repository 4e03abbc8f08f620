"""Generator -> OTLP/JSON file -> ingest gives back exactly the spans the generator made, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines.store.schema import spans
from obs_pipelines.synth.generator import Incident, generate_traces, write_otlp_jsonl

START = datetime(2026, 4, 6, 8, 0)
INCIDENTS = [
    Incident("rate_limit_storm", START, timedelta(minutes=40)),
    Incident("retrieval_miss", START + timedelta(minutes=30), timedelta(minutes=60)),
    Incident("tool_loop", START + timedelta(minutes=60), timedelta(minutes=60)),
]
PARAMS = dict(start=START, hours=2, rate=0.03, seed=21, incidents=INCIDENTS)
# ingest keeps the OTel envelope (scope, resource, span kind, events) in attributes; the generator's rows don't
INGEST_ONLY_KEYS = ("otel.scope.name", "otel.resource", "otel.span_kind", "otel.events")


@pytest.fixture(scope="module")
def generated() -> dict[tuple[str, str], dict]:
    return {(r["trace_id"], r["span_id"]): r for trace in generate_traces(**PARAMS) for r in trace}


@pytest.fixture
def stored(store, tmp_path) -> dict[tuple[str, str], dict]:
    path = tmp_path / "generated.jsonl"
    write_otlp_jsonl(path, **PARAMS)
    summary = ingest_paths(store.engine, [path])
    assert (summary.rejected, summary.duplicate) == (0, 0)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(spans)).mappings()]
    for row in rows:
        row.pop("ingested_at")
        for key in INGEST_ONLY_KEYS:
            row["attributes"].pop(key, None)
    return {(r["trace_id"], r["span_id"]): r for r in rows}


def test_every_generated_span_is_stored_once(generated, stored):
    assert set(stored) == set(generated)


def test_stored_rows_equal_the_generated_rows_column_by_column(generated, stored):
    mismatches = [
        (key, col, generated[key][col], stored[key][col])
        for key in generated
        for col in generated[key]
        if generated[key][col] != stored[key][col]
    ]
    assert mismatches[:5] == []


def test_round_trip_covers_errors_tools_retrieval_and_prompts(generated):
    rows = list(generated.values())
    assert {"llm", "retrieval", "tool", "agent", "chain"} <= {r["kind"] for r in rows}
    assert any(r["status"] == "error" and r["error_type"] for r in rows)
    assert any(r["prompt_version"] for r in rows)
    assert any("retrieval.documents" in str(r["attributes"]) for r in rows if r["kind"] == "retrieval")
