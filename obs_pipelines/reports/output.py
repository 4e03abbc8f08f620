"""Where reports go: ``<name>.html`` and ``<name>.json`` (+ ``<name>-<chart>.png`` for SLA reports) under the
output directory, a local path or an fsspec URL (``s3://bucket/reports``, where its fsspec package is
installed). Each file is written whole and then moved into place where the filesystem allows it, so a static
host never serves half a page."""

from __future__ import annotations

import posixpath
from pathlib import Path

import fsspec

from obs_pipelines.reports.pages import Report, figures_json


def _is_url(out_dir: str) -> bool:
    return "://" in out_dir


def _write(path: str, data: bytes) -> None:
    if _is_url(path):
        with fsspec.open(path, "wb") as handle:  # object stores publish an object only once it is complete
            handle.write(data)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def write_report(report: Report, out_dir: str, *, pngs: bool = False) -> dict[str, str]:
    """Write the report's files; returns their locations by kind (html, json, png:<chart>)."""
    join = posixpath.join if _is_url(out_dir) else (lambda *p: str(Path(*p)))
    base = join(out_dir, report.name)
    files = {"html": f"{base}.html", "json": f"{base}.json"}
    _write(files["json"], figures_json(report).encode())
    if pngs:
        for chart in report.charts:
            files[f"png:{chart.name}"] = f"{base}-{chart.name}.png"
            _write(files[f"png:{chart.name}"], chart.png(scale=2))
    _write(files["html"], report.html.encode())
    return files


def public_url(report: Report, base_url: str | None) -> str | None:
    """The HTML's URL under ``reports_base_url`` (None when it is not set)."""
    return f"{base_url.rstrip('/')}/{report.name}.html" if base_url else None
