"""`obs-pipelines`: ingest OTLP files, generate realistic traces, run phases, and a one-command demo."""

from __future__ import annotations

import sys
from datetime import datetime

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from obs_pipelines.cli_alerts import alerts_group
from obs_pipelines.cli_db import db_group
from obs_pipelines.cli_offline import dataset_group, eval_group
from obs_pipelines.cli_reports import report_group
from obs_pipelines.cli_trace import trace_command
from obs_pipelines.settings import Settings, SettingsError, load_settings
from obs_pipelines.store import db
from obs_pipelines.synth.incidents import INCIDENT_DESCRIPTIONS

console = Console()


def _parse_time(value: str) -> datetime:
    return db.to_naive_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def _settings() -> Settings:
    """The settings, or one line naming the bad key of the settings file (no traceback)."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _engine():
    settings = _settings()
    engine = db.make_engine(settings.db_url)
    try:
        db.create_tables(engine)
    except sa.exc.OperationalError as exc:  # the store is down or the URL is wrong: say so in one line
        shown = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        console.print(f"[red]cannot reach the trace store at {shown}: {reason}[/red]", highlight=False, soft_wrap=True)
        sys.exit(1)
    return settings, engine


def _incident_help() -> str:
    """The incident catalog for `generate --help` (`\\b`: click keeps these lines as they are)."""
    width = max(map(len, INCIDENT_DESCRIPTIONS))
    return "\n".join([
        "\b",
        "Incidents: --incident NAME[:TARGET]@START+DURATION (repeatable).",
        "START is ISO 8601, UTC unless it has an offset; DURATION is <number><s|m|h|d>",
        "parts (30m, 2h, 1h30m); without TARGET an incident hits its default target.",
        "Example: --incident provider_outage:anthropic@2026-11-01T15:00+1h",
        "",
        "\b",
        *(f"  {name:<{width}}  {text}" for name, text in INCIDENT_DESCRIPTIONS.items()),
    ])


@click.group()
def main() -> None:
    """LLM monitoring, observability and evaluation on Dagster."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--batch-size", default=5000, show_default=True, help="Spans per database write.")
def ingest(paths: tuple[str, ...], batch_size: int) -> None:
    """Ingest OTLP/JSON (.jsonl/.json, gzip) or OTLP protobuf files, globs or directories."""
    from obs_pipelines.ingest.runner import IngestDatabaseError, ingest_paths

    settings, engine = _engine()
    try:
        summary = ingest_paths(engine, list(paths), batch_size=batch_size, limits=settings.ingest_limits)
    except IngestDatabaseError as exc:  # the store stayed down through the retries: one line, no traceback
        console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        sys.exit(1)
    table = Table(title=f"ingest into {engine.url.render_as_string(hide_password=True)}")
    for col in ("files", "read", "stored", "duplicate", "rejected"):
        table.add_column(col, justify="right")
    table.add_row(*(str(getattr(summary, c)) for c in ("files", "read", "stored", "duplicate", "rejected")))
    console.print(table)
    if summary.rejected:
        console.print(f"[yellow]{summary.rejected} records rejected: see table ingest_rejects[/yellow]")
    if summary.read - summary.rejected <= 0:
        console.print("[red]nothing could be read[/red]")
        sys.exit(1)


@main.command(epilog=_incident_help())
@click.option("--start", required=True, help="UTC start, ISO 8601 (e.g. 2026-11-01T00:00).")
@click.option("--hours", type=float, required=True)
@click.option("--rate", type=float, default=1.0, show_default=True, help="Mean traces per second.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--incident",
    "incidents",
    multiple=True,
    metavar="INCIDENT",
    help="NAME[:TARGET]@START+DURATION, e.g. latency_spike@2026-11-01T10:00+2h (repeatable; names below).",
)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that build the traces (default: the CPU count; 1 = in-process). Same output for any count.",
)
def generate(
    start: str, hours: float, rate: float, seed: int, incidents: tuple[str, ...], output: str, workers: int | None
) -> None:
    """Write realistic OTLP/JSON traces of an LLM app, with injected incidents."""
    from obs_pipelines.synth.generator import parse_incident, write_otlp_jsonl

    try:
        parsed = [parse_incident(text) for text in incidents]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--incident") from exc
    summary = write_otlp_jsonl(
        output, start=_parse_time(start), hours=hours, rate=rate, seed=seed, incidents=parsed, workers=workers
    )
    how = "in-process" if summary.workers == 1 else f"by {summary.workers} workers"
    console.print(f"wrote {summary.traces} traces, {summary.spans} spans ({how}) to {summary.path}")


@main.command()
@click.argument("phase")
@click.option("--start", required=True, help="First hour (UTC, ISO 8601).")
@click.option("--end", required=True, help="Last hour (UTC, ISO 8601), inclusive.")
def run(phase: str, start: str, end: str) -> None:
    """Materialize a phase's assets over a range of hourly partitions, in process (one run)."""
    # settings first: importing the definitions loads them too, and would print a traceback for a bad key
    settings, _ = _engine()  # a fresh store gets its tables (empty hours roll up to empty rollups)
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.orchestration.local_runs import PoolBusy, materialize_phase

    defs = build_definitions(settings)
    try:
        result = materialize_phase(phase, _parse_time(start), _parse_time(end), defs=defs)
    except PoolBusy as exc:  # a run that cannot get its pool slot says so and exits, never waits without end
        console.print(f"[red]{phase}: {exc}[/red]", highlight=False, soft_wrap=True)
        sys.exit(2)
    console.print(f"{phase}: run {result.run_id} {'succeeded' if result.success else 'FAILED'}")
    sys.exit(0 if result.success else 1)


@main.command()
@click.option("--days", type=float, default=2.0, show_default=True)
@click.option("--rate", type=float, default=0.2, show_default=True, help="Mean traces per second.")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(days: float, rate: float, seed: int) -> None:
    """Generate a few days of traces with incidents, ingest them, materialize every enabled phase."""
    from obs_pipelines.demo import run_demo

    try:
        ok = run_demo(days=days, rate=rate, seed=seed, console=console)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(0 if ok else 1)


@main.group("feedback")
def feedback_group() -> None:
    """Human feedback (thumbs, ratings, corrections) on production traces."""


@feedback_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", default=None, help="Source recorded on rows without one (default: the file name).")
def feedback_import(path: str, source: str | None) -> None:
    """Import a CSV (header row) or JSONL file: trace_id, span_id, name, value, comment, source, created_at."""
    from obs_pipelines.ingest.feedback import import_feedback

    _, engine = _engine()
    summary = import_feedback(engine, path, source)
    console.print(f"feedback {path}: read {summary.read}, stored {summary.stored}, duplicate {summary.duplicate}, "
                  f"rejected {summary.rejected}", highlight=False, soft_wrap=True)
    if summary.rejected:
        console.print(f"[yellow]{summary.rejected} rows rejected: see table ingest_rejects[/yellow]")
    sys.exit(1 if summary.read and summary.rejected == summary.read else 0)


main.add_command(db_group)  # obs-pipelines db upgrade | current | revision
main.add_command(trace_command)  # obs-pipelines trace TRACE_ID: one request as a span tree
main.add_command(alerts_group)  # obs-pipelines alerts evaluate | list
main.add_command(dataset_group)  # obs-pipelines dataset list | export | pin | import
main.add_command(eval_group)  # obs-pipelines eval run | list | compare | gate
main.add_command(report_group)  # obs-pipelines report dashboard | sla


if __name__ == "__main__":
    main()
