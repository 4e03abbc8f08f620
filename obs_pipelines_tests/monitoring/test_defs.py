"""The monitoring phase as Dagster runs it: jobs over partitions, blocking checks, late data, backfills.

Every test runs the real job in process against a real SQLite file and a real PostgreSQL schema.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.definitions import build_definitions
from obs_pipelines.hours import hour_key
from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines.monitoring.defs import DAILY_JOB, HOURLY_JOB
from obs_pipelines.monitoring.quality import CHECK_CATALOG
from obs_pipelines.monitoring.tables import (
    DAILY_TABLES,
    HOURLY_TABLES,
    monitoring_metadata,
    quality_checks_hourly,
    slo_status_hourly,
)
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import write_otlp_jsonl

START = datetime(2026, 3, 2, 0, 0)
HOURS = 26  # a whole day plus two hours of the next
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="module")
def traces_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    write_otlp_jsonl(path, start=START, hours=HOURS, rate=0.02, seed=5, incidents=[])
    return path


@pytest.fixture
def loaded(store, traces_file):
    summary = ingest_paths(store.engine, [traces_file])
    assert summary.stored > 0 and summary.rejected == 0
    return store


def definitions(store) -> dg.Definitions:
    # a look-back reaching the test's hours, so the late-data sensor rolls them up
    return build_definitions(Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00",
                                      late_data_lookback_hours=24 * 365 * 10))


def run_hours(defs: dg.Definitions, instance: dg.DagsterInstance, first: datetime, last: datetime | None = None):
    job = defs.resolve_job_def(HOURLY_JOB)
    if last is None:
        return job.execute_in_process(partition_key=hour_key(first), instance=instance, raise_on_error=False)
    tags = dict(zip(RANGE_TAGS, (hour_key(first), hour_key(last))))
    return job.execute_in_process(tags=tags, instance=instance, raise_on_error=False)


def table(store, name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """The table's rows (optionally of one window) without computed_at, in a stable order."""
    tbl = monitoring_metadata.tables[name]
    query = sa.select(tbl)
    if start is not None:
        query = query.where(tbl.c.window_start >= start, tbl.c.window_start < end)
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in tbl.columns])
    frame = frame.drop(columns=["computed_at"])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_definitions_hold_the_monitoring_group_its_jobs_schedule_and_sensors(store):
    defs = definitions(store)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    monitoring = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "monitoring"}
    assert monitoring == {t.name for t in [*HOURLY_TABLES.values(), *DAILY_TABLES.values(), slo_status_hourly]}
    assert defs.resolve_schedule_def("monitoring_hourly_schedule").cron_schedule == "10 * * * *"
    assert defs.resolve_schedule_def("monitoring_hourly_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_sensor_def("monitoring_late_data_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_switching_the_phase_off_removes_its_group(store):
    defs = build_definitions(Settings(db_url=store.db_url, phases=["observability"]))
    assert not [j.name for j in defs.jobs if j.name.startswith("monitoring_")]
    graph = defs.resolve_asset_graph()
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"raw", "observability"}
    assert not [s.name for s in defs.sensors if s.name.startswith("monitoring_")]


def test_hourly_job_writes_every_rollup_of_its_partition(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    hour = START + timedelta(hours=12)
    assert run_hours(defs, instance, hour).success
    for rollup in [*HOURLY_TABLES.values(), slo_status_hourly, quality_checks_hourly]:
        rows = table(loaded, rollup.name)
        assert len(rows) > 0, rollup.name
        assert set(rows["window_start"]) == {pd.Timestamp(hour)}, rollup.name
    overall = table(loaded, "request_rollup_hourly").query("dimension == 'overall'").iloc[0]
    with loaded.engine.connect() as conn:
        roots = conn.execute(sa.text(
            "SELECT count(*) FROM spans WHERE parent_span_id IS NULL AND start_time >= :s AND start_time < :e"
        ), {"s": hour, "e": hour + timedelta(hours=1)}).scalar_one()
    assert overall["request_count"] == roots


def test_materializations_carry_numeric_figures_for_the_ui(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    hour = START + timedelta(hours=12)
    assert run_hours(defs, instance, hour).success
    request = instance.get_latest_materialization_event(dg.AssetKey("request_rollup_hourly"))
    usage = instance.get_latest_materialization_event(dg.AssetKey("usage_rollup_hourly"))
    meta = {k: v.value for k, v in request.asset_materialization.metadata.items()}
    assert meta["requests"] > 0 and meta["latency_p95_ms"] > 0 and 0 <= meta["error_rate"] <= 1
    assert "| dimension |" in meta["preview"]
    usage_meta = {k: v.value for k, v in usage.asset_materialization.metadata.items()}
    assert usage_meta["cost_usd"] > 0 and usage_meta["price_version"]
    assert request.asset_materialization.partition == hour_key(hour)


def test_rematerializing_a_partition_gives_identical_tables(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    hour = START + timedelta(hours=9)
    assert run_hours(defs, instance, hour).success
    first = {t.name: table(loaded, t.name) for t in HOURLY_TABLES.values()}
    assert run_hours(defs, instance, hour).success
    for name, frame in first.items():
        pd.testing.assert_frame_equal(table(loaded, name), frame)


def test_backfill_of_a_range_equals_each_partition_alone(loaded):
    defs = definitions(loaded)
    first, last = START + timedelta(hours=3), START + timedelta(hours=6)
    assert run_hours(defs, dg.DagsterInstance.ephemeral(), first, last).success
    backfilled = {t.name: table(loaded, t.name) for t in [*HOURLY_TABLES.values(), slo_status_hourly]}
    assert backfilled["request_rollup_hourly"]["window_start"].nunique() == 4
    with loaded.engine.begin() as conn:
        for name in backfilled:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    instance = dg.DagsterInstance.ephemeral()
    for i in range(4):
        assert run_hours(defs, instance, first + timedelta(hours=i)).success
    for name, frame in backfilled.items():
        pd.testing.assert_frame_equal(table(loaded, name), frame, obj=name)


def test_backfill_records_every_partition_as_materialized(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    first, last = START + timedelta(hours=3), START + timedelta(hours=6)
    assert run_hours(defs, instance, first, last).success
    done = instance.get_materialized_partitions(dg.AssetKey("request_rollup_hourly"))
    assert done == {hour_key(first + timedelta(hours=i)) for i in range(4)}


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition: str) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return records[0].asset_materialization


def test_each_hour_of_a_range_run_carries_its_own_figures(loaded):
    """The UI's Plots by partition and each partition's preview read the partition's latest materialization."""
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    first = START + timedelta(hours=8)
    hours = [first + timedelta(hours=i) for i in range(4)]
    assert run_hours(defs, instance, hours[0], hours[-1]).success
    requests = table(loaded, "request_rollup_hourly").query("dimension == 'overall'")
    expected = dict(zip(requests["window_start"], requests["request_count"]))
    assert len(set(expected.values())) > 1  # the hours differ, so a range total would show
    for hour in hours:
        meta = latest_materialization(instance, "request_rollup_hourly", hour_key(hour)).metadata
        assert meta["requests"].value == expected[pd.Timestamp(hour)], hour
        overall_row = next(line for line in meta["preview"].value.splitlines() if line.startswith("| overall |"))
        assert f"| {expected[pd.Timestamp(hour)]} |" in overall_row, hour
        usage = latest_materialization(instance, "usage_rollup_hourly", hour_key(hour)).metadata
        assert usage["price_version"].value and usage["cost_usd"].value > 0
        assert "slos" in latest_materialization(instance, "slo_status_hourly", hour_key(hour)).metadata
    # exactly one materialization per hour and table: no range-wide event on top
    records = instance.fetch_materializations(dg.AssetKey("request_rollup_hourly"), limit=100).records
    assert sorted(r.asset_materialization.partition for r in records) == [hour_key(h) for h in hours]


def test_late_data_sensor_names_hours_older_than_the_lookback_with_the_backfill_command(loaded):
    defs = build_definitions(Settings(db_url=loaded.db_url, partitions_start="2026-03-01-00:00"))
    sensor = defs.resolve_sensor_def("monitoring_late_data_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), definitions=defs, resources={"trace_store": loaded}))
    assert tick.run_requests == []
    assert f"{HOURS} hour(s) older than the look-back" in tick.skip_message
    assert "obs-pipelines run monitoring --start 2026-03-02T00:00 --end 2026-03-03T01:00" in tick.skip_message


def bad_row(hour: datetime) -> dict:
    start = hour + timedelta(minutes=5)
    return {"trace_id": "ab" * 16, "span_id": "cd" * 8, "parent_span_id": None, "name": "broken", "kind": "llm",
            "start_time": start, "end_time": start - timedelta(seconds=3), "status": "ok", "model": "gpt-4o"}


def test_failing_blocking_check_stops_that_partitions_rollups(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    bad_hour, good_hour = START + timedelta(hours=14), START + timedelta(hours=15)
    db.insert_spans(loaded.engine, [bad_row(bad_hour)])

    result = run_hours(defs, instance, bad_hour)
    assert not result.success
    assert table(loaded, "request_rollup_hourly", bad_hour, bad_hour + timedelta(hours=1)).empty
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["end_not_before_start"].passed
    assert checks["end_not_before_start"].partition == hour_key(bad_hour)
    assert checks["end_not_before_start"].metadata["failing_count"].value == 1
    assert checks["span_key_unique"].passed

    assert run_hours(defs, instance, good_hour).success
    assert not table(loaded, "request_rollup_hourly", good_hour, good_hour + timedelta(hours=1)).empty


def test_one_bad_hour_in_a_range_fails_only_that_hour(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    first, bad_hour, last = START + timedelta(hours=13), START + timedelta(hours=14), START + timedelta(hours=15)
    db.insert_spans(loaded.engine, [bad_row(bad_hour)])

    result = run_hours(defs, instance, first, last)
    assert not result.success
    rolled = set(table(loaded, "request_rollup_hourly")["window_start"])
    assert rolled == {pd.Timestamp(first), pd.Timestamp(last)}
    assert set(table(loaded, "slo_status_hourly")["window_start"]) == {pd.Timestamp(first), pd.Timestamp(last)}
    done = instance.get_materialized_partitions(dg.AssetKey("request_rollup_hourly"))
    assert done == {hour_key(first), hour_key(last)}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    reasons = failure.step_failure_data.user_failure_data.metadata["reasons"].value
    assert list(reasons) == [hour_key(bad_hour)]
    assert reasons[hour_key(bad_hour)][0].startswith("end_not_before_start: 1 of ")
    by_hour = {e.partition: e.passed for e in result.get_asset_check_evaluations()
               if e.check_name == "end_not_before_start"}
    assert by_hour == {hour_key(first): True, hour_key(bad_hour): False, hour_key(last): True}


def test_a_rollup_only_selection_still_runs_the_quality_gate(loaded):
    """The UI's "Materialize" of one rollup asset (or a GraphQL backfill of it) selects no spans check."""
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    bad_hour = START + timedelta(hours=14)
    db.insert_spans(loaded.engine, [bad_row(bad_hour)])
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
              and dg.AssetKey("usage_rollup_hourly") in a.keys]
    result = dg.materialize(assets, partition_key=hour_key(bad_hour), instance=instance,
                            resources={"trace_store": loaded}, raise_on_error=False)
    assert result.get_asset_check_evaluations()  # reported from inside the rollup step
    assert not result.success
    assert table(loaded, "usage_rollup_hourly", bad_hour, bad_hour + timedelta(hours=1)).empty
    assert instance.get_materialized_partitions(dg.AssetKey("usage_rollup_hourly")) == set()


def test_quality_checks_pass_on_clean_partitions(loaded):
    result = run_hours(definitions(loaded), dg.DagsterInstance.ephemeral(), START + timedelta(hours=10))
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(CHECK_CATALOG)  # one evaluation per catalogued quality check
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_on_demand_spans_checks_report_each_hour(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    bad_hour = START + timedelta(hours=14)
    db.insert_spans(loaded.engine, [bad_row(bad_hour)])
    # partitioned like the checks' asset (Dagster infers it from the selection)
    job = dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks_for_assets("spans"))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    tags = dict(zip(RANGE_TAGS, (hour_key(bad_hour - timedelta(hours=1)), hour_key(bad_hour))))
    result = defs.resolve_job_def("checks_only").execute_in_process(tags=tags, instance=instance,
                                                                    raise_on_error=False)
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "end_not_before_start"]
    assert [(e.partition, e.passed) for e in evaluations] == [
        (hour_key(bad_hour - timedelta(hours=1)), True), (hour_key(bad_hour), False), (None, False)]
    assert evaluations[-1].metadata["failing_partitions"].value == [hour_key(bad_hour)]


def late_trace(hour: datetime) -> list[dict]:
    start = hour + timedelta(minutes=30)
    root = {"trace_id": "ef" * 16, "span_id": "01" * 8, "parent_span_id": None, "name": "POST /ask",
            "kind": "chain", "start_time": start, "end_time": start + timedelta(seconds=2), "status": "ok",
            "route": "late_route"}
    llm = {"trace_id": "ef" * 16, "span_id": "02" * 8, "parent_span_id": "01" * 8, "name": "chat", "kind": "llm",
           "start_time": start, "end_time": start + timedelta(seconds=1), "status": "ok", "model": "gpt-4o-mini",
           "provider": "openai", "input_tokens": 100, "output_tokens": 10}
    return [root, llm]


def test_late_span_changes_its_hour_after_the_late_data_sensor_run(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    hour, untouched = START + timedelta(hours=20), START + timedelta(hours=21)
    sensor = defs.resolve_sensor_def("monitoring_late_data_sensor")

    resources = {"trace_store": loaded}
    assert run_hours(defs, instance, hour, untouched).success
    # spans ingested before the rollup read them are not late, whenever the sensor first looks; the hours
    # never rolled up are requested, in ranges of consecutive hours
    first_tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, resources=resources))
    assert [(r.tags[RANGE_TAGS[0]], r.tags[RANGE_TAGS[1]]) for r in first_tick.run_requests] == [
        (hour_key(START), hour_key(hour - timedelta(hours=1))),
        (hour_key(untouched + timedelta(hours=1)), hour_key(START + timedelta(hours=HOURS - 1)))]
    before = table(loaded, "request_rollup_hourly", hour, hour + timedelta(hours=1))

    assert db.insert_spans(loaded.engine, late_trace(hour)) == 2
    tick = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first_tick.cursor, definitions=defs, resources=resources))
    assert [(r.tags[RANGE_TAGS[0]], r.tags[RANGE_TAGS[1]]) for r in tick.run_requests] == [(hour_key(hour),) * 2]
    assert run_hours(defs, instance, hour).success

    after = table(loaded, "request_rollup_hourly", hour, hour + timedelta(hours=1))
    count = lambda frame: frame.query("dimension == 'overall'")["request_count"].iloc[0]  # noqa: E731
    assert count(after) == count(before) + 1
    assert "late_route" in set(after["dimension_value"])
    quiet = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs, resources=resources))
    assert quiet.run_requests == []


def test_daily_job_sums_the_hourly_tables(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    assert run_hours(defs, instance, START, START + timedelta(hours=23)).success
    daily = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key="2026-03-02", instance=instance)
    assert daily.success
    hourly = table(loaded, "request_rollup_hourly").query("dimension == 'overall'")
    day = table(loaded, "request_rollup_daily").query("dimension == 'overall'")
    assert day["request_count"].iloc[0] == hourly["request_count"].sum()
    usage_hourly = table(loaded, "usage_rollup_hourly").query("dimension == 'overall'")
    usage_day = table(loaded, "usage_rollup_daily").query("dimension == 'overall'")
    assert usage_day["cost_usd"].iloc[0] == pytest.approx(usage_hourly["cost_usd"].sum(), abs=0.005)


def test_daily_rollup_is_requested_once_its_day_is_rolled_up(loaded):
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    daily_key = dg.AssetKey("request_rollup_daily")
    assert run_hours(defs, instance, START, START + timedelta(hours=22)).success
    # evaluated as of the next day (the last-7-days window of the condition)
    now = START + timedelta(days=1, hours=3)
    partial = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
    assert partial.get_requested_partitions(daily_key) == set()
    assert run_hours(defs, instance, START + timedelta(hours=23)).success
    complete = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=partial.cursor,
                                                 evaluation_time=now)
    assert complete.get_requested_partitions(daily_key) == {"2026-03-02"}


def test_rematerializing_uses_the_current_price_table(store):
    hour = START + timedelta(hours=2)
    start = hour + timedelta(minutes=10)
    call = {"trace_id": "aa" * 16, "span_id": "0a" * 8, "parent_span_id": None, "name": "chat", "kind": "llm",
            "start_time": start, "end_time": start + timedelta(seconds=1), "status": "ok", "model": "acme-ft-1",
            "provider": "openai", "input_tokens": 1_000_000, "output_tokens": 0}
    db.insert_spans(store.engine, [call])
    instance = dg.DagsterInstance.ephemeral()

    def cost_with(input_price: float) -> tuple[float, str]:
        settings = Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00",
                            price_overrides={"acme-ft-1": {"input": input_price, "output": 1.0}})
        assert run_hours(build_definitions(settings), instance, hour).success
        row = table(store, "usage_rollup_hourly").query("dimension == 'overall'").iloc[0]
        return row["cost_usd"], row["price_version"]

    old_cost, old_version = cost_with(0.30)
    new_cost, new_version = cost_with(0.60)
    assert (old_cost, new_cost) == (pytest.approx(0.30), pytest.approx(0.60))
    assert old_version != new_version


def test_hourly_rollups_declare_a_freshness_policy(store):
    graph = definitions(store).resolve_asset_graph()
    policy = graph.get(dg.AssetKey("request_rollup_hourly")).freshness_policy
    assert policy is not None and policy.fail_window.to_timedelta() == timedelta(hours=2, minutes=10)
