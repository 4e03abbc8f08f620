"""A store holding what the demo produces: its incidents in generated traffic, the monitoring rollups and
the alerts the shipped example rules raise (monitoring's hourly job, the rules job, the results applied as
the alerts sensor applies them). Shared by the report tests and bench/bench_reports.py."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import yaml

from obs_pipelines.alerts.defs import RULES_JOB, process_rule_results
from obs_pipelines.definitions import build_definitions
from obs_pipelines.demo import demo_incidents
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
START = datetime(2026, 11, 2, 0, 0)  # a Monday: the demo's hours sit in one ISO week and one month
HOURS = 32  # the demo's incidents through cost_overrun (26+3) and two clean hours to resolve it


def hour_key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


def demo_settings(url: str) -> Settings:
    """The example file's SLOs and alert rules (the demo's), monitoring only."""
    example = yaml.safe_load(EXAMPLE.read_text())
    return Settings(db_url=url, phases=["monitoring"], partitions_start="2026-10-01-00:00",
                    slos=example["slos"], alerts=example["alerts"])


def build_demo_store(url: str, rate: float = 0.05, seed: int = 7) -> Settings:
    """Generate the demo's traffic and incidents into ``url``, roll it up and raise its alerts."""
    store = TraceStore(db_url=url)
    store.create_tables()
    incidents = demo_incidents(START, HOURS / 24)
    gc.disable()
    try:
        rows = [row for trace in generate_traces(START, HOURS, rate, seed, incidents) for row in trace]
    finally:
        gc.enable()
    db.insert_spans(store.engine, rows)
    settings = demo_settings(url)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": hour_key(START),
            "dagster/asset_partition_range_end": hour_key(START + timedelta(hours=HOURS - 1))}
    for job in ("monitoring_hourly_job", RULES_JOB):
        result = defs.resolve_job_def(job).execute_in_process(tags=tags, instance=instance, raise_on_error=False)
        assert result.success, job
    process_rule_results(store.engine, settings)
    store.engine.dispose()
    return settings
