"""`obs-pipelines report dashboard | sla` as a user types it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from obs_pipelines.cli import main
from obs_pipelines_tests.reports.rollup_rows import rollup_rows, write_rollups


def _invoke(store, *args: str):
    return CliRunner().invoke(main, list(args), env={"OBS_PIPELINES_DB_URL": store.db_url}, catch_exceptions=False)


def test_report_sla_writes_the_months_html_json_and_pngs_to_out(store, tmp_path):
    write_rollups(store.engine, rollup_rows(datetime(2026, 6, 29), 72, routes=["pay"], models=["big"]))
    result = _invoke(store, "report", "sla", "--period", "2026-07", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    html = Path(result.output.strip().splitlines()[-1])
    assert html == tmp_path / "sla" / "month" / "2026-07.html" and html.is_file()
    figures = json.loads(html.with_suffix(".json").read_text())
    assert figures["period"]["label"] == "2026-07" and figures["headline"]["hours_with_data"] == 24
    assert figures["previous_period"]["hours_with_data"] == 48
    assert list(tmp_path.glob("sla/month/2026-07-*.png"))
    assert "only 24 of the period's 744 hours" in result.output  # said on stderr too


def test_report_dashboard_ends_after_the_newest_rolled_up_hour(store, tmp_path):
    write_rollups(store.engine, rollup_rows(datetime(2026, 6, 29), 5, routes=["pay"], models=["big"]))
    result = _invoke(store, "report", "dashboard", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "dashboard.json").read_text())
    assert figures["as_of"] == "2026-06-29T05:00:00"


def test_a_bad_period_is_one_line_naming_the_formats(store, tmp_path):
    result = _invoke(store, "report", "sla", "--period", "July", "--out", str(tmp_path))
    assert result.exit_code == 2 and "YYYY-MM-DD (day), YYYY-Www (ISO week) or YYYY-MM (month)" in result.output
