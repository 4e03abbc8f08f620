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
from obs_pipelines_tests.real_trace_counts import real_counts

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def invoke(store, *args: str, cwd: Path | None = None):
    env = {"OBS_PIPELINES_DB_URL": store.db_url, "OBS_PIPELINES_CONFIG": "", "DAGSTER_HOME": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def count(store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


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


def test_ingest_prints_the_summary_and_exits_zero(store, real_traces_dir):
    result = invoke(store, "ingest", str(real_traces_dir / "framework-traces.otlp.jsonl"))
    assert result.exit_code == 0, result.output
    real = real_counts()
    assert str(real.read) in result.output and str(real.stored) in result.output  # read, stored
    assert count(store, "spans") == real.stored


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
    from obs_pipelines.synth import writer

    monkeypatch.setattr(writer, "BATCH_TRACES", 50)
    monkeypatch.setattr(writer, "PARALLEL_MIN_TRACES", 0)
    args = ("generate", "--start", "2026-05-01T00:00", "--hours", "1", "--rate", "0.1")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert invoke(store, *args, "--workers", "1", "-o", str(one)).exit_code == 0
    result = invoke(store, *args, "--workers", "2", "-o", str(two))
    assert result.exit_code == 0, result.output
    assert "(by 2 workers)" in " ".join(result.output.split())  # (rich wraps long lines)
    assert two.read_bytes() == one.read_bytes()


def test_run_materializes_a_phase_over_an_hour_range(store, tmp_path, isolated):
    out = tmp_path / "gen.jsonl"
    invoke(store, "generate", "--start", "2026-05-01T00:00", "--hours", "3", "--rate", "0.02", "-o", str(out))
    invoke(store, "ingest", str(out))
    result = invoke(store, "run", "monitoring", "--start", "2026-05-01T00:00", "--end", "2026-05-01T02:00")
    assert result.exit_code == 0, result.output
    with store.engine.connect() as conn:
        hours = conn.execute(sa.text("SELECT count(DISTINCT window_start) FROM request_rollup_hourly")).scalar_one()
    assert hours == 3


def test_demo_materializes_every_phase_and_tells_each_incident_the_run_ids_and_the_ui_command(isolated):
    import dagster as dg
    import yaml

    from obs_pipelines.settings import load_settings

    user_config = isolated / "mine.yaml"
    user_config.write_text("top_n_users: 7\npartitions_start: '2026-01-01-00:00'\n")
    url = f"sqlite:///{isolated / 'demo.db'}"
    result = CliRunner().invoke(main, ["demo", "--days", "1", "--rate", "0.01"], catch_exceptions=False,
                                env={"OBS_PIPELINES_DB_URL": url, "OBS_PIPELINES_CONFIG": str(user_config)})
    assert result.exit_code == 0, result.output
    out = result.output
    # its own settings: the user's, with the partitions starting at the demo's first hour (a midnight)
    written = yaml.safe_load((isolated / ".obs_pipelines" / "demo" / "settings.yaml").read_text())
    assert written["top_n_users"] == 7
    # the example alert rules, to the log (the user's file has none), and what they raised
    assert written["alerts"]["destinations"] == {"log": {"type": "log"}} and written["alerts"]["rules"]
    assert "5. alerts" in result.output
    first_hour = written["partitions_start"]
    assert first_hour.endswith("-00:00") and first_hour != "2026-01-01-00:00"
    with db.make_engine(url).connect() as conn:
        first_rollup = conn.execute(sa.text("SELECT min(window_start) FROM request_rollup_hourly")).scalar_one()
        assert conn.execute(sa.text("SELECT count(*) FROM request_rollup_daily")).scalar_one() > 0
    assert str(first_rollup).startswith(first_hour[:10])
    assert "monitoring: run" in out and "succeeded" in out
    assert load_settings(isolated / ".obs_pipelines" / "demo" / "settings.yaml").partitions_start == first_hour
    # the figure of each incident of the first day against the baseline
    for line in ("latency_spike retrieval ", "provider_outage openai ", "rate_limit_storm openai "):
        assert line in out
    assert "error rate of openai calls" in out and "retrieval step p95" in out and "rate_limit errors/h" in out
    # the run id of every job, as recorded in the instance the UI will open
    runs = dg.DagsterInstance.get().get_runs()
    assert {"monitoring_hourly_job", "monitoring_daily_job"} <= {r.job_name for r in runs}
    for r in runs:
        assert f"{r.job_name}" in out and r.run_id in out
    command = " ".join(out.split("Open the Dagster UI on this store and instance:", 1)[1].split())
    assert f"OBS_PIPELINES_DB_URL={url}" in command
    assert "OBS_PIPELINES_CONFIG=.obs_pipelines/demo/settings.yaml" in command
    assert f"DAGSTER_HOME={isolated / 'dagster_home'}" in command and " dev -" in command


def test_ui_command_hides_the_store_password_and_names_the_demo_settings(tmp_path):
    from obs_pipelines.demo import ui_command

    (tmp_path / "workspace.yaml").write_text("")
    url = sa.make_url("postgresql+psycopg2://obs:s3cret@db.internal:5432/traces")
    command = ui_command(Path(".obs_pipelines/demo/settings.yaml"), url, str(tmp_path), cwd=tmp_path)
    assert "s3cret" not in command
    assert command.startswith("OBS_PIPELINES_DB_URL='postgresql+psycopg2://obs:***@db.internal:5432/traces' "
                              "OBS_PIPELINES_CONFIG=.obs_pipelines/demo/settings.yaml DAGSTER_HOME=$PWD ")
    assert command.endswith(" dev -w workspace.yaml")


@pytest.mark.skipif(shutil.which("dagster", path=str(Path(sys.executable).parent)) is None,
                    reason="dagster CLI not installed next to this Python")
def test_workspace_file_loads_the_code_location(tmp_path):
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent))
    # the project's workspace.yaml, read from the project root; the instance in the test's own home (without
    # DAGSTER_HOME the CLI would open ./dagster.yaml's storage, the user's .dagster_home)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path),
           "OBS_PIPELINES_DB_URL": f"sqlite:///{tmp_path / 'ws.db'}"}
    done = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


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


def test_run_with_bad_settings_in_a_fresh_process_prints_one_line_and_no_traceback(isolated):
    # a fresh interpreter: importing the definitions (which load the settings) is not cached as in-process
    config = isolated / "settings.yaml"
    config.write_text("phasess: [monitoring]\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(isolated), "DAGSTER_HOME": str(isolated / "dagster_home"),
           "OBS_PIPELINES_DB_URL": f"sqlite:///{isolated / 'x.db'}", "OBS_PIPELINES_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "obs_pipelines.cli", "run", "monitoring", "--start",
                           "2026-05-01T00:00", "--end", "2026-05-01T00:00"], cwd=isolated, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"Error: {config}: unknown key 'phasess' (did you mean 'phases'?)"


def test_generate_help_lists_every_incident_and_the_incident_form():
    from obs_pipelines.synth.incidents import INCIDENT_NAMES

    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    assert "NAME[:TARGET]@START+DURATION" in result.output
    catalog = result.output.split("Incidents:", 1)[1]
    listed = [line.split()[0] for line in catalog.splitlines() if line.startswith("    ")]
    assert listed == list(INCIDENT_NAMES)


def test_an_unreachable_store_is_one_clear_line_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("OBS_PIPELINES_DB_URL", "postgresql+psycopg2://root:pw@127.0.0.1:9/nowhere")
    path = tmp_path / "t.jsonl"
    path.write_text("{}\n")
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 1
    assert "cannot reach the trace store at postgresql+psycopg2://root:***@127.0.0.1:9/nowhere" in result.output
    assert "Traceback" not in result.output and "pw@" not in result.output
