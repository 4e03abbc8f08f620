"""`obs-pipelines demo`: generate traces with incidents, ingest them, run every enabled phase."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from obs_pipelines.settings import load_settings
from obs_pipelines.store import db

DEMO_DIR = Path(".obs_pipelines") / "demo"


def demo_incidents(start: datetime, days: float):
    """One of each incident, spread over the demo window so each is visible in its own hours."""
    from obs_pipelines.synth.generator import Incident

    plan = [
        ("latency_spike", 10, 2),
        ("provider_outage", 15, 1),
        ("rate_limit_storm", 20, 1),
        ("cost_overrun", 26, 3),
        ("retrieval_miss", 31, 2),
        ("tool_loop", 35, 2),
        ("prompt_regression", 40, 3),
        ("silent_quality_drift", 24, 20),
    ]
    horizon = days * 24
    return [
        Incident(name, start + timedelta(hours=at), timedelta(hours=length))
        for name, at, length in plan
        if at + length <= horizon
    ]


def run_demo(days: float, rate: float, seed: int, console: Console) -> bool:
    from obs_pipelines.definitions import available_phases, build_definitions
    from obs_pipelines.ingest.runner import ingest_paths
    from obs_pipelines.local_runs import local_instance, materialize_phase
    from obs_pipelines.synth.generator import write_otlp_jsonl

    settings = load_settings()
    engine = db.make_engine(settings.db_url)
    db.create_tables(engine)

    end = db.utcnow().replace(minute=0, second=0, microsecond=0)
    # start at midnight so the demo holds whole days for the daily rollups
    start = (end - timedelta(days=days)).replace(hour=0)
    days = (end - start) / timedelta(days=1)
    incidents = demo_incidents(start, days)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    path = DEMO_DIR / f"traces-{start:%Y%m%dT%H}-seed{seed}.jsonl"
    console.rule("1. generate")
    summary = write_otlp_jsonl(path, start=start, hours=days * 24, rate=rate, seed=seed, incidents=incidents)
    console.print(f"{summary.traces} traces, {summary.spans} spans -> {path}")
    for inc in incidents:
        console.print(f"  incident {inc.name:<22} {inc.start:%Y-%m-%d %H:%M} for {inc.duration}")

    console.rule("2. ingest")
    result = ingest_paths(engine, [path])
    console.print(
        f"read {result.read}, stored {result.stored}, duplicate {result.duplicate}, rejected {result.rejected}"
    )

    defs = build_definitions(settings)
    instance = local_instance()
    ok = True
    for phase in available_phases(settings):
        console.rule(f"3. materialize {phase}")
        run = materialize_phase(phase, start, end - timedelta(hours=1), defs=defs, instance=instance)
        console.print(f"{phase}: run {run.run_id} {'succeeded' if run.success else '[red]FAILED[/red]'}")
        ok = ok and run.success

    _print_tables(engine, console)
    console.rule("next")
    console.print(
        "Open the Dagster UI on this store and instance:\n"
        "  DAGSTER_HOME=$PWD .venv/bin/dagster dev -w workspace.yaml\n"
        f"Trace store: {engine.url.render_as_string(hide_password=True)}"
    )
    return ok


def _print_tables(engine: sa.Engine, console: Console) -> None:
    inspector = sa.inspect(engine)
    table = Table(title="tables in the trace store")
    table.add_column("table")
    table.add_column("rows", justify="right")
    with engine.connect() as conn:
        for name in sorted(inspector.get_table_names()):
            count = conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            table.add_row(name, str(count))
    console.print(table)
