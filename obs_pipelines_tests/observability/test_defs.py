"""The observability phase as Dagster runs it: its group, jobs and schedule; the traces table against
monitoring's request rollup; re-runs and range runs; per-partition metadata. Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.monitoring.defs import HOURLY_JOB as MONITORING_HOURLY_JOB
from obs_pipelines.observability.defs import DAILY_JOB, HOURLY_JOB, JOBS
from obs_pipelines.observability.tables import DAILY_TABLES, HOURLY_TABLES
from obs_pipelines_tests.observability.conftest import (
    DAY0,
    definitions,
    hour_key,
    hours,
    load_traffic,
    run_hours,
    table,
)


def test_definitions_hold_the_observability_group_its_jobs_and_schedule(store):
    defs = definitions(store)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    group = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "observability"}
    assert group == set(HOURLY_TABLES) | set(DAILY_TABLES)
    assert JOBS == (HOURLY_JOB, DAILY_JOB)
    schedule = defs.resolve_schedule_def("observability_hourly_schedule")
    assert schedule.cron_schedule == "20 * * * *"  # after monitoring's :10
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_traces_agree_row_for_row_with_the_monitoring_request_rollup(store):
    load_traffic(store, "provider_outage")
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    for hour in hours():
        assert run_hours(defs, instance, hour).success
        monitoring = defs.resolve_job_def(MONITORING_HOURLY_JOB)
        assert monitoring.execute_in_process(partition_key=hour_key(hour), instance=instance).success
    with store.engine.connect() as conn:
        rollup = pd.DataFrame(conn.execute(sa.text(
            "SELECT window_start, dimension_value AS route, request_count, error_count FROM request_rollup_hourly "
            "WHERE dimension = 'route'")).mappings().all())
    rollup["window_start"] = pd.to_datetime(rollup["window_start"])
    traces = table(store, "traces")
    ours = traces.groupby(["window_start", "route"]).agg(
        request_count=("trace_id", "size"), error_count=("status", lambda s: int((s == "error").sum()))).reset_index()
    merged = rollup.merge(ours, on=["window_start", "route"], how="outer", suffixes=("_monitoring", "_traces"))
    assert len(merged) == len(rollup) > 0
    assert (merged["request_count_monitoring"] == merged["request_count_traces"]).all()
    assert (merged["error_count_monitoring"] == merged["error_count_traces"]).all()
    assert traces["trace_id"].is_unique


def test_rerunning_a_partition_replaces_its_rows(store):
    load_traffic(store)
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    hour = hours()[1]
    assert run_hours(defs, instance, hour).success
    first = {name: table(store, name) for name in HOURLY_TABLES}
    assert run_hours(defs, instance, hour).success
    for name, frame in first.items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(table(store, name), frame, obj=name)


def test_a_range_run_equals_the_runs_of_each_partition(store):
    load_traffic(store)
    defs = definitions(store)
    first, last = hours()[0], hours()[-1]
    assert run_hours(defs, dg.DagsterInstance.ephemeral(), first, last).success
    ranged = {name: table(store, name) for name in HOURLY_TABLES}
    assert ranged["traces"]["window_start"].nunique() == 3
    with store.engine.begin() as conn:
        for name in ranged:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    instance = dg.DagsterInstance.ephemeral()
    for hour in hours():
        assert run_hours(defs, instance, hour).success
    for name, frame in ranged.items():
        pd.testing.assert_frame_equal(table(store, name), frame, obj=name)


def _latest(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_each_hour_of_a_range_run_carries_its_own_figures(store):
    load_traffic(store, "retrieval_miss")
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    assert run_hours(defs, instance, hours()[0], hours()[-1]).success
    traces = table(store, "traces")
    per_hour = traces.groupby("window_start").size()
    assert per_hour.nunique() > 1  # the hours differ, so a range total would show
    for hour in hours():
        meta = _latest(instance, "traces", hour_key(hour))
        assert meta["requests"] == meta["rows"] == per_hour[pd.Timestamp(hour)]
        assert "| trace_id |" in meta["preview"] and "slowest trace" in meta["slowest_trace"]
        retrieval = _latest(instance, "retrieval_rollup_hourly", hour_key(hour))
        assert (retrieval["empty_retrieval_rate"] > 0.2) == (hour == hours()[1])
        for name in HOURLY_TABLES:
            assert "preview" in _latest(instance, name, hour_key(hour)), name
    records = instance.fetch_materializations(dg.AssetKey("traces"), limit=100).records
    assert sorted(r.asset_materialization.partition for r in records) == [hour_key(h) for h in hours()]


def test_the_daily_job_rolls_up_the_day_s_sessions(store):
    load_traffic(store)
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    assert run_hours(defs, instance, hours()[0], hours()[-1]).success
    assert run_hours(defs, instance, DAY0, job=DAILY_JOB).success
    sessions = table(store, "session_rollup_daily")
    traces = table(store, "traces")
    assert sessions["turns"].sum() == traces["session_id"].notna().sum()
    assert _latest(instance, "session_rollup_daily", DAY0.strftime("%Y-%m-%d"))["sessions"] == len(sessions)
    assert set(sessions["window_start"]) == {pd.Timestamp(DAY0.replace(hour=0))}
    assert timedelta(0) <= (sessions["last_seen"] - sessions["first_seen"]).min()
