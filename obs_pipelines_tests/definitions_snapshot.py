"""The code location's graph as reviewable JSON: every asset key, check key, job, schedule and sensor that
`build_definitions` makes from the documented example settings (every phase on, the example alert rules).

test_house_rules.py compares it with the checked-in `definitions_snapshot.json`, so a change to the graph shows up
in review as a diff of that file. After an intended change, regenerate it with

    .venv/bin/python -m obs_pipelines_tests.definitions_snapshot
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from obs_pipelines.definitions import build_definitions
from obs_pipelines.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SETTINGS = ROOT / "config" / "example.yaml"
SNAPSHOT_FILE = Path(__file__).with_name("definitions_snapshot.json")


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return f"{partitions_def.cron_schedule} from {partitions_def.start.isoformat()} ({partitions_def.fmt})"
    return type(partitions_def).__name__


def _job(defs: dg.Definitions, name: str) -> dict[str, Any]:
    job = defs.resolve_job_def(name)
    return {
        "partitions": _partitions(job.partitions_def),
        "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
        "checks": sorted(k.to_user_string() for k in job.asset_layer.asset_graph.asset_check_keys),
    }


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """The graph's names and wiring, sorted, as plain JSON values."""
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {
        key.to_user_string(): {
            "group": graph.get(key).group_name,
            "partitions": _partitions(graph.get(key).partitions_def),
            "deps": sorted(k.to_user_string() for k in graph.get(key).parent_keys),
            "external": not graph.get(key).is_materializable,
        }
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    }
    return {
        "assets": assets,
        "asset_checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "jobs": {j.name: _job(defs, j.name) for j in sorted(repo.get_all_jobs(), key=lambda j: j.name)
                 if not j.name.startswith("__ASSET_JOB")},
        "schedules": {
            s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                     "default_status": s.default_status.value}
            for s in sorted(repo.schedule_defs, key=lambda s: s.name)
        },
        "sensors": {
            s.name: {"type": type(s).__name__, "default_status": s.default_status.value,
                     "minimum_interval_seconds": s.minimum_interval_seconds,
                     "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else []}
            for s in sorted(repo.sensor_defs, key=lambda s: s.name)
        },
    }


def current_snapshot() -> dict[str, Any]:
    """The snapshot of the example settings, on a throwaway SQLite URL (nothing connects to it here)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(EXAMPLE_SETTINGS).model_copy(update={"db_url": f"sqlite:///{tmp}/snapshot.db"})
        return snapshot(build_definitions(settings))


def render(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    SNAPSHOT_FILE.write_text(render(current_snapshot()))
    print(f"wrote {SNAPSHOT_FILE.relative_to(ROOT)}")
