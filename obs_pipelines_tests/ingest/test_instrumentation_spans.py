"""Spans written by the real OpenAI instrumentation packages land in `spans` as the contract says.

The real `openai` client talks to a fake OpenAI-compatible server on 127.0.0.1 (one normal completion
with usage, one HTTP 429), instrumented once by `openinference-instrumentation-openai` and once by
`opentelemetry-instrumentation-openai-v2` (latest experimental GenAI conventions). The finished spans
are exported to OTLP/JSON lines the way a collector would write them, in both id forms (hex as the
OTLP spec prescribes, base64 as protobuf's JSON mapping gives), and ingested into SQLite and PostgreSQL.
Nothing here is hand-written span data: every attribute comes from the instrumentations themselves.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines.store.schema import ingest_rejects, span_arrivals, spans
from obs_pipelines_tests.ingest.otel_capture import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    ID_FORMS,
    PROMPT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SERVICE_NAME,
    CapturedChatCalls,
    capture_chat_calls,
    fake_openai_server,
    hex_span_id,
    hex_trace_id,
    span_dump,
    write_otlp_jsonl,
)

INSTRUMENTATIONS = ("openinference", "otel-genai-v2")
RATE_LIMIT_ERROR_TYPE = re.compile(r"^(openai\.)?RateLimitError$")
_EPOCH = datetime(1970, 1, 1)


# ---- fixtures: capture once per instrumentation, write both id forms ------------------------------


@pytest.fixture(scope="module")
def fake_openai():
    with fake_openai_server() as server:
        yield server


@pytest.fixture(scope="module", params=INSTRUMENTATIONS)
def captured(request, fake_openai) -> CapturedChatCalls:
    if request.param == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        return capture_chat_calls(OpenAIInstrumentor(), fake_openai.base_url, request.param)
    with pytest.MonkeyPatch.context() as mp:
        # must be set before instrumenting: it selects the latest-experimental GenAI code path
        mp.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        return capture_chat_calls(OpenAIInstrumentor(), fake_openai.base_url, request.param)


@pytest.fixture(scope="module")
def otlp_files(captured, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp(f"otlp-{captured.instrumentation}")
    return {
        form: write_otlp_jsonl(out / f"{captured.instrumentation}-{form}.jsonl", captured.spans, form)
        for form in ID_FORMS
    }


# ---- helpers ---------------------------------------------------------------------------------------


def _rows(engine) -> dict[str, dict]:
    """span_id -> row (without ingested_at, which only says when ingest ran)."""
    with engine.connect() as conn:
        result = conn.execute(sa.select(spans).order_by(spans.c.trace_id, spans.c.span_id))
        return {
            r["span_id"]: {k: v for k, v in r.items() if k != "ingested_at"}
            for r in (dict(row._mapping) for row in result)
        }


def _ingest(store, path: Path) -> tuple[object, dict[str, dict]]:
    summary = ingest_paths(store.engine, [path])
    return summary, _rows(store.engine)


def _row_of(rows: dict[str, dict], span, captured: CapturedChatCalls) -> dict:
    key = hex_span_id(span)
    assert key in rows, (
        f"{captured.instrumentation}: span {key} not stored; stored span_ids: {sorted(rows)}\n"
        f"span: {json.dumps(span_dump(span), indent=1, default=str)}"
    )
    return rows[key]


def _explain(captured: CapturedChatCalls, span, row: dict) -> str:
    return (
        f"\n{captured.instrumentation} span: {json.dumps(span_dump(span), indent=1, default=str)}"
        f"\nstored row: {json.dumps(row, indent=1, default=str)}"
    )


def _utc(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns / 1000)


# ---- whole file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_every_captured_span_is_stored_and_none_rejected(store, captured, otlp_files, id_form):
    summary, rows = _ingest(store, otlp_files[id_form])
    with store.engine.connect() as conn:
        rejects = conn.execute(sa.select(ingest_rejects.c.reason, ingest_rejects.c.payload)).all()
    assert summary.rejected == 0 and not rejects, rejects
    assert summary.stored == len(captured.spans) == 2
    assert summary.duplicate == 0
    assert set(rows) == {hex_span_id(s) for s in captured.spans}


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_ids_and_times_are_those_of_the_sdk_span(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    for span in (captured.success, captured.rate_limited):
        row = _row_of(rows, span, captured)
        assert row["trace_id"] == hex_trace_id(span)
        assert row["span_id"] == hex_span_id(span)
        assert row["parent_span_id"] is None  # each call is a root span
        assert row["name"] == span.name
        # microsecond precision in both databases; allow either truncation or rounding of the ns
        assert abs(row["start_time"] - _utc(span.start_time)) <= timedelta(microseconds=1)
        assert abs(row["end_time"] - _utc(span.end_time)) <= timedelta(microseconds=1)


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_service_name_comes_from_the_resource(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    assert {row["service_name"] for row in rows.values()} == {SERVICE_NAME}


# ---- the successful completion -------------------------------------------------------------------


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_success_span_is_an_llm_span_with_status_ok(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.success, captured)
    why = _explain(captured, captured.success, row)
    assert row["kind"] == "llm", why
    assert row["status"] == "ok", why
    assert row["error_type"] is None and row["error_message"] is None, why


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_success_span_model_is_the_response_model(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.success, captured)
    assert row["model"] == RESPONSE_MODEL, _explain(captured, captured.success, row)


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_success_span_provider_is_openai(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.success, captured)
    assert row["provider"] == "openai", _explain(captured, captured.success, row)


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_success_span_token_counts_come_from_usage(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.success, captured)
    why = _explain(captured, captured.success, row)
    assert row["input_tokens"] == PROMPT_TOKENS, why
    assert row["output_tokens"] == COMPLETION_TOKENS, why


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_success_span_cached_input_tokens_where_the_instrumentation_records_them(
    store, captured, otlp_files, id_form
):
    # openinference records usage.prompt_tokens_details.cached_tokens; opentelemetry-instrumentation-
    # openai-v2 2.4b0 does so only on the Responses API path, not for chat completions.
    recorded = any(
        "cache" in key and value == CACHED_TOKENS for key, value in captured.success.attributes.items()
    )
    if captured.instrumentation == "openinference":
        assert recorded, "openinference stopped recording cached tokens: " + json.dumps(
            span_dump(captured.success), default=str
        )
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.success, captured)
    expected = CACHED_TOKENS if recorded else None
    assert row["cached_input_tokens"] == expected, _explain(captured, captured.success, row)


# ---- the 429 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_rate_limited_span_has_status_error(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.rate_limited, captured)
    assert row["status"] == "error", _explain(captured, captured.rate_limited, row)


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_rate_limited_span_error_type_names_the_rate_limit_error_without_class_noise(
    store, captured, otlp_files, id_form
):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.rate_limited, captured)
    # otel-genai-v2 emits error.type = "<class 'openai.RateLimitError'>"; openinference only has
    # the exception event's exception.type = "openai.RateLimitError" and the status description.
    assert row["error_type"] and RATE_LIMIT_ERROR_TYPE.match(row["error_type"]), _explain(
        captured, captured.rate_limited, row
    )


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_rate_limited_span_has_the_error_message(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.rate_limited, captured)
    assert row["error_message"] and "Rate limit reached for gpt-4o-mini" in row["error_message"], (
        _explain(captured, captured.rate_limited, row)
    )


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_rate_limited_span_is_an_llm_span_from_openai(store, captured, otlp_files, id_form):
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.rate_limited, captured)
    why = _explain(captured, captured.rate_limited, row)
    assert row["kind"] == "llm", why
    assert row["provider"] == "openai", why


@pytest.mark.parametrize("id_form", ID_FORMS)
def test_rate_limited_span_model_falls_back_to_the_request_model(store, captured, otlp_files, id_form):
    if "gen_ai.request.model" not in captured.rate_limited.attributes:
        pytest.skip(
            f"{captured.instrumentation} records no model attribute on a failed call "
            "(openinference keeps the request model only inside llm.invocation_parameters)"
        )
    _, rows = _ingest(store, otlp_files[id_form])
    row = _row_of(rows, captured.rate_limited, captured)
    assert row["model"] == REQUEST_MODEL, _explain(captured, captured.rate_limited, row)


# ---- hex vs base64 ids -----------------------------------------------------------------------------


def test_hex_and_base64_files_give_identical_rows(store, captured, otlp_files):
    _, from_hex = _ingest(store, otlp_files["hex"])
    with store.engine.begin() as conn:
        for table in (spans, span_arrivals, ingest_rejects):
            conn.execute(sa.delete(table))
    _, from_base64 = _ingest(store, otlp_files["base64"])
    assert len(from_hex) == 2
    assert from_base64 == from_hex


def test_the_other_id_form_of_the_same_spans_is_recognised_as_duplicate(store, captured, otlp_files):
    first = ingest_paths(store.engine, [otlp_files["hex"]])
    second = ingest_paths(store.engine, [otlp_files["base64"]])
    assert first.stored == 2
    assert (second.stored, second.duplicate, second.rejected) == (0, 2, 0)
    assert len(_rows(store.engine)) == 2
