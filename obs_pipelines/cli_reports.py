"""`obs-pipelines report dashboard | sla`: write the dashboard page or an SLA report from the store's rollups,
without Dagster (the assets of the `reports` group write the same files)."""

from __future__ import annotations

from datetime import datetime

import click

from obs_pipelines.settings import SettingsError, load_settings


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(settings):
    from obs_pipelines.store import db

    return db.make_engine(settings.db_url)


@click.group("report")
def report_group() -> None:
    """Write the dashboard page or an SLA report (HTML, JSON figures; SLA: PNG charts too)."""


@report_group.command("dashboard")
@click.option("--out", default=None, help="Output directory or fsspec URL (default: reports_dir of the settings).")
@click.option("--end", default=None, help="Hour the dashboard ends at (UTC, exclusive; default: after the newest "
                                          "rolled-up hour).")
def dashboard(out: str | None, end: str | None) -> None:
    """The dashboard: the last 24 h, 7 and 30 days of the rollups and alerts."""
    from obs_pipelines.reports.output import write_report
    from obs_pipelines.reports.pages import build_dashboard

    settings = _settings()
    report = build_dashboard(_engine(settings), datetime.fromisoformat(end) if end else None)
    files = write_report(report, out or settings.reports_dir)
    click.echo(files["html"])


@report_group.command("sla")
@click.option("--period", required=True,
              help="2026-11-02 (a day), 2026-W45 (an ISO week) or 2026-11 (a calendar month).")
@click.option("--out", default=None, help="Output directory or fsspec URL (default: reports_dir of the settings).")
def sla_report(period: str, out: str | None) -> None:
    """The SLA report of one period: SLOs, availability, incidents, trends vs the previous period."""
    from obs_pipelines.reports.output import write_report
    from obs_pipelines.reports.pages import build_sla
    from obs_pipelines.reports.sla import parse_period

    settings = _settings()
    try:
        parsed = parse_period(period)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from None
    report = build_sla(_engine(settings), parsed, [s.model_dump() for s in settings.slos])
    files = write_report(report, out or settings.reports_dir, pngs=True)
    for note in report.figures["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(files["html"])
