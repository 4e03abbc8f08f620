"""Where reports are written: a local directory or an fsspec URL."""

from __future__ import annotations

import json

import fsspec

from obs_pipelines.reports.output import public_url, write_report
from obs_pipelines.reports.pages import Report


def _report() -> Report:
    return Report("sla/day/2026-04-06", "SLA report 2026-04-06", "<!doctype html><p>page</p>", {"a": 1}, {"x": 1.0})


def test_an_fsspec_url_receives_the_html_and_json():
    # memory:// is fsspec's own in-process filesystem: the same code path as s3:// with s3fs installed
    files = write_report(_report(), "memory://reports-test")
    assert files["html"] == "memory://reports-test/sla/day/2026-04-06.html"
    with fsspec.open(files["html"], "rb") as handle:
        assert handle.read() == b"<!doctype html><p>page</p>"
    with fsspec.open(files["json"], "rt") as handle:
        assert json.load(handle) == {"a": 1}


def test_a_local_directory_gets_the_files_and_no_temporary_left_behind(tmp_path):
    files = write_report(_report(), str(tmp_path))
    assert (tmp_path / "sla" / "day" / "2026-04-06.html").read_text() == "<!doctype html><p>page</p>"
    assert sorted(p.name for p in (tmp_path / "sla" / "day").iterdir()) == ["2026-04-06.html", "2026-04-06.json"]
    assert files["json"].endswith("2026-04-06.json")


def test_the_public_url_joins_the_base_and_the_report_path():
    assert public_url(_report(), "https://h/r/") == "https://h/r/sla/day/2026-04-06.html"
    assert public_url(_report(), None) is None
