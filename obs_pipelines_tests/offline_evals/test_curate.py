"""Curation from production: incidents become cases with the right tags; missing sources are skipped; the
daily asset keeps the version of unchanged data."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from obs_pipelines.offline_evals import curate, datasets
from obs_pipelines.offline_evals.defs import build_defs
from obs_pipelines.online_evals.score_store import insert_scores  # eval_scores is a view
from obs_pipelines.scorers import registry
from obs_pipelines.settings import DatasetRules, OfflineEvalsSettings, Settings
from obs_pipelines.store import db
from obs_pipelines_tests.offline_evals.conftest import DAY, add_feedback, production


def _by_trace(cases: list[dict]) -> dict[str, dict]:
    return {c["trace_id"]: c for c in cases}


def _incident_traces(traces: list[list[dict]], incident: str) -> set[str]:
    return {t[0]["trace_id"] for t in traces
            if any(incident in str((s["attributes"] or {}).get("synth.incident", "")) for s in t)}


def test_incidents_become_cases_with_the_right_tags(store, rules):
    traces = production(store)
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1),
                                rules.model_copy(update={"near_duplicate_similarity": 100.0}))
    tags = datasets.tag_counts(curated.cases)
    assert {"error", "agent_loop", "empty_retrieval"} <= set(tags)
    # provenance: a tool-loop trace was selected as a loop, an empty-retrieval case is a retrieval_miss trace
    selected = {c["trace_id"]: c for c in curate.build_cases(
        store.engine, curate.select_traces(store.engine, DAY, DAY + timedelta(days=1), rules)[0], rules)}
    loops = [t for t, c in selected.items() if "agent_loop" in c["tags"]]
    assert loops and set(loops) <= _incident_traces(traces, "tool_loop")
    empty = [t for t, c in selected.items() if "empty_retrieval" in c["tags"]]
    assert empty and set(empty) <= _incident_traces(traces, "retrieval_miss")
    assert all(c["input"] for c in curated.cases)


def test_negative_feedback_selects_the_trace_and_a_correction_is_its_expected_output(store, rules):
    traces = production(store)
    clean = next(t for t in traces if t[0]["route"] == "classify" and all(s["status"] == "ok" for s in t))
    other = next(t for t in traces if t[0]["route"] == "summarize" and all(s["status"] == "ok" for s in t))
    add_feedback(store, [
        {"trace_id": clean[0]["trace_id"], "name": "thumbs", "value": 0.0, "comment": "wrong"},
        {"trace_id": clean[0]["trace_id"], "name": "correction", "value": None, "comment": "billing"},
        {"trace_id": other[0]["trace_id"], "name": "thumbs", "value": 1.0, "comment": "great"},  # positive
    ])
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1),
                                rules.model_copy(update={"sources": ["negative_feedback"]}))
    assert [c["trace_id"] for c in curated.cases] == [clean[0]["trace_id"]]
    assert curated.cases[0]["expected"] == "billing"
    assert curated.cases[0]["tags"] == ["negative_feedback"]


def test_sources_whose_tables_do_not_exist_are_skipped_with_a_log_line(store, rules):
    production(store, hours=1)
    logged: list[str] = []
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1), rules, logged.append)
    inspector = sa.inspect(store.engine)
    tables = set(inspector.get_table_names()) | set(inspector.get_view_names())  # (eval_scores is a view)
    for source, table in (("low_score", "eval_scores"), ("alert_exemplar", "alerts")):
        if table not in tables:
            assert source in curated.skipped
            assert any(table in line and source in line for line in logged)


def test_pii_in_production_inputs_is_scrubbed_in_the_cases(store, rules):
    traces = production(store, hours=1)
    target = next(t for t in traces if t[0]["route"] == "classify")
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE spans SET input = :text WHERE trace_id = :t AND parent_span_id IS NULL"),
                     {"text": "I am bob@example.org, card 4111 1111 1111 1111", "t": target[0]["trace_id"]})
    add_feedback(store, [{"trace_id": target[0]["trace_id"], "name": "thumbs", "value": 0.0, "comment": None}])
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1), rules)
    case = _by_trace(curated.cases)[target[0]["trace_id"]]
    assert case["input"] == "I am <EMAIL>, card <CARD>"
    assert curated.scrubbed["email"] >= 1 and curated.scrubbed["card"] >= 1


def _settings() -> Settings:
    return Settings(partitions_start="2026-11-01-00:00",
                    offline_evals=OfflineEvalsSettings(datasets={"prod": DatasetRules(lookback_days=2)}))


def _materialize(store, instance):
    defs = build_defs(_settings())
    asset = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
    return dg.materialize([asset], partition_key=DAY.strftime("%Y-%m-%d"), instance=instance,
                          resources={"trace_store": store})


def test_rematerializing_unchanged_data_keeps_the_version(store):
    production(store)
    instance = dg.DagsterInstance.ephemeral()
    first = _materialize(store, instance)
    assert first.success
    version = datasets.latest_version(store.engine, "prod")
    _materialize(store, instance)
    assert datasets.versions(store.engine, "prod")["version"].tolist() == [version]
    event = instance.get_latest_materialization_event(dg.AssetKey("dataset_versions"))
    assert event.asset_materialization.metadata["prod/version"].value == version
    assert event.asset_materialization.metadata["prod/new_version"].value is False
    # new production data of the day: a new version
    add_feedback(store, [{"trace_id": "0" * 32, "name": "thumbs", "value": 0.0, "comment": None}])
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE spans SET input = 'a brand new question?' WHERE parent_span_id IS NULL "
                             "AND trace_id = (SELECT MIN(trace_id) FROM spans WHERE status = 'error')"))
    _materialize(store, instance)
    assert datasets.latest_version(store.engine, "prod") != version


def _insert_scores(store, rows: list[dict]) -> None:
    """eval_scores rows (a view: written through the online evals' store), placeholders for the required
    columns we do not care about."""
    insert_scores(store.engine, [{"span_id": "x", "scorer_version": "x", **row} for row in rows])


def _insert_reflected(store, table_name: str, rows: list[dict]) -> None:
    """Rows into a table another phase owns (its migration made it, or we make a minimal one): required
    columns we do not care about get a placeholder value."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=store.engine)
    fill = {sa.DateTime: DAY, sa.Float: 0.0, sa.Integer: 0, sa.Boolean: False}
    full = []
    for row in rows:
        row = dict(row)
        for column in table.columns:
            if column.name not in row and not column.nullable:
                row[column.name] = next((v for t, v in fill.items() if isinstance(column.type, t)), "x")
        full.append(row)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(table), full)


def _ensure_table(store, name: str, *columns: sa.Column) -> None:
    if name not in sa.inspect(store.engine).get_table_names():
        sa.Table(name, sa.MetaData(), *columns).create(store.engine)


def _distinct_ok_traces(traces: list[list[dict]], n: int) -> list[str]:
    """Root trace ids of n successful traces with pairwise different inputs (n cases after the dedup)."""
    found: dict[str, str] = {}
    for t in traces:
        if all(s["status"] == "ok" for s in t) and t[0]["input"] and t[0]["input"] not in found:
            found[t[0]["input"]] = t[0]["trace_id"]
    return list(found.values())[:n]


def test_low_online_scores_and_alert_exemplars_select_their_traces(store, rules):
    traces = production(store, hours=1)
    low, alerted = _distinct_ok_traces(traces, 2)
    _ensure_table(store, "alerts", sa.Column("rule", sa.Text), sa.Column("window_start", sa.DateTime),
                  sa.Column("payload", sa.Text))
    _insert_scores(store, [
        {"window_start": DAY, "trace_id": low, "scorer": "groundedness", "score": 0.1, "threshold": 0.7,
         "passed": False},
        {"window_start": DAY, "trace_id": alerted, "scorer": "groundedness", "score": 0.9, "threshold": 0.7,
         "passed": True}])
    _insert_reflected(store, "alerts", [{"rule": "p95", "window_start": DAY + timedelta(hours=2),
                                         "payload": '{"exemplar_trace_ids": ["%s"]}' % alerted}])
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1),
                                rules.model_copy(update={"sources": ["low_score", "alert_exemplar"]}))
    assert {c["trace_id"]: c["tags"] for c in curated.cases} == {low: ["low_score"], alerted: ["alert_exemplar"]}
    assert _by_trace(curated.cases)[low]["metadata"]["low_scores"] == {"groundedness": 0.1}


def test_a_low_score_is_cut_at_each_scorer_s_rule_threshold_and_never_for_a_scorer_without_direction(
        store, rules, monkeypatch):
    traces = production(store, hours=1)
    strict, lenient, undirected, own_cut = _distinct_ok_traces(traces, 4)
    # a scorer with no "higher is better": 0 means "no link", not "bad"
    monkeypatch.setattr(registry.REGISTRY["contains_link"], "higher_is_better", None, raising=False)
    _insert_scores(store, [
        # 0.6 under a rule threshold of 0.7: failed, selected (a global cut at 0.5 would miss it)
        {"window_start": DAY, "trace_id": strict, "scorer": "groundedness", "score": 0.6, "threshold": 0.7,
         "passed": False},
        # 0.45 over a rule threshold of 0.3: passed, not selected (a global cut at 0.5 would take it)
        {"window_start": DAY, "trace_id": lenient, "scorer": "word_count_bounds", "score": 0.45,
         "threshold": 0.3, "passed": True},
        # failed its threshold, but the scorer has no direction: never a low score
        {"window_start": DAY, "trace_id": undirected, "scorer": "contains_link", "score": 0.0, "threshold": 0.5,
         "passed": False},
        # passed its rule, but the dataset cuts this scorer itself at 0.9
        {"window_start": DAY, "trace_id": own_cut, "scorer": "refusal", "score": 0.8, "threshold": 0.5,
         "passed": True}])
    found = curate._low_scores(store.engine, DAY, DAY + timedelta(days=1),
                               rules.model_copy(update={"low_score_max": {"refusal": 0.9}}))
    assert found == {strict: {"low_scores": {"groundedness": 0.6}}, own_cut: {"low_scores": {"refusal": 0.8}}}


def test_a_single_global_low_score_cut_is_refused_with_the_new_form():
    with pytest.raises(ValidationError, match="low_score_max is per scorer"):
        DatasetRules(low_score_max=0.5)


def test_none_of_200_pii_values_planted_in_production_survives_in_the_dataset_or_its_export(store, tmp_path):
    from obs_pipelines_tests.offline_evals.test_datasets import _planted

    traces = production(store)
    failed = [t[0]["trace_id"] for t in traces
              if any(s["status"] == "error" and s["parent_span_id"] is None for s in t)][:50]
    assert len(failed) == 50
    planted = _planted(__import__("random").Random(5))
    with store.engine.begin() as conn:
        for i, trace_id in enumerate(failed):  # four values per trace: two in the input, two in the output
            v = [value for value, _kind in planted[4 * i:4 * i + 4]]
            conn.execute(sa.text("UPDATE spans SET input = :i, output = :o WHERE trace_id = :t "
                                 "AND parent_span_id IS NULL"),
                         {"i": f"request {i}: reach me at {v[0]} or {v[1]}", "o": f"noted {v[2]}, {v[3]}",
                          "t": trace_id})
    # exact dedup only: the planted inputs differ by one number, near-duplicates after scrubbing
    rules = DatasetRules(sources=["error"], per_tag=500, max_cases=500, near_duplicate_similarity=100)
    curated = curate.curate_day(store.engine, DAY, DAY + timedelta(days=1), rules)
    db.replace_window(store.engine, curate.rc, DAY, DAY + timedelta(days=1),
                      curate.cases_frame("prod", DAY, DAY + timedelta(days=1), curated.cases))
    version, _created, cases = curate.build_version(store.engine, "prod", rules, DAY, DAY + timedelta(days=1))
    assert sum(f"request {i}:" in (c["input"] or "") for c in cases for i in range(50)) == 50
    out = tmp_path / "cases.jsonl"
    datasets.export_jsonl(datasets.load_version(store.engine, "prod", version)[1], out)
    with store.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(curate.rc)).all() for v in row)
    for text in (out.read_text(), stored):
        assert [value for value, _kind in planted if value in text] == []


def test_loops_and_empty_retrievals_come_from_the_observability_tables_for_a_day_they_cover(store, rules):
    traces = production(store, hours=1)
    flagged, empty = traces[0][0]["trace_id"], traces[1][0]["trace_id"]
    _ensure_table(store, "agent_paths", sa.Column("window_start", sa.DateTime), sa.Column("trace_id", sa.Text),
                  sa.Column("loop_detected", sa.Boolean), sa.Column("loop_kind", sa.Text))
    _ensure_table(store, "retrieval_log", sa.Column("window_start", sa.DateTime), sa.Column("trace_id", sa.Text),
                  sa.Column("span_id", sa.Text), sa.Column("status", sa.Text), sa.Column("no_documents", sa.Boolean))
    _insert_reflected(store, "agent_paths", [
        {"window_start": DAY, "trace_id": flagged, "loop_detected": True, "loop_kind": "repeated_cycle"},
        {"window_start": DAY, "trace_id": empty, "loop_detected": False, "loop_kind": None}])
    _insert_reflected(store, "retrieval_log", [
        {"window_start": DAY, "trace_id": empty, "span_id": "a" * 16, "status": "ok", "no_documents": True},
        {"window_start": DAY, "trace_id": flagged, "span_id": "b" * 16, "status": "ok", "no_documents": False}])
    selected, _report = curate.select_traces(store.engine, DAY, DAY + timedelta(days=1),
                                             rules.model_copy(update={"sources": ["agent_loop", "empty_retrieval"]}))
    assert selected == {
        flagged: {"tags": ["agent_loop"], "metadata": {"loop_kind": "repeated_cycle", "loop_source": "agent_paths"}},
        empty: {"tags": ["empty_retrieval"], "metadata": {"empty_retrieval": True, "retrieval_source": "retrieval_log"}},
    }
