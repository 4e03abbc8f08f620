"""The reports in Dagster: the assets write their pages and carry the headline figures as numbers, a markdown
summary with the charts as data-URI images, and the HTML's path (or URL under reports_base_url)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from obs_pipelines.definitions import build_definitions
from obs_pipelines.reports.defs import DASHBOARD, SLA_ASSETS, build_defs
from obs_pipelines.settings import Settings
from obs_pipelines_tests.reports.rollup_rows import rollup_rows, write_rollups

DAY = datetime(2026, 4, 6)  # a Monday


def _settings(store, tmp_path, **extra) -> Settings:
    return Settings(db_url=store.db_url, phases=["monitoring", "reports"], partitions_start="2026-04-01-00:00",
                    reports_dir=str(tmp_path / "out"), **extra)


def _materialize(settings: Settings, store, key: str, partition: str | None = None) -> dict:
    asset = next(a for a in build_defs(settings).assets if a.key.to_user_string() == key)
    result = dg.materialize([asset], partition_key=partition, resources={"trace_store": store},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    [event] = result.get_asset_materialization_events()
    return event.materialization.metadata


def test_the_daily_sla_report_carries_numbers_a_summary_with_charts_and_its_path(store, tmp_path):
    write_rollups(store.engine, rollup_rows(DAY, 24, routes=["pay", "ship"], models=["big"]))
    metadata = _materialize(_settings(store, tmp_path), store, SLA_ASSETS["day"], "2026-04-06")
    assert isinstance(metadata["requests"], (dg.FloatMetadataValue, dg.IntMetadataValue))  # numbers: plotted
    assert metadata["requests"].value > 0
    assert 0 <= metadata["success_rate"].value <= 1
    path = Path(metadata["report"].value)
    assert path == tmp_path / "out" / "sla" / "day" / "2026-04-06.html" and path.is_file()
    summary = metadata["summary"].value
    assert "data:image/png;base64," in summary and "SLA report 2026" in summary
    # 24 judged hours at the rows' 95 % target allow 1.2 bad hours: the budget is a figure
    assert 0 <= metadata["attainment_avail"].value <= 1 and "budget_left_avail" in metadata


def test_with_a_base_url_the_dashboard_links_its_url(store, tmp_path):
    write_rollups(store.engine, rollup_rows(DAY, 30, routes=["pay"], models=["big"]))
    settings = _settings(store, tmp_path, reports_base_url="https://reports.example.com/llm/")
    metadata = _materialize(settings, store, DASHBOARD)
    assert metadata["report"] == dg.MetadataValue.url("https://reports.example.com/llm/dashboard.html")
    assert (tmp_path / "out" / "dashboard.html").is_file()
    assert metadata["requests_24h"].value > 0 and metadata["charts"].value >= 5


def test_a_weekly_partition_is_the_iso_week_and_a_month_its_calendar_month(tmp_path):
    defs = build_defs(Settings(partitions_start="2026-04-01-00:00", reports_dir=str(tmp_path)))
    weekly = next(a for a in defs.assets if a.key.to_user_string() == SLA_ASSETS["week"])
    monthly = next(a for a in defs.assets if a.key.to_user_string() == SLA_ASSETS["month"])
    # the week holding 1 April 2026 starts on Monday 30 March; its partitions are Monday to Monday
    assert weekly.partitions_def.get_first_partition_key() == "2026-03-30"
    window = weekly.partitions_def.time_window_for_partition_key("2026-04-06")
    assert (window.start.weekday(), (window.end - window.start).days) == (0, 7)
    assert monthly.partitions_def.get_first_partition_key() == "2026-04-01"


def test_reports_are_left_out_without_the_monitoring_phase():
    defs = build_definitions(Settings(phases=["reports"]))
    assert not any("reports" in k.to_user_string() for k in defs.resolve_all_asset_keys())


@pytest.mark.parametrize("phases", [["monitoring", "reports"], ["monitoring"]])
def test_the_reports_phase_switches_its_group_on_and_off(phases):
    keys = {k.to_user_string() for k in build_definitions(Settings(phases=phases)).resolve_all_asset_keys()}
    assert (DASHBOARD in keys) == ("reports" in phases)
