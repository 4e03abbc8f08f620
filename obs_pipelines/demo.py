"""`obs-pipelines demo`: generate traces with incidents, ingest them, run every enabled phase."""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import yaml
from rich.console import Console
from rich.table import Table

from obs_pipelines.demo_story import HourlyRollups, alert_lines, slo_summary, story
from obs_pipelines.hours import hour_key
from obs_pipelines.settings import CONFIG_ENV, DB_URL_ENV, load_settings
from obs_pipelines.store import db
from obs_pipelines.store.query import read_window

DEMO_DIR = Path(".obs_pipelines") / "demo"
SETTINGS_FILE = DEMO_DIR / "settings.yaml"
EXAMPLE_SETTINGS = Path(__file__).resolve().parents[1] / "config" / "example.yaml"


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
    from obs_pipelines.orchestration.local_runs import local_instance, materialize_phase
    from obs_pipelines.synth.generator import write_otlp_jsonl

    end = db.utcnow().replace(minute=0, second=0, microsecond=0)
    # start at midnight so the demo holds whole days for the daily rollups
    start = (end - timedelta(days=days)).replace(hour=0)
    days = (end - start) / timedelta(days=1)
    incidents = demo_incidents(start, days)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    load_settings()  # a bad key in the user's file is reported against that file, not the demo's copy
    # the partitions start at the demo's first hour, so the UI shows the hours that exist
    write_demo_settings(SETTINGS_FILE, read_user_config(os.environ.get(CONFIG_ENV)), start)
    settings = load_settings(SETTINGS_FILE)
    engine = db.make_engine(settings.db_url)
    db.create_tables(engine)
    path = DEMO_DIR / f"traces-{start:%Y%m%dT%H}-seed{seed}.jsonl"
    console.rule("1. generate")
    summary = write_otlp_jsonl(path, start=start, hours=days * 24, rate=rate, seed=seed, incidents=incidents)
    console.print(f"{summary.traces} traces, {summary.spans} spans -> {path}")
    for inc in incidents:
        console.print(f"  incident {inc.name:<22} {inc.start:%Y-%m-%d %H:%M} for {inc.duration}")

    console.rule("2. ingest")
    result = ingest_paths(engine, [path], limits=settings.ingest_limits)
    console.print(
        f"read {result.read}, stored {result.stored}, duplicate {result.duplicate}, rejected {result.rejected}"
    )

    defs = build_definitions(settings)
    instance = local_instance()
    ok = True
    for phase in available_phases(settings):
        console.rule(f"3. materialize {phase}")
        since = datetime.now(timezone.utc)
        run = materialize_phase(phase, start, end - timedelta(hours=1), defs=defs, instance=instance)
        console.print(f"{phase}: run {run.run_id} {'succeeded' if run.success else '[red]FAILED[/red]'}")
        # materialize_phase returns the last job's result only: the instance knows every run it made
        for job_name, run_id, status in _runs_since(instance, defs, phase, since):
            console.print(f"  {job_name:<24} run {run_id}  {status}")
        ok = ok and run.success

    _print_tables(engine, console)
    if "monitoring" in available_phases(settings):
        console.rule("4. what the rollups show")
        for line in story(incidents, read_hourly_rollups(engine, start, end)):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        for line in slo_summary(_read_table(engine, "slo_status_hourly", start, end)):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    if settings.alerts.rules:
        console.rule("5. alerts")
        for line in demo_alerts(engine, settings):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.rule("next")
    home = None if instance.is_ephemeral else os.environ.get("DAGSTER_HOME") or str(Path.cwd())
    console.print("Open the Dagster UI on this store and instance:", highlight=False)
    console.print(f"  {ui_command(SETTINGS_FILE, engine.url, home)}", highlight=False, soft_wrap=True)
    if engine.url.password:
        console.print(f"  (*** stands for the password: put it back, or keep {DB_URL_ENV} exported)", soft_wrap=True)
    if home is None:
        console.print("  [yellow]The runs went to a temporary instance (no DAGSTER_HOME, no ./dagster.yaml): the UI "
                      "will show the tables' assets but not these runs.[/yellow]")
    return ok


def read_user_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """The user's settings file as a mapping (empty without one); load_settings validates it later."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def example_alerts(example: Path = EXAMPLE_SETTINGS) -> dict[str, Any]:
    """The example settings' alert rules with the log as their one destination (a newcomer sees alerts
    without a webhook); empty when the example file is not there (an installed package)."""
    if not example.is_file():
        return {}
    alerts = (yaml.safe_load(example.read_text()) or {}).get("alerts") or {}
    if not alerts.get("rules"):
        return {}
    rules = [{k: v for k, v in rule.items() if k != "destinations"} for rule in alerts["rules"]]
    return {**{k: v for k, v in alerts.items() if k not in ("rules", "destinations")},
            "destinations": {"log": {"type": "log"}}, "rules": rules}


def demo_alerts(engine: sa.Engine, settings) -> list[str]:
    """Apply the rules' results the demo's runs queued (as alerts_sensor does) and list the alerts raised. The
    demo's hours are history: recorded, not sent (alerts.deliver_max_age_hours)."""
    import json as _json

    from obs_pipelines.alerts.defs import process_rule_results
    from obs_pipelines.alerts.outbox import recent_alerts

    process_rule_results(engine, settings)
    alerts = [_json.loads(r["payload"]) for r in recent_alerts(engine, limit=1000)]
    rule_names = {r.name for r in settings.alerts.parsed_rules()}
    raised = [a for a in alerts if a.get("rule") in rule_names]
    lines = alert_lines(raised)
    if raised and settings.alerts.deliver_max_age_hours:
        lines.append(f"({len(raised)} alert(s) recorded; hours older than {settings.alerts.deliver_max_age_hours:g} h "
                     "are not sent to the destinations: `obs-pipelines alerts list` shows them)")
    return lines


def write_demo_settings(path: Path, user_config: dict[str, Any], first_hour: datetime) -> Path:
    """The demo's settings file: the user's settings with the partitions starting at the demo's first hour,
    and the example alert rules (to the log) when the user's settings have none."""
    data = {**user_config, "partitions_start": hour_key(first_hour)}
    if not (user_config.get("alerts") or {}).get("rules"):
        example = example_alerts()
        if example:
            data["alerts"] = {**(user_config.get("alerts") or {}), **example}
    header = ("# Written by `obs-pipelines demo`: your OBS_PIPELINES_CONFIG (if any) with partitions_start set to\n"
              "# the demo's first hour, so the UI shows the demo's hours only, and the example alert rules\n"
              "# (to the log) when yours has none.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def ui_command(config: Path, db_url: sa.URL, dagster_home: str | None, cwd: Path | None = None) -> str:
    """The shell command that opens the Dagster UI on the demo's settings, store and instance (the store's
    password hidden)."""
    cwd = cwd or Path.cwd()
    env = {
        DB_URL_ENV: db_url.render_as_string(hide_password=True),
        CONFIG_ENV: str(config),
        "DAGSTER_HOME": dagster_home,
    }
    if dagster_home == str(cwd):
        env["DAGSTER_HOME"] = "$PWD"  # as the README writes it
    words = [f"{k}={v if v == '$PWD' else shlex.quote(v)}" for k, v in env.items() if v]
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.is_file():
        words.append("dagster")
    else:
        words.append(str(dagster.relative_to(cwd)) if dagster.is_relative_to(cwd) else shlex.quote(str(dagster)))
    words.append("dev -w workspace.yaml" if (cwd / "workspace.yaml").is_file() else "dev -m obs_pipelines.definitions")
    return " ".join(words)


def read_hourly_rollups(engine: sa.Engine, start: datetime, end: datetime) -> HourlyRollups:
    """The monitoring phase's hourly tables over [start, end)."""
    from obs_pipelines.monitoring.tables import HOURLY_TABLES

    return HourlyRollups(**{key: _read_table(engine, table.name, start, end) for key, table in HOURLY_TABLES.items()})


def _read_table(engine: sa.Engine, name: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows of a monitoring table whose window starts in [start, end)."""
    from obs_pipelines.monitoring.tables import monitoring_metadata

    return read_window(engine, monitoring_metadata.tables[name], start, end, time_column="window_start")


def _runs_since(instance, defs, phase: str, since: datetime) -> list[tuple[str, str, str]]:
    """(job, run id, status) of the newest run of each of the phase's jobs created since ``since``."""
    import dagster as dg

    from obs_pipelines.orchestration.local_runs import phase_jobs

    found = []
    for job in phase_jobs(defs, phase):
        runs = instance.get_runs(dg.RunsFilter(job_name=job.name, created_after=since), limit=1)
        if runs:
            found.append((job.name, runs[0].run_id, runs[0].status.value))
    return found


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
