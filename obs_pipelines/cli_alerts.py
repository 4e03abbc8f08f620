"""`obs-pipelines alerts ...`: evaluate the rules over a time range and deliver exactly as the sensors do (for a
user without the daemon, and for tests), and list recent alerts. Dagster is imported inside the commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click
from rich.console import Console
from rich.table import Table

from obs_pipelines.hours import hour_key
from obs_pipelines.store import db

console = Console()


def _hour(value: str) -> datetime:
    t = db.to_naive_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return t.replace(minute=0, second=0, microsecond=0)


def _settings():
    from obs_pipelines.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("alerts")
def alerts_group() -> None:
    """Alert rules: evaluate them over hours, list the alerts (docs/alerts.md)."""


@alerts_group.command()
@click.option("--start", required=True, help="First hour, UTC ISO 8601 (e.g. 2026-11-02T13:00).")
@click.option("--end", required=True, help="Last hour, inclusive.")
@click.option("--deliver-history", is_flag=True,
              help="Also notify about hours older than alerts.deliver_max_age_hours (by default they are "
                   "recorded, listed by `alerts list`, but not sent).")
def evaluate(start: str, end: str, deliver_history: bool) -> None:
    """Run the rules' checks over the hours START..END (recorded in the local Dagster instance, so the UI shows
    them), then turn their failures and recoveries into alerts and deliver them, as alerts_sensor does: changes
    of hours older than alerts.deliver_max_age_hours are recorded without a notification unless
    --deliver-history."""
    from obs_pipelines.alerts.defs import RULES_JOB, process_rule_results
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.orchestration.local_runs import local_instance
    from obs_pipelines.orchestration.partitions import range_tags

    settings = _settings()
    if not settings.alerts.rules:
        raise click.ClickException("no alert rules in the settings (alerts.rules)")
    first, last = _hour(start), _hour(end)
    if last < first:
        raise click.ClickException("--end is before --start")
    defs, instance = build_definitions(settings), local_instance()
    if not any(job.name == RULES_JOB for job in defs.jobs or []):
        raise click.ClickException("no rule reads a table of an enabled phase")
    result = defs.resolve_job_def(RULES_JOB).execute_in_process(
        tags=range_tags(hour_key(first), hour_key(last)), instance=instance,
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    if not result.success:
        raise click.ClickException(f"the rules run {result.run_id} failed; see it in the UI")
    engine = db.make_engine(settings.db_url)
    # the checks queued their results in the store: apply every queued result (these hours' and any other
    # run's not yet applied), exactly as an alerts_sensor tick does
    transitions, report, _ = process_rule_results(engine, settings, deliver_history=deliver_history)
    failed = sum(not e.passed for e in result.get_asset_check_evaluations() if e.partition)
    hours = int((last - first) / timedelta(hours=1)) + 1
    console.print(f"{hours} hour(s) checked by {len(settings.alerts.rules)} rule(s): {failed} failing check(s), "
                  f"{len(transitions)} alert change(s), {len(report.delivered)} notification(s) delivered, "
                  f"{len(report.failed)} failed (retried on the next evaluate or sensor tick)")
    for t in transitions:
        console.print(t.alert["summary"], highlight=False, soft_wrap=True)
    if settings.alerts.deliver_max_age_hours and not deliver_history:
        console.print(f"(changes of hours older than {settings.alerts.deliver_max_age_hours:g} h are recorded, not "
                      "sent: --deliver-history sends them)", highlight=False)


@alerts_group.command("list")
@click.option("--limit", default=20, show_default=True, help="How many alerts, newest first.")
@click.option("--json", "as_json", is_flag=True, help="The alert payloads as JSON lines.")
def list_alerts(limit: int, as_json: bool) -> None:
    """Recent alerts with their status, window, group and summary."""
    from obs_pipelines.alerts.outbox import recent_alerts

    rows = recent_alerts(db.make_engine(_settings().db_url), limit)
    if as_json:
        for row in rows:
            click.echo(row["payload"])
        return
    table = Table("id", "status", "severity", "window (UTC)", "group", "summary")
    for row in rows:
        alert = json.loads(row["payload"])
        group = ", ".join(f"{k}={v}" for k, v in alert.get("group", {}).items()) or "overall"
        table.add_row(row["id"], alert["status"], row["severity"], f"{row['window_start']:%Y-%m-%d %H:00}"
                      if isinstance(row["window_start"], datetime) else str(row["window_start"])[:16], group,
                      alert["summary"])
    console.print(table)
