"""Data-quality checks (great-expectations) on a partition of spans."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from obs_pipelines.monitoring.quality import (
    CHECK_CATALOG,
    ERROR,
    WARN,
    check_partition,
    results_frame,
    run_quality_checks,
    summarize,
)
from obs_pipelines.store.schema import SPAN_COLUMNS
from obs_pipelines_tests.monitoring.conftest import H, H_END, handmade_spans, insert


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    rows = [r for r in handmade_spans() if H <= r["start_time"] < H_END]
    frame = pd.DataFrame(rows)
    for col in SPAN_COLUMNS:
        if col not in frame:
            frame[col] = None
    # the hand-made hour has orphans on purpose (a lost root, a root in the previous hour): drop them
    keys = set(frame["trace_id"] + "/" + frame["span_id"])
    has_parent = frame["parent_span_id"].isna() | (frame["trace_id"] + "/" + frame["parent_span_id"]).isin(keys)
    return frame[has_parent].reset_index(drop=True)


def by_name(results):
    return {r.name: r for r in results}


def test_checks_pass_on_clean_data(clean):
    results = by_name(run_quality_checks(clean))
    failed = {n: r.failing_count for n, r in results.items() if not r.passed}
    assert failed == {}
    assert {r.severity for r in results.values()} == {ERROR, WARN}
    assert results["llm_model_present"].failing_count == 1  # one llm span without model, under the 5 %


def test_checks_fail_on_bad_rows_with_the_right_counts(clean):
    bad = clean.copy()
    bad = pd.concat([bad, bad.iloc[[5, 6]]], ignore_index=True)  # 2 duplicated keys -> 4 rows
    bad.loc[10, "end_time"] = bad.loc[10, "start_time"] - timedelta(milliseconds=1)
    bad.loc[[11, 12], "input_tokens"] = -5
    bad.loc[13, "output_tokens"] = -1
    bad.loc[14, "cost_usd"] = -0.01
    bad.loc[[15, 16, 17], "status"] = ["failed", "OK", None]
    bad.loc[[18, 19], "parent_span_id"] = ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]  # orphans
    parents = set(bad["trace_id"] + "/" + bad["parent_span_id"].fillna(""))
    leaves = [i for i in range(22, len(clean)) if bad.loc[i, "trace_id"] + "/" + bad.loc[i, "span_id"] not in parents]
    bad.loc[leaves[0], "trace_id"] = "NOT-HEX"  # leaves: changing their ids orphans nobody
    bad.loc[leaves[1], "span_id"] = "123"
    results = by_name(run_quality_checks(bad))

    expected = {
        "span_key_unique": 4,
        "end_not_before_start": 1,
        "input_tokens_non_negative": 2,
        "output_tokens_non_negative": 1,
        "cost_non_negative": 1,
        "status_valid": 3,
        "parent_exists": 2 + 1,  # + the leaf moved to trace "NOT-HEX", where its parent is not
        "trace_id_well_formed": 1,
        "span_id_well_formed": 1,
    }
    failed = {n: r.failing_count for n, r in results.items() if not r.passed}
    assert failed == expected
    assert results["parent_exists"].severity == WARN and results["status_valid"].severity == ERROR
    ex = results["end_not_before_start"].examples[0]
    assert (ex["trace_id"], ex["span_id"]) == (bad.loc[10, "trace_id"], bad.loc[10, "span_id"])
    assert {(e["trace_id"], e["span_id"]) for e in results["input_tokens_non_negative"].examples} == {
        (bad.loc[i, "trace_id"], bad.loc[i, "span_id"]) for i in (11, 12)}
    assert all(r.description for r in results.values())
    summary = summarize(results.values())
    assert "parent_exists" in summary["warnings"] and "span_key_unique" in summary["blocking_failures"]


def test_share_of_llm_spans_without_model_over_the_threshold_warns(clean):
    bad = clean.copy()
    llm = bad.index[bad["kind"] == "llm"]
    with_model = bad.index[(bad["kind"] == "llm") & bad["model"].notna()]
    bad.loc[with_model[:10], "model"] = None
    result = by_name(run_quality_checks(bad, null_model_share_max=0.05))["llm_model_present"]
    assert not result.passed and result.severity == WARN
    assert result.failing_count == 10 + 1
    assert result.observed == pytest.approx(11 / len(llm))
    assert by_name(run_quality_checks(bad, null_model_share_max=0.5))["llm_model_present"].passed


def test_missing_required_column_is_reported(clean):
    results = by_name(run_quality_checks(clean.drop(columns=["status"])))
    assert not results["required_columns"].passed
    assert results["required_columns"].examples == [{"column": "status"}]
    assert "status_valid" not in results


def test_partition_check_finds_parents_in_the_previous_hour(store):
    rows = handmade_spans()
    insert(store, rows)
    results = by_name(check_partition(store.engine, H, H_END))
    # the child of the root that started at 09:59:59.7 is not an orphan; the spans of lost roots are
    orphans = [r for r in rows if r["parent_span_id"] == "0123456789abcdef" and H <= r["start_time"] < H_END]
    assert results["parent_exists"].failing_count == len(orphans) == 3
    window = pd.DataFrame([r for r in rows if H <= r["start_time"] < H_END])
    assert by_name(run_quality_checks(window))["parent_exists"].failing_count == 3 + 1  # without the look-up
    assert results["end_not_before_start"].passed and results["span_key_unique"].passed
    frame = results_frame(results.values(), H, H_END)
    assert len(frame) == len(results) and set(frame["severity"]) == {ERROR, WARN}


def test_catalog_names_every_check_that_runs(clean):
    from obs_pipelines.monitoring.quality import CHECK_CATALOG

    ran = [(r.name, r.severity) for r in run_quality_checks(clean)]
    assert sorted(ran) == sorted((name, severity) for name, severity, _text in CHECK_CATALOG)


def _comparable(results):
    return {r.name: (r.passed, r.severity, r.failing_count, r.row_count, r.observed,
                     sorted((e.get("trace_id"), e.get("span_id")) for e in r.examples)) for r in results}


def test_partition_check_from_the_store_matches_the_frame_check(store):
    """check_partition reads the window its own way (on PostgreSQL: COPY, parent flags computed in SQL,
    times as integers): the results must be those of run_quality_checks on the same rows."""
    rows = [dict(r) for r in handmade_spans()]
    inside = [i for i, r in enumerate(rows) if H <= r["start_time"] < H_END and r["parent_span_id"] is not None]
    owners = {(rows[i]["trace_id"], rows[i]["parent_span_id"]) for i in inside}
    leaves = [i for i in inside if (rows[i]["trace_id"], rows[i]["span_id"]) not in owners]
    rows[leaves[0]]["end_time"] = rows[leaves[0]]["start_time"] - timedelta(microseconds=1)
    rows[leaves[1]]["input_tokens"] = -3
    rows[leaves[2]]["status"] = "failed"
    rows[leaves[3]]["status"] = None
    rows[leaves[4]]["parent_span_id"] = ""  # an empty id is not a missing one
    rows[leaves[5]]["parent_span_id"] = "ffffffffffffffff"  # orphan
    rows[leaves[6]]["span_id"] = "ABCDEF0123456789"
    rows[leaves[7]]["cost_usd"] = -1.5
    rows[leaves[8]]["model"], rows[leaves[8]]["kind"] = None, "llm"
    rows[leaves[9]]["model"], rows[leaves[9]]["kind"] = "\\N", "llm"  # COPY's NULL marker as a real value
    insert(store, rows)

    stored = pd.DataFrame([r for r in rows if H <= r["start_time"] < H_END])
    keys = {(r["trace_id"], r["span_id"]) for r in rows}
    external = {(t, p) for t, p in zip(stored["trace_id"], stored["parent_span_id"])
                if p is not None and (t, p) in keys} - set(zip(stored["trace_id"], stored["span_id"]))
    expected = _comparable(run_quality_checks(stored, 0.05, external))
    got = _comparable(check_partition(store.engine, H, H_END))
    assert got == expected
    failed = {n for n, v in got.items() if not v[0]}
    assert {"end_not_before_start", "input_tokens_non_negative", "status_valid", "parent_span_id_well_formed",
            "parent_exists", "span_id_well_formed", "cost_non_negative"} <= failed
    assert got["status_valid"][2] == 2 and got["parent_span_id_well_formed"][2] == 1


def test_partition_check_of_an_empty_hour(store):
    results = by_name(check_partition(store.engine, H, H_END))
    assert all(r.passed and r.failing_count == 0 and r.row_count == 0 for r in results.values())
    assert set(results) == {name for name, _severity, _text in CHECK_CATALOG}
