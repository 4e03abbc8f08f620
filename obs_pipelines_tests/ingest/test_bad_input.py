"""Bad input is stored (with a note) or rejected with a reason: never a crash, never a silent loss, and the
good records around it still land (read == stored + duplicate + rejected)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from obs_pipelines.ingest.mapping import WARNINGS_KEY
from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines_tests.ingest.otlp_builders import (
    CHILD,
    ROOT,
    T0,
    TRACE,
    reject_rows,
    request,
    span,
    span_rows,
    write_jsonl,
)

GOOD_BEFORE = request(span("before", trace_id="1" * 32, span_id="1" * 16))
GOOD_AFTER = request(span("after", trace_id="2" * 32, span_id="2" * 16))


def ingest_between_good(store, tmp_path, *bad):
    """Ingest a file: a good line, the bad records, a good line. Returns (summary, rows, rejects)."""
    path = write_jsonl(tmp_path / "mixed.jsonl", GOOD_BEFORE, *bad, GOOD_AFTER)
    summary = ingest_paths(store.engine, [path])
    rows = span_rows(store.engine)
    rejects = reject_rows(store.engine)
    assert summary.read == summary.stored + summary.duplicate + summary.rejected
    assert summary.rejected == len(rejects)
    assert ("1" * 32, "1" * 16) in rows and ("2" * 32, "2" * 16) in rows, "good records around it must land"
    return summary, rows, rejects


def test_a_truncated_json_line_is_rejected_with_its_text(store, tmp_path):
    line = json.dumps(request(span()))[:-25]
    summary, _, rejects = ingest_between_good(store, tmp_path, line)
    assert (summary.read, summary.stored, summary.rejected) == (3, 2, 1)
    assert rejects[0]["reason"].startswith("invalid JSON")
    assert rejects[0]["payload"] == line
    assert rejects[0]["location"] == "line 2"
    assert rejects[0]["source"].endswith("mixed.jsonl")


def test_a_line_of_invalid_utf8_is_rejected(store, tmp_path):
    line = b'{"resourceSpans": [], "x": "\xff\xfe"}'
    summary, _, rejects = ingest_between_good(store, tmp_path, line)
    assert summary.rejected == 1
    assert "UTF-8" in rejects[0]["reason"]
    assert "\\xff" in rejects[0]["payload"]


def test_a_json_line_that_is_not_an_object_is_rejected(store, tmp_path):
    summary, _, rejects = ingest_between_good(store, tmp_path, "[1, 2, 3]")
    assert summary.rejected == 1
    assert rejects[0]["reason"] == "not a JSON object (got list)"


def test_an_object_without_resource_spans_is_rejected(store, tmp_path):
    summary, _, rejects = ingest_between_good(store, tmp_path, {"hello": "world"})
    assert summary.rejected == 1
    assert "without resourceSpans" in rejects[0]["reason"]


def test_a_span_without_trace_id_is_rejected_and_its_siblings_are_stored(store, tmp_path):
    bad = span("no trace")
    del bad["traceId"]
    summary, rows, rejects = ingest_between_good(store, tmp_path, request(bad, span("sibling", span_id=CHILD)))
    assert summary.rejected == 1 and (TRACE, CHILD) in rows
    assert rejects[0]["reason"] == "missing trace id"
    assert rejects[0]["location"] == "line 2: resourceSpans[0].scopeSpans[0].spans[0]"
    assert json.loads(rejects[0]["payload"])["name"] == "no trace"


def test_an_invalid_span_id_is_rejected_with_the_reason(store, tmp_path):
    summary, _, rejects = ingest_between_good(store, tmp_path, request(span(span_id="not-an-id")))
    assert summary.rejected == 1
    assert rejects[0]["reason"].startswith("invalid span id 'not-an-id'")


def test_an_all_zero_trace_id_is_rejected(store, tmp_path):
    summary, _, rejects = ingest_between_good(store, tmp_path, request(span(trace_id="0" * 32)))
    assert rejects[0]["reason"].startswith("invalid trace id")


def test_a_span_ending_before_it_starts_is_rejected(store, tmp_path):
    summary, _, rejects = ingest_between_good(store, tmp_path, request(span(dur_ns=-5_000_000)))
    assert summary.rejected == 1
    assert rejects[0]["reason"].startswith("end time before start time")


def test_a_span_without_times_is_rejected(store, tmp_path):
    bad = span()
    del bad["startTimeUnixNano"]
    summary, _, rejects = ingest_between_good(store, tmp_path, request(bad))
    assert rejects[0]["reason"] == "missing start time"


def test_token_counts_of_the_wrong_type_are_stored_as_null_with_a_warning(store, tmp_path):
    bad = span(
        "chat",
        attrs={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": "abc",
            "gen_ai.usage.output_tokens": 7,
        },
    )
    summary, rows, _ = ingest_between_good(store, tmp_path, request(bad))
    row = rows[(TRACE, ROOT)]
    assert summary.rejected == 0
    assert (row["input_tokens"], row["output_tokens"]) == (None, 7)
    assert row["attributes"]["gen_ai.usage.input_tokens"] == "abc"
    assert any("input_tokens" in w for w in row["attributes"][WARNINGS_KEY])


def test_an_unknown_kind_value_is_stored_as_other(store, tmp_path):
    summary, rows, _ = ingest_between_good(
        store, tmp_path, request(span(attrs={"openinference.span.kind": "WIDGET"}))
    )
    row = rows[(TRACE, ROOT)]
    assert summary.rejected == 0
    assert row["kind"] == "other"
    assert row["attributes"]["openinference.span.kind"] == "WIDGET"


def test_an_unknown_otlp_span_kind_is_stored(store, tmp_path):
    summary, rows, _ = ingest_between_good(store, tmp_path, request(span(kind=42)))
    assert summary.rejected == 0
    assert rows[(TRACE, ROOT)]["attributes"]["otel.span_kind"] == 42


def test_a_10_mb_attribute_is_stored_whole(store, tmp_path):
    big = "x" * (10 * 1024 * 1024)
    summary, rows, _ = ingest_between_good(store, tmp_path, request(span(attrs={"input.value": big, "blob": big})))
    row = rows[(TRACE, ROOT)]
    assert summary.rejected == 0
    assert row["input"] == big
    assert row["attributes"]["blob"] == big


def test_sql_metacharacters_are_stored_verbatim(store, tmp_path):
    evil = "'); DROP TABLE spans;--"
    bad = span(evil, attrs={"user.id": evil, "input.value": evil, evil: evil, "path": "C:\\temp\\N\t\\N"})
    summary, rows, _ = ingest_between_good(store, tmp_path, request(bad))
    row = rows[(TRACE, ROOT)]
    assert (row["name"], row["user_id"], row["input"]) == (evil, evil, evil)
    assert row["attributes"][evil] == evil
    assert row["attributes"]["path"] == "C:\\temp\\N\t\\N"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM spans")).scalar() == 3


def test_a_value_that_looks_like_the_copy_null_marker_is_not_null(store, tmp_path):
    summary, rows, _ = ingest_between_good(store, tmp_path, request(span("\\N", attrs={"input.value": "\\N"})))
    row = rows[(TRACE, ROOT)]
    assert (row["name"], row["input"]) == ("\\N", "\\N")


def test_nul_characters_in_strings_become_replacement_characters(store, tmp_path):
    bad = span("a\x00b", attrs={"input.value": "in\x00put", "k\x00ey": ["x\x00", {"y": "z\x00"}]})
    summary, rows, _ = ingest_between_good(store, tmp_path, request(bad))
    row = rows[(TRACE, ROOT)]
    assert summary.rejected == 0
    assert (row["name"], row["input"]) == ("a\ufffdb", "in\ufffdput")
    assert row["attributes"]["k\ufffdey"] == ["x\ufffd", {"y": "z\ufffd"}]


def test_a_rejected_span_with_nul_characters_keeps_its_payload_escaped(store, tmp_path):
    bad = span("nul\x00name", dur_ns=-1)
    _, _, rejects = ingest_between_good(store, tmp_path, request(bad))
    assert "nul\\u0000name" in rejects[0]["payload"] or "nul\\\\u0000name" in rejects[0]["payload"]


def test_a_lone_surrogate_escape_is_stored_as_a_replacement_character(store, tmp_path):
    line = json.dumps(request(span("bad \\ud800 name"))).replace("\\\\ud800", "\\ud800")
    summary, rows, _ = ingest_between_good(store, tmp_path, line)
    assert summary.rejected == 0
    assert rows[(TRACE, ROOT)]["name"] == "bad \ufffd name"


def test_many_kinds_of_bad_records_in_one_file_are_all_accounted_for(store, tmp_path):
    no_id = span("no id")
    del no_id["spanId"]
    records = [
        json.dumps(request(span()))[:40],
        b"\xff\xfe garbage",
        "42",
        request(no_id),
        request(span("backwards", trace_id="3" * 32, dur_ns=-1)),
        request(span("typed", trace_id="4" * 32, attrs={"gen_ai.usage.input_tokens": [1, 2]})),
        request(span("dup", trace_id="1" * 32, span_id="1" * 16)),  # same ids as GOOD_BEFORE
    ]
    summary, rows, rejects = ingest_between_good(store, tmp_path, *records)
    assert (summary.read, summary.stored, summary.duplicate, summary.rejected) == (9, 3, 1, 5)
    assert len(rows) == 3


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_blank_lines_are_not_records(store, tmp_path, text):
    path = tmp_path / "blank.jsonl"
    path.write_text(text)
    summary = ingest_paths(store.engine, [path])
    assert (summary.read, summary.stored, summary.rejected, summary.files) == (0, 0, 0, 1)


def test_a_missing_file_is_rejected_not_raised(store, tmp_path):
    summary = ingest_paths(store.engine, [tmp_path / "nope.jsonl"])
    assert summary.rejected == 1
    assert reject_rows(store.engine)[0]["reason"].startswith("cannot open")


def test_rows_the_database_refuses_are_rejected_and_the_rest_of_the_batch_lands(store):
    from obs_pipelines.ingest.runner import _Writer

    good = {
        "trace_id": TRACE, "span_id": ROOT, "parent_span_id": None, "name": "ok", "kind": "other",
        "start_time": None, "end_time": None, "status": "ok", "error_type": None, "error_message": None,
        "service_name": None, "route": None, "model": None, "provider": None, "prompt_name": None,
        "prompt_version": None, "input_tokens": None, "output_tokens": None, "cached_input_tokens": None,
        "cost_usd": None, "user_id": None, "session_id": None, "input": None, "output": None, "attributes": {},
    }  # fmt: skip
    refused = dict(good, span_id=CHILD, input_tokens=2**70)  # beyond BIGINT on both databases
    writer = _Writer(store.engine, batch_size=10)
    writer.mapped(("test", "here"), [good, refused], [])
    summary = writer.finish()
    assert (summary.read, summary.stored, summary.rejected) == (2, 1, 1)
    assert "database refused the row" in reject_rows(store.engine)[0]["reason"]
    assert (TRACE, ROOT) in span_rows(store.engine)


def test_ingest_keeps_time_as_naive_utc(store, tmp_path):
    _, rows, _ = ingest_between_good(store, tmp_path, request(span(start_ns=T0 + 123_456_789)))
    row = rows[(TRACE, ROOT)]
    assert row["start_time"].isoformat() == "2026-01-01T00:00:00.123456"
    assert row["end_time"].isoformat() == "2026-01-01T00:00:00.124456"


# ---- issue 10 point 8: what ingest stores passes the blocking quality checks ---------------------------

LLM_ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}


@pytest.mark.parametrize(
    "attrs, check",
    [
        ({"llm.cost.total": -0.5}, "cost_non_negative"),
        ({"gen_ai.usage.cost": -1e-9}, "cost_non_negative"),
    ],
)
def test_a_span_that_would_fail_a_blocking_quality_check_is_quarantined_and_its_hour_passes(
    store, tmp_path, attrs, check
):
    from datetime import datetime

    from obs_pipelines.monitoring.quality import check_partition

    bad = span("chat", trace_id="5" * 32, span_id="5" * 16, attrs={**LLM_ATTRS, **attrs})
    summary, rows, rejects = ingest_between_good(store, tmp_path, request(bad))
    assert (summary.stored, summary.rejected) == (2, 1)
    assert ("5" * 32, "5" * 16) not in rows
    assert rejects[0]["reason"].startswith(f"quarantined: fails blocking quality check {check}")
    assert rejects[0]["location"] == f"line 2: trace {'5' * 32} span {'5' * 16}"
    assert json.loads(rejects[0]["payload"])["span_id"] == "5" * 16
    results = check_partition(store.engine, datetime(2026, 1, 1), datetime(2026, 1, 1, 1))
    assert not [r.name for r in results if r.blocking]


def test_every_blocking_quality_check_has_an_ingest_quarantine():
    """Ingest's quarantine and monitoring's quality gate run the one set of blocking checks of the span
    contract (store/span_checks.py): each row-level one quarantines the rows that fail it."""
    from datetime import datetime

    from obs_pipelines.ingest.runner import quarantine, quarantine_reason
    from obs_pipelines.monitoring.quality import CHECK_CATALOG, ERROR
    from obs_pipelines.store.span_checks import BLOCKING_CHECKS

    ok = {"trace_id": "a" * 32, "span_id": "b" * 16, "parent_span_id": None, "status": "ok",
          "start_time": datetime(2026, 1, 1), "end_time": datetime(2026, 1, 1, 0, 0, 1),
          "input_tokens": 1, "output_tokens": 1, "cached_input_tokens": 0, "cost_usd": 0.0}  # fmt: skip
    violations = {
        "trace_id_well_formed": {"trace_id": "A" * 32},
        "span_id_well_formed": {"span_id": "xyz"},
        "parent_span_id_well_formed": {"parent_span_id": "not-hex"},
        "end_not_before_start": {"end_time": datetime(2025, 12, 31)},
        "input_tokens_non_negative": {"input_tokens": -1},
        "output_tokens_non_negative": {"output_tokens": -1},
        "cached_input_tokens_non_negative": {"cached_input_tokens": -1},
        "cost_non_negative": {"cost_usd": -0.01},
        "status_valid": {"status": "unset"},
    }
    guaranteed_by_the_store = {"required_columns", "span_key_unique"}  # table columns; primary key
    assert {c.name for c in BLOCKING_CHECKS if not c.per_row} == guaranteed_by_the_store
    assert {c.name for c in BLOCKING_CHECKS if c.per_row} == set(violations)
    assert [(name, text) for name, severity, text in CHECK_CATALOG if severity == ERROR] == [
        (c.name, c.description) for c in BLOCKING_CHECKS]
    assert quarantine_reason(ok) is None
    for name, change in violations.items():
        assert f"quality check {name}" in quarantine_reason({**ok, **change}), name
    # the hot path looks at values only (the mapping normalizes ids): those are all caught by `quarantine`
    values = {n: c for n, c in violations.items() if not n.endswith("id_well_formed")}
    rows = [{**ok, "span_id": f"{i:016x}", **c} for i, c in enumerate(values.values())]
    kept, quarantined = quarantine([ok, *rows])
    assert kept == [ok] and [why for _, why in quarantined] == [quarantine_reason(r) for r in rows]
