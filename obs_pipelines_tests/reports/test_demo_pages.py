"""Over the demo's traffic and incidents (generated, rolled up by monitoring, judged by the example rules and
applied as the alerts sensor does): the month's SLA report lists each incident once with its duration, and the
dashboard and the report open in a real headless Chromium offline, without console errors or failed requests,
every chart drawing data marks. One SQLite store for the module: building it is the expensive part."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from obs_pipelines.reports import sla
from obs_pipelines.reports.output import write_report
from obs_pipelines.reports.pages import build_dashboard, build_sla
from obs_pipelines.store import db
from obs_pipelines_tests.reports import browser
from obs_pipelines_tests.reports.demo_store import START, build_demo_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'traces.db'}"
    settings = build_demo_store(url)
    engine = db.make_engine(url)
    out = tmp_path_factory.mktemp("reports")
    month = build_sla(engine, sla.period_of("month", START), [s.model_dump() for s in settings.slos])
    dashboard = build_dashboard(engine)
    files = {"month": write_report(month, str(out), pngs=True), "dashboard": write_report(dashboard, str(out))}
    return engine, month, dashboard, files


def test_the_months_report_lists_each_demo_incident_once_with_its_duration(demo):
    engine, month, _, _ = demo
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT id, rule, status FROM alerts")).fetchall()
    listed = [i["id"] for i in month.figures["incidents"]]
    assert len(stored) >= 5  # the demo's outage, rate-limit storm, latency spike ... each fired a rule
    assert sorted(listed) == sorted(r.id for r in stored) and len(set(listed)) == len(listed)
    resolved = [i for i in month.figures["incidents"] if i["status"] == "resolved"]
    assert len(resolved) >= 5
    for incident in resolved:  # a breach of whole hours, resolved some good hours later
        assert incident["duration_minutes"] >= 60 and incident["duration_minutes"] % 60 == 0
        assert incident["time_to_resolve_minutes"] > incident["duration_minutes"]
    for incident in month.figures["incidents"]:
        if incident["status"] == "firing":  # still open at the demo's last hour: no time to resolve yet
            assert incident["time_to_resolve_minutes"] is None
        assert incident["rule"] in month.html
    assert month.html.count("<tr>") >= len(listed)


def test_the_demo_outage_lasts_its_injected_hour(demo):
    # demo_incidents: provider_outage at hour 15 for 1 h -> provider_error_rate fires for openai 15:00-16:00
    _, month, _, _ = demo
    [outage] = [i for i in month.figures["incidents"]
                if i["rule"] == "provider_error_rate" and i["start"].endswith("T15:00:00")]
    assert outage["group"] == {"provider": "openai"} and outage["duration_minutes"] == 60


@pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
@pytest.mark.parametrize("page", ["dashboard", "month"])
def test_the_page_opens_offline_without_errors_and_every_chart_draws_data(demo, page):
    _, month, dashboard, files = demo
    report = {"dashboard": dashboard, "month": month}[page]
    opened = browser.open_page(Path(files[page]["html"]))
    assert opened.console_errors == [] and opened.failed_requests == [] and opened.outside_requests == []
    assert [c["name"] for c in opened.charts] == [c.name for c in report.charts]
    assert len(opened.charts) >= 5
    for chart in opened.charts:
        assert chart["points"] > 0 and chart["drawn"] > 0 and chart["width"] > 100, chart


def test_the_sla_report_writes_a_png_of_each_chart_and_its_figures(demo):
    _, month, _, files = demo
    pngs = [v for k, v in files["month"].items() if k.startswith("png:")]
    assert len(pngs) == len(month.charts)
    assert all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert Path(files["month"]["json"]).read_text().startswith("{")


@pytest.mark.skipif(browser.CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_the_browser_check_sees_a_console_error_and_a_request_leaving_the_page(tmp_path):
    # the checker itself: a page that logs an error and fetches from the network must be caught
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>'
                    '<figure class="chart" data-chart="empty" data-points="0"><svg></svg></figure></body></html>')
    opened = browser.open_page(page)
    assert any("boom" in e for e in opened.console_errors)
    assert opened.outside_requests == ["http://127.0.0.1:9/x.png"] and opened.failed_requests
    assert opened.charts == [{"name": "empty", "points": 0, "marks": 0, "drawn": 0, "width": opened.charts[0]["width"]}]
