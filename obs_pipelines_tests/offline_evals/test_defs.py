"""The phase in the code location: names, group, partitions."""

from __future__ import annotations

import dagster as dg

from obs_pipelines.definitions import build_definitions
from obs_pipelines.offline_evals.defs import JOBS
from obs_pipelines.settings import Settings


def test_the_phase_is_assembled_with_its_assets_job_and_schedule():
    defs = build_definitions(Settings(phases=["offline_evals"], partitions_start="2026-11-01-00:00"))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"regression_cases", "dataset_versions", "experiments"} <= keys
    for key in ("regression_cases", "dataset_versions", "experiments"):
        assert graph.get(dg.AssetKey(key)).group_name == "offline_evals"
    job = defs.resolve_job_def(JOBS[0])
    assert isinstance(job.partitions_def, dg.DailyPartitionsDefinition)
    assert [s.name for s in defs.schedules] == ["offline_evals_daily_schedule"]
