"""HTML of the reports: one self-contained page each (inline CSS and inline SVG charts; no script, no font,
no image or stylesheet fetched), readable from disk, mail or any static host. App strings (routes, models,
span names, summaries) are escaped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

from obs_pipelines.reports.charts import Rendered

Column = tuple[str, str, Callable[[Any], str]]  # key, header, formatter

CSS = """\
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f24;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.sub{color:#57606a;margin:0 0 16px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px}.kpi span{color:#57606a;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border-bottom:1px solid #eaeef2;padding:3px 10px;text-align:right}
td.l,th.l{text-align:left}td.t{overflow-wrap:anywhere;font-family:monospace;font-size:11px}th{background:#f6f8fa}
.charts{display:flex;flex-wrap:wrap;gap:18px}figure.chart{margin:0}.note{color:#9a6700}.bad{color:#cf222e}.ok{color:#1a7f37}
code{font-size:12px}
"""


def num(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.0f}"


def pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.2f} %"


def ms(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.0f} ms"


def usd(v: Any) -> str:
    return "–" if v is None else f"${float(v):,.2f}"


def score(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3f}"


def text(v: Any) -> str:
    return "–" if v is None else str(v)


def trace_id(v: Any) -> str:
    return "–" if v is None else str(v)


def when(v: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM' (UTC); None: still open."""
    return "ongoing" if v is None else str(v).replace("T", " ")[:16]


def minutes(v: Any) -> str:
    if v is None:
        return "ongoing"
    total = int(round(float(v)))
    return f"{total // 60} h {total % 60:02d} min" if total >= 60 else f"{total} min"


def rate(v: Any) -> str:
    return "–" if v is None else f"{float(v):.2f}×"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], empty: str = "no data") -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    # words left, numbers right; trace ids may break anywhere (32 characters without a space)
    cls = ["t l" if fmt is trace_id else "l" if i == 0 or fmt in (text, when) else ""
           for i, (_, _, fmt) in enumerate(columns)]
    head = "".join(f'<th class="{cls[i]}">{escape(h)}</th>' for i, (_, h, _) in enumerate(columns))
    body = "".join("<tr>" + "".join(f'<td class="{cls[i]}">{escape(fmt(r.get(k)))}</td>'
                                    for i, (k, _, fmt) in enumerate(columns)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kpis(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in items) + "</div>"


def charts(rendered: Iterable[Rendered | None], missing: Iterable[str] = ()) -> str:
    figures = [f'<figure class="chart" data-chart="{escape(r.name)}" data-points="{r.points}">{r.svg}</figure>'
               for r in rendered if r is not None]
    notes = [f'<p class="note">{escape(m)}: no data in this window</p>' for m in missing]
    return '<div class="charts">' + "".join(figures) + "</div>" + "".join(notes)


def page(title: str, subtitle: str, body: str) -> str:
    # a CSP that forbids every fetch: a page that tried to load anything would show it in the console
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>"
            f"{body}</body></html>")


def section(title: str, *parts: str, level: int = 2) -> str:
    return f"<h{level}>{escape(title)}</h{level}>" + "".join(parts)


def notes(lines: Iterable[str]) -> str:
    return "".join(f'<p class="note">{escape(line)}</p>' for line in lines)
