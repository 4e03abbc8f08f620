"""The `obs-pipelines` command as a user types it: summaries, exit codes, the demo, the workspace file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from obs_pipelines.cli import main
from obs_pipelines.store import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def invoke(store, *args: str, cwd: Path | None = None):
    env = {"OBS_PIPELINES_DB_URL": store.db_url, "OBS_PIPELINES_CONFIG": "", "DAGSTER_HOME": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def count(store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_ingest_prints_the_summary_and_exits_zero(store, real_traces_dir):
    result = invoke(store, "ingest", str(real_traces_dir / "framework-traces.otlp.jsonl"))
    assert result.exit_code == 0, result.output
    assert "138" in result.output and "135" in result.output  # read, stored (3 duplicate spans in the file)
    assert count(store, "spans") == 135


def test_ingest_of_a_partly_bad_file_stores_the_good_lines_and_exits_zero(store, real_traces_dir, tmp_path):
    good = (real_traces_dir / "framework-traces.otlp.jsonl").read_text().splitlines()[0]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, '{"resourceSpans": [ truncated', good]) + "\n")
    result = invoke(store, "ingest", str(path))
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and count(store, "ingest_rejects") == 1
    assert count(store, "spans") > 0


def test_ingest_exits_non_zero_when_nothing_could_be_read(store, tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_text("not json\n{also not\n")
    result = invoke(store, "ingest", str(path))
    assert result.exit_code == 1
    assert "nothing could be read" in result.output
    assert count(store, "ingest_rejects") == 2


def test_generate_writes_otlp_json_lines(store, tmp_path):
    out = tmp_path / "gen.jsonl"
    result = invoke(store, "generate", "--start", "2026-05-01T00:00", "--hours", "1", "--rate", "0.02",
                    "--incident", "provider_outage@2026-05-01T00:20+20m", "-o", str(out))
    assert result.exit_code == 0, result.output
    first = json.loads(out.read_text().splitlines()[0])
    assert "resourceSpans" in first


def test_generate_writes_the_same_file_for_any_worker_count(store, tmp_path, monkeypatch):
    from obs_pipelines.synth import generator

    monkeypatch.setattr(generator, "BATCH_TRACES", 50)
    monkeypatch.setattr(generator, "PARALLEL_MIN_TRACES", 0)
    args = ("generate", "--start", "2026-05-01T00:00", "--hours", "1", "--rate", "0.1")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert invoke(store, *args, "--workers", "1", "-o", str(one)).exit_code == 0
    result = invoke(store, *args, "--workers", "2", "-o", str(two))
    assert result.exit_code == 0, result.output
    assert "(by 2 workers)" in " ".join(result.output.split())  # (rich wraps long lines)
    assert two.read_bytes() == one.read_bytes()


def test_run_materializes_a_phase_over_an_hour_range(store, tmp_path):
    out = tmp_path / "gen.jsonl"
    invoke(store, "generate", "--start", "2026-05-01T00:00", "--hours", "3", "--rate", "0.02", "-o", str(out))
    invoke(store, "ingest", str(out))
    result = invoke(store, "run", "monitoring", "--start", "2026-05-01T00:00", "--end", "2026-05-01T02:00")
    assert result.exit_code == 0, result.output
    with store.engine.connect() as conn:
        hours = conn.execute(sa.text("SELECT count(DISTINCT window_start) FROM request_rollup_hourly")).scalar_one()
    assert hours == 3


def test_demo_generates_ingests_and_materializes_every_enabled_phase(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"OBS_PIPELINES_DB_URL": url, "OBS_PIPELINES_CONFIG": "", "DAGSTER_HOME": ""}
    result = CliRunner().invoke(main, ["demo", "--days", "1", "--rate", "0.01"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "monitoring: run" in result.output and "succeeded" in result.output
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM request_rollup_hourly")).scalar_one() > 0
        assert conn.execute(sa.text("SELECT count(*) FROM request_rollup_daily")).scalar_one() > 0


@pytest.mark.skipif(shutil.which("dagster", path=str(Path(sys.executable).parent)) is None,
                    reason="dagster CLI not installed next to this Python")
def test_workspace_file_loads_the_code_location(tmp_path):
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent))
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "OBS_PIPELINES_DB_URL": f"sqlite:///{tmp_path / 'ws.db'}"}
    done = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Its own working directory and Dagster home: nothing lands in the project's .obs_pipelines or
    .dagster_home."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("OBS_PIPELINES_CONFIG", raising=False)
    return tmp_path


def test_run_on_a_fresh_store_creates_the_tables_instead_of_failing(isolated):
    url = f"sqlite:///{isolated / 'fresh.db'}"
    result = CliRunner().invoke(main, ["run", "monitoring", "--start", "2026-05-01T00:00", "--end",
                                       "2026-05-01T01:00"], env={"OBS_PIPELINES_DB_URL": url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "monitoring: run" in result.output and "succeeded" in result.output
    assert {"spans", "request_rollup_hourly"} <= set(sa.inspect(db.make_engine(url)).get_table_names())


def test_a_misspelt_settings_key_stops_a_command_with_one_line_naming_it(isolated):
    config = isolated / "settings.yaml"
    config.write_text("phasess: [monitoring]\n")
    env = {"OBS_PIPELINES_DB_URL": f"sqlite:///{isolated / 'x.db'}", "OBS_PIPELINES_CONFIG": str(config)}
    result = CliRunner().invoke(main, ["run", "monitoring", "--start", "2026-05-01T00:00", "--end",
                                       "2026-05-01T00:00"], env=env)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {config}: unknown key 'phasess' (did you mean 'phases'?)"


def test_generate_help_lists_every_incident_and_the_incident_form():
    from obs_pipelines.synth.incidents import INCIDENT_NAMES

    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    assert "NAME[:TARGET]@START+DURATION" in result.output
    catalog = result.output.split("Incidents:", 1)[1]
    listed = [line.split()[0] for line in catalog.splitlines() if line.startswith("    ")]
    assert listed == list(INCIDENT_NAMES)
