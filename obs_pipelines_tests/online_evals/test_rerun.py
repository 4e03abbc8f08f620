"""Re-running a scored range redoes only what changed (issue 23), daily assets and alert checks included: the
phase run over a day (hourly job with its alert-rule checks, then the daily job) over an unchanged day writes nothing,
and a request arriving late in one hour redoes exactly that hour, its day and the checks that read that hour."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.definitions import build_definitions
from obs_pipelines.orchestration.local_runs import materialize_phase
from obs_pipelines.settings import Settings
from obs_pipelines.store.schema import step_inputs, window_writes
from obs_pipelines_tests.online_evals.conftest import load_traffic
from obs_pipelines_tests.online_evals.test_defs import rows

DAY = datetime(2026, 3, 3)
HOUR = timedelta(hours=1)
# a rule with no history (a threshold): its hour reads only its own hour of score_rollup_hourly
RULE = {"name": "mean_score_low", "kind": "threshold", "table": "score_rollup_hourly", "group_by": ["scorer"],
        "metric": "mean_score", "comparison": "<", "threshold": 0.5}


def _definitions(store) -> dg.Definitions:
    return build_definitions(Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00",
                                      phases=["online_evals"], alerts={"rules": [RULE]}))


def _table(store, table: sa.Table) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.select(table)).mappings().all())
    return frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)


def _run(store, instance) -> None:
    assert materialize_phase("online_evals", DAY, DAY + 23 * HOUR, _definitions(store), instance).success


def _changed(before: pd.DataFrame, after: pd.DataFrame, keys: list[str]) -> set[tuple]:
    merged = before.merge(after, on=keys, how="outer", suffixes=("_b", "_a"), indicator=True)
    values = [c for c in before.columns if c not in keys]
    differs = (merged["_merge"] != "both") | pd.concat(
        [merged[f"{c}_b"].astype(str) != merged[f"{c}_a"].astype(str) for c in values], axis=1).any(axis=1)
    return {tuple(pd.Timestamp(v) if k == "window_start" else v for k, v in zip(keys, r, strict=True))
            for r in merged.loc[differs, keys].itertuples(index=False, name=None)}


def test_a_rerun_over_an_unchanged_range_writes_nothing_and_leaves_every_result_as_it_was(store):
    load_traffic(store.engine, DAY, 24, rate=0.003)
    instance = dg.DagsterInstance.ephemeral()
    _run(store, instance)
    writes, inputs = _table(store, window_writes), _table(store, step_inputs)
    scores, daily = rows(store, "eval_scores"), rows(store, "score_rollup_daily", drop=())
    assert {s for s in inputs["step"]} == {"score_rollup_daily", "failure_clusters_daily", "alerts:mean_score_low"}
    _run(store, instance)
    pd.testing.assert_frame_equal(_table(store, window_writes), writes)  # no window written again
    pd.testing.assert_frame_equal(_table(store, step_inputs), inputs)  # no day, no rule hour computed again
    pd.testing.assert_frame_equal(rows(store, "eval_scores"), scores)
    pd.testing.assert_frame_equal(rows(store, "score_rollup_daily", drop=()), daily)  # computed_at too


def test_a_late_request_in_one_hour_redoes_that_hour_its_day_and_the_checks_of_that_hour_only(store):
    load_traffic(store.engine, DAY, 24, rate=0.003)
    instance = dg.DagsterInstance.ephemeral()
    _run(store, instance)
    writes, inputs = _table(store, window_writes), _table(store, step_inputs)
    scores = rows(store, "eval_scores")
    late = load_traffic(store.engine, DAY + HOUR, 1, rate=0.002, seed=99)  # the second hour only
    assert late > 0
    _run(store, instance)
    rewritten = _changed(writes, _table(store, window_writes), ["table_name", "window_start"])
    hourly = {t for t, w in rewritten if w == pd.Timestamp(DAY + HOUR)}
    assert {"eval_scores", "score_rollup_hourly", "eval_hours"} <= hourly
    assert rewritten - {(t, pd.Timestamp(DAY + HOUR)) for t in hourly} == {
        ("score_rollup_daily", pd.Timestamp(DAY)), ("failure_clusters_daily", pd.Timestamp(DAY))}
    assert _changed(inputs, _table(store, step_inputs), ["step", "window_start"]) == {
        ("alerts:mean_score_low", pd.Timestamp(DAY + HOUR)), ("score_rollup_daily", pd.Timestamp(DAY)),
        ("failure_clusters_daily", pd.Timestamp(DAY))}
    after = rows(store, "eval_scores")
    others = after[after["window_start"] != pd.Timestamp(DAY + HOUR)].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, scores[scores["window_start"] != pd.Timestamp(DAY + HOUR)]
                                  .reset_index(drop=True))
    assert len(after) > len(scores)


def test_an_hour_whose_diagnosis_tables_were_written_since_is_judged_again_and_only_that_hour(store):
    # an alert's cause and exemplars read observability's tables (agent_paths here): a rule hour judged before
    # they held that hour must be judged again once they do, or its alert keeps a cause from missing rows
    from obs_pipelines.observability.tables import agent_paths
    from obs_pipelines.store import db

    load_traffic(store.engine, DAY, 24, rate=0.003)
    instance = dg.DagsterInstance.ephemeral()
    _run(store, instance)
    inputs = _table(store, step_inputs)
    third = DAY + 2 * HOUR
    db.replace_windows(store.engine, third, third + HOUR, {agent_paths: pd.DataFrame(columns=[])})  # an empty hour
    _run(store, instance)
    assert _changed(inputs, _table(store, step_inputs), ["step", "window_start"]) == {
        ("alerts:mean_score_low", pd.Timestamp(third))}
