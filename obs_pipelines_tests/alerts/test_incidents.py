"""Each generator incident fires the right rule of the shipped (history-relative) pack with the right group,
and the clean hours between them fire nothing: 16 hours of traffic with five incidents from the 8th hour on
(the pack needs 6 hours of history), rolled up by monitoring and observability, then checked by the example
rules (one SQLite store for the module: the runs are the expensive part)."""

from __future__ import annotations

import gc
import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from obs_pipelines.alerts.defs import RULES_JOB
from obs_pipelines.definitions import build_definitions
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import load_settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces, parse_incident

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
START = datetime(2026, 11, 2, 6, 0)
HOURS = 16
# hour offset -> (incident, the rule it must fire, (part of) a group it must fire for)
INCIDENTS = {
    7: ("rate_limit_storm", "error_class_rate", {"error_class": "rate_limit"}),
    9: ("latency_spike", "step_p50_latency", {"span_kind": "retrieval"}),
    11: ("cost_overrun", "route_cost_per_call", {"route": "rag_qa"}),
    13: ("tool_loop", "agent_loop_share", {"route": "agent_tools"}),
    15: ("retrieval_miss", "retrieval_empty_share", {"route": "rag_qa"}),
}


def key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The store's URL and the partition check evaluations of each job, run in the schedules' order:
    monitoring (its rules on its tables, before observability has written the hours), observability, then
    the rules job over every rule."""
    url = f"sqlite:///{tmp_path_factory.mktemp('incidents') / 'traces.db'}"
    store = TraceStore(db_url=url)
    store.create_tables()
    incidents = [parse_incident(f"{name}@{START + timedelta(hours=h):%Y-%m-%dT%H:%M}+1h")
                 for h, (name, _, _) in INCIDENTS.items()]
    gc.disable()
    try:
        rows = [row for trace in generate_traces(START, HOURS, 0.05, 21, incidents) for row in trace]
    finally:
        gc.enable()
    db.insert_spans(store.engine, rows)
    settings = load_settings(EXAMPLE).model_copy(update={
        "db_url": url, "phases": ["monitoring", "observability"], "partitions_start": "2026-11-01-00:00"})
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": key(START),
            "dagster/asset_partition_range_end": key(START + timedelta(hours=HOURS - 1))}
    out: dict = {"url": url}
    for job in ("monitoring_hourly_job", "observability_hourly_job", RULES_JOB):
        result = defs.resolve_job_def(job).execute_in_process(tags=tags, instance=instance, raise_on_error=False)
        assert result.success, job
        out[job] = [e for e in result.get_asset_check_evaluations() if e.partition]
    store.engine.dispose()
    return out


@pytest.fixture(scope="module")
def evaluations(runs) -> list:
    return runs[RULES_JOB]


@pytest.mark.parametrize("offset", sorted(INCIDENTS), ids=[INCIDENTS[h][0] for h in sorted(INCIDENTS)])
def test_each_incident_fires_its_rule_for_its_group_with_exemplars(evaluations, offset):
    _, rule, group = INCIDENTS[offset]
    hour = key(START + timedelta(hours=offset))
    [evaluation] = [e for e in evaluations if e.check_name == rule and e.partition == hour]
    assert not evaluation.passed
    breached = [r for r in evaluation.metadata["results"].value if not r["passed"]]
    mine = [r for r in breached if group.items() <= r["group"].items()]
    assert mine, [r["group"] for r in breached]
    assert all(r["exemplar_trace_ids"] for r in mine)


def test_the_clean_hours_between_the_incidents_fire_nothing(evaluations):
    incident_hours = {key(START + timedelta(hours=h)) for h in INCIDENTS}
    assert sorted((e.check_name, e.partition) for e in evaluations
                  if not e.passed and e.partition not in incident_hours) == []



def test_an_alert_judged_before_the_observability_run_carries_the_attribution_that_run_writes(runs):
    # monitoring's job judges its rules before observability_hourly_job has written the hour: the breach's
    # attribution is computed in memory by the observability functions (the cost change split by model,
    # prompt version and user segment), and equals what the rules read from the tables once written
    hour = key(START + timedelta(hours=11))
    rule = "route_cost_per_call"
    [early] = [e for e in runs["monitoring_hourly_job"] if e.check_name == rule and e.partition == hour]
    [late] = [e for e in runs[RULES_JOB] if e.check_name == rule and e.partition == hour]
    early_attribution = {json.dumps(r["group"]): r["attribution"] for r in early.metadata["results"].value}
    late_attribution = {json.dumps(r["group"]): r["attribution"] for r in late.metadata["results"].value}
    assert early_attribution == late_attribution
    rag = early_attribution[json.dumps({"route": "rag_qa"})]
    # cost_overrun grows rag_qa's prompts (input tokens x3-5): the change is per call (unit cost), not more calls,
    # and only rag_qa's own calls are named (no route dimension in a route's alert)
    assert rag and rag[0]["driver"] == "unit" and "route" not in {a["dimension"] for a in rag}


def test_a_diagnosis_that_cannot_be_computed_leaves_the_causes_that_do_not_need_it(tmp_path, monkeypatch, caplog):
    # the in-memory observability tables of an hour fail (a bug, a bad row): an agent rule's breach (the one
    # family that reads them) gets no cause, logged, never raised; an error rule's cause comes from the raw
    # spans and stands
    from obs_pipelines.alerts import source
    from obs_pipelines.alerts.evaluate import RuleResult
    from obs_pipelines.alerts.rules import parse_rule
    from obs_pipelines.observability import api
    from obs_pipelines.observability.config import ObservabilitySettings
    from obs_pipelines.pricing import load_prices

    store = TraceStore(db_url=f"sqlite:///{tmp_path / 'traces.db'}")
    store.create_tables()
    hour = START + timedelta(hours=7)
    incidents = [parse_incident(f"{name}@{hour:%Y-%m-%dT%H:%M}+1h") for name in ("rate_limit_storm", "tool_loop")]
    db.insert_spans(store.engine, [row for trace in generate_traces(hour, 1, 0.05, 21, incidents) for row in trace])

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api, "hour_tables", broken)  # the phase's entry point the diagnosis computes through
    rate_limit = parse_rule({"name": "rate_limits", "kind": "threshold", "table": "error_rollup_hourly",
                             "group_by": "error_class", "metric": "error_rate", "threshold": 0.05})
    loops = parse_rule({"name": "loops", "kind": "threshold", "table": "agent_paths", "group_by": ["route"],
                        "metric": "loop_detected", "aggregate": "mean", "threshold": 0.2})

    def breach(rule, group):
        return RuleResult(rule=rule.name, window_start=hour, window_end=hour + timedelta(hours=1), group=group,
                          value=0.5, threshold=0.1, samples=100, judged=True, passed=False)

    diagnosis = source.Diagnosis(store.engine, ObservabilitySettings(), load_prices())
    assert source.attribution(store.engine, loops, breach(loops, {"route": "agent_tools"}), diagnosis) == []
    assert "could not be computed" in caplog.text and "boom" in caplog.text
    errors = breach(rate_limit, {"error_class": "rate_limit"})
    assert source.attribution(store.engine, rate_limit, errors, diagnosis)
    assert source.exemplar_trace_ids(store.engine, rate_limit, errors, diagnosis=diagnosis)
