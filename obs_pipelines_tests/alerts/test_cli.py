"""`obs-pipelines alerts evaluate | list`: the rules over a range and the delivery, without the daemon."""

from __future__ import annotations

import gc
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from obs_pipelines.cli_alerts import alerts_group
from obs_pipelines.definitions import build_definitions
from obs_pipelines.orchestration.local_runs import local_instance
from obs_pipelines.settings import load_settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces, parse_incident
from obs_pipelines_tests.alerts.absolute_rules import with_absolute_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
OUTAGE = datetime(2026, 11, 2, 13, 0)


@pytest.fixture
def configured(store, tmp_path, monkeypatch):
    """The outage hour and the one before it, loaded and rolled up; settings = the example's rules."""
    data = with_absolute_rules(yaml.safe_load(EXAMPLE.read_text()))  # they fire without history
    data.update(phases=["monitoring"], partitions_start="2026-11-01-00:00")
    data["alerts"]["deliver_max_age_hours"] = None  # November's hours replayed as if live: every change is sent
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("OBS_PIPELINES_CONFIG", str(path))
    monkeypatch.setenv("OBS_PIPELINES_DB_URL", store.db_url)
    incident = parse_incident(f"provider_outage@{OUTAGE:%Y-%m-%dT%H:%M}+1h")
    gc.disable()
    try:
        rows = [r for t in generate_traces(OUTAGE - timedelta(hours=1), 2, 0.05, 7, [incident]) for r in t]
    finally:
        gc.enable()
    db.insert_spans(store.engine, rows)
    defs = build_definitions(load_settings())
    result = defs.resolve_job_def("monitoring_hourly_job").execute_in_process(
        tags={"dagster/asset_partition_range_start": "2026-11-02-12:00",
              "dagster/asset_partition_range_end": "2026-11-02-13:00"},
        instance=local_instance(), raise_on_error=False)
    assert result.success
    return store


def test_evaluate_fires_and_delivers_the_outage_like_the_sensor(configured, webhook):
    result = CliRunner().invoke(alerts_group, ["evaluate", "--start", "2026-11-02T12:00", "--end", "2026-11-02T13:00"])
    assert result.exit_code == 0, result.output
    assert "[FIRING] provider_error_rate" in result.output and "provider=openai" in result.output
    alerts_sent = [a for r in webhook.received for a in r["body"].get("alerts", [r["body"]])]
    assert {(a["rule"], a["window_start"]) for a in alerts_sent} >= {("provider_error_rate", OUTAGE.isoformat())}
    assert all(a["window_start"] == OUTAGE.isoformat() for a in alerts_sent)
    # the checks are in the local instance: the UI shows them
    checks = local_instance().get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("error_rollup_hourly"), "provider_error_rate"))
    assert checks is not None


def test_evaluating_the_same_hours_again_delivers_nothing_new(configured, webhook):
    args = ["evaluate", "--start", "2026-11-02T12:00", "--end", "2026-11-02T13:00"]
    CliRunner().invoke(alerts_group, args)
    sent = len(webhook.received)
    result = CliRunner().invoke(alerts_group, args)
    assert result.exit_code == 0 and "0 alert change(s)" in result.output
    assert len(webhook.received) == sent


def test_list_shows_the_recent_alerts(configured, webhook):
    CliRunner().invoke(alerts_group, ["evaluate", "--start", "2026-11-02T13:00", "--end", "2026-11-02T13:00"])
    table = CliRunner().invoke(alerts_group, ["list"])
    assert table.exit_code == 0 and "firing" in table.output
    lines = CliRunner().invoke(alerts_group, ["list", "--json"]).output.splitlines()
    alerts = [json.loads(line) for line in lines]
    assert ("provider_error_rate", "firing", {"provider": "openai"}) in [(a["rule"], a["status"], a["group"])
                                                                          for a in alerts]


def test_evaluate_records_hours_older_than_the_setting_and_sends_them_only_with_deliver_history(configured, webhook):
    path = Path(os.environ["OBS_PIPELINES_CONFIG"])
    data = yaml.safe_load(path.read_text())
    data["alerts"]["deliver_max_age_hours"] = 2  # November is weeks older than 2 hours
    path.write_text(yaml.safe_dump(data))
    args = ["evaluate", "--start", "2026-11-02T12:00", "--end", "2026-11-02T13:00"]
    result = CliRunner().invoke(alerts_group, args)
    assert result.exit_code == 0, result.output
    assert "[FIRING] provider_error_rate" in result.output and "recorded, not sent" in result.output
    assert webhook.received == []
    listed = [json.loads(line) for line in CliRunner().invoke(alerts_group, ["list", "--json"]).output.splitlines()]
    assert any(a["rule"] == "provider_error_rate" and a.get("delivery") for a in listed)
    # the same hours again with --deliver-history: their results are applied already (nothing changes), so
    # nothing is sent either; a store evaluated for the first time with the flag sends them (the fixture's
    # setting, deliver_max_age_hours: null, is that case: test_evaluate_fires_and_delivers_the_outage...)
    again = CliRunner().invoke(alerts_group, [*args, "--deliver-history"])
    assert again.exit_code == 0 and webhook.received == []
