"""The online evals phase as Dagster runs it: the hourly job in process against real SQLite and PostgreSQL
stores, checked through the tables and the instance's event records."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.definitions import build_definitions
from obs_pipelines.online_evals.defs import HOURLY_JOB, JOBS
from obs_pipelines.online_evals.tables import (
    eval_hours,
    eval_responses,
    eval_results,
    eval_scores,
    online_evals_metadata,
    score_rollup_hourly,
)
from obs_pipelines.orchestration.partitions import RESCORE_TAG
from obs_pipelines.settings import Settings
from obs_pipelines_tests.online_evals.conftest import load_traffic

START = datetime(2026, 3, 2, 8, 0)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


def definitions(store, **online_evals) -> dg.Definitions:
    return build_definitions(Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00",
                                      phases=["online_evals"], online_evals=online_evals or {}))


def run(defs, instance, first: datetime, last: datetime | None = None, tags: dict | None = None):
    job = defs.resolve_job_def(HOURLY_JOB)
    if last is None:
        return job.execute_in_process(partition_key=key(first), instance=instance, tags=tags, raise_on_error=False)
    return job.execute_in_process(tags={**dict(zip(RANGE_TAGS, (key(first), key(last)))), **(tags or {})},
                                  instance=instance, raise_on_error=False)


def rows(store, name: str, drop=("scored_at", "computed_at")) -> pd.DataFrame:
    tbl = eval_scores if name == eval_scores.name else online_evals_metadata.tables[name]  # (a view)
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.select(tbl)).mappings().all(), columns=[c.name for c in tbl.columns])
    frame = frame.drop(columns=[c for c in drop if c in frame])
    return frame.sort_values([c for c in frame.columns if c not in ("details",)]).reset_index(drop=True)


def latest(instance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_definitions_hold_the_online_evals_group_job_and_schedule(store):
    defs = definitions(store)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    group = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "online_evals"}
    assert group == {"eval_scores", "score_rollup_hourly", "score_rollup_daily", "failure_clusters_daily"}
    assert JOBS == (HOURLY_JOB, "online_evals_daily_job") and all(defs.resolve_job_def(j) for j in JOBS)
    assert defs.resolve_sensor_def("online_evals_automation_sensor")
    assert defs.resolve_schedule_def("online_evals_hourly_schedule").cron_schedule == "30 * * * *"


def test_the_hourly_job_scores_its_partition_and_reports_figures(store):
    load_traffic(store.engine, START, 2)
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    assert run(defs, instance, START).success
    scores, rollup = rows(store, "eval_scores"), rows(store, "score_rollup_hourly")
    assert set(scores["window_start"]) == {pd.Timestamp(START)}  # only its own hour
    assert not scores.duplicated(["trace_id", "span_id", "scorer", "scorer_version"]).any()
    meta = latest(instance, "eval_scores", key(START))
    assert meta["rows"] == len(scores) and meta["responses"] == scores["trace_id"].nunique()
    assert meta["scored_now"] == len(scores) and 0 < meta["mean/groundedness"] <= 1
    roll = latest(instance, "score_rollup_hourly", key(START))
    assert roll["rows"] == len(rollup) and roll["mean/groundedness"] == meta["mean/groundedness"]


def test_a_rerun_replaces_the_hour_without_duplicates_and_scores_nothing(store):
    load_traffic(store.engine, START, 1)
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    assert run(defs, instance, START).success
    before = rows(store, "eval_scores")
    assert run(defs, instance, START).success
    pd.testing.assert_frame_equal(rows(store, "eval_scores"), before)
    meta = latest(instance, "eval_scores", key(START))
    assert meta["scored_now"] == 0 and meta["kept"] == len(before) and meta["unchanged"] is True
    assert run(defs, instance, START, tags={RESCORE_TAG: "true"}).success  # forced: scored again, same rows
    assert latest(instance, "eval_scores", key(START))["scored_now"] == len(before)
    pd.testing.assert_frame_equal(rows(store, "eval_scores"), before)


def test_a_changed_scorer_option_rescores_exactly_its_rows(store):
    load_traffic(store.engine, START, 1)
    instance = dg.DagsterInstance.ephemeral()
    assert run(definitions(store), instance, START).success
    before = rows(store, "eval_scores")
    changed = definitions(store, scorer_options={"step_budget": {"max_steps": 2}})
    assert run(changed, instance, START).success
    after = rows(store, "eval_scores")
    assert latest(instance, "eval_scores", key(START))["scored_now"] == before["trace_id"].nunique()
    others = ["scorer != 'step_budget'"]
    pd.testing.assert_frame_equal(after.query(others[0]).reset_index(drop=True),
                                  before.query(others[0]).reset_index(drop=True))
    assert set(after.query("scorer == 'step_budget'")["scorer_version"]).isdisjoint(
        before.query("scorer == 'step_budget'")["scorer_version"])


def test_a_range_backfill_equals_per_partition_runs_and_gives_each_hour_its_own_metadata(store, tmp_path):
    load_traffic(store.engine, START, 4)
    hours = [START + timedelta(hours=i) for i in range(4)]
    instance = dg.DagsterInstance.ephemeral()
    assert run(definitions(store), instance, hours[0], hours[-1]).success
    ranged = rows(store, "eval_scores")
    ranged_rollup = rows(store, "score_rollup_hourly")
    with store.engine.begin() as conn:
        conn.execute(sa.delete(eval_results))  # eval_scores is a view over these two
        conn.execute(sa.delete(eval_responses))
        conn.execute(sa.delete(score_rollup_hourly))
        conn.execute(sa.delete(eval_hours))
    single = dg.DagsterInstance.ephemeral()
    for hour in hours:
        assert run(definitions(store), single, hour).success
    pd.testing.assert_frame_equal(rows(store, "eval_scores").drop(columns=["details"]),
                                  ranged.drop(columns=["details"]))
    pd.testing.assert_frame_equal(rows(store, "score_rollup_hourly"), ranged_rollup)
    responses = ranged.groupby("window_start")["trace_id"].nunique()
    assert responses.nunique() > 1  # the hours differ, so a range-wide figure would show
    for hour in hours:
        meta = latest(instance, "eval_scores", key(hour))
        assert meta["responses"] == responses[pd.Timestamp(hour)], hour
    records = instance.fetch_materializations(dg.AssetKey("eval_scores"), limit=100).records
    assert sorted(r.asset_materialization.partition for r in records) == [key(h) for h in hours]


def test_a_bad_hour_is_reported_failed_while_the_other_hours_of_the_range_are_written(store, monkeypatch):
    load_traffic(store.engine, START, 3)
    from obs_pipelines.online_evals import scoring

    real = scoring.score_hour
    bad = START + timedelta(hours=1)

    def flaky(engine, start, end, *args, **kwargs):
        if start == bad:
            raise RuntimeError("disk on fire")
        return real(engine, start, end, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_hour", flaky)
    instance = dg.DagsterInstance.ephemeral()
    result = run(definitions(store), instance, START, START + timedelta(hours=2))
    assert not result.success
    written = set(rows(store, "eval_scores")["window_start"])
    assert written == {pd.Timestamp(START), pd.Timestamp(START + timedelta(hours=2))}
    done = {r.asset_materialization.partition
            for r in instance.fetch_materializations(dg.AssetKey("eval_scores"), limit=100).records}
    assert done == {key(START), key(START + timedelta(hours=2))}


def test_spans_arriving_late_in_a_scored_hour_get_scored_and_nothing_else(store):
    load_traffic(store.engine, START, 1)
    defs, instance = definitions(store), dg.DagsterInstance.ephemeral()
    assert run(defs, instance, START).success
    before = rows(store, "eval_scores")
    late = load_traffic(store.engine, START, 1, seed=99)  # another batch of requests in the same hour
    assert run(defs, instance, START).success
    after = rows(store, "eval_scores")
    meta = latest(instance, "eval_scores", key(START))
    new_traces = set(after["trace_id"]) - set(before["trace_id"])
    assert len(new_traces) == late and meta["scored_now"] == len(after) - len(before) > 0
    assert meta["kept"] == len(before) and meta["unchanged"] is False


def test_the_phase_run_over_a_day_scores_its_hours_and_rolls_the_day_up_exactly(store):
    """What `obs-pipelines run online_evals --start --end` does: the hourly job over the range, then the daily."""
    from obs_pipelines.orchestration.local_runs import materialize_phase

    day = datetime(2026, 3, 3)
    load_traffic(store.engine, day, 24, rate=0.005)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_phase("online_evals", day, day + timedelta(hours=23), definitions(store), instance).success
    scores, daily = rows(store, "eval_scores"), rows(store, "score_rollup_daily")
    assert scores["window_start"].nunique() == 24 and set(daily["window_start"]) == {pd.Timestamp(day)}
    overall = daily[daily["dimension"] == "overall"].set_index("scorer")
    g = scores[scores["scorer"] == "groundedness"]["score"].dropna()
    assert overall.loc["groundedness", "scored_count"] == len(g)
    assert overall.loc["groundedness", "p10_score"] == pytest.approx(g.quantile(0.1))  # exact, not merged
    assert latest(instance, "score_rollup_daily", "2026-03-03")["rows"] == len(daily)
