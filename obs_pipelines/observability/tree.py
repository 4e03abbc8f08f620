"""Reading one request: its spans as a tree (parents before children, siblings by start time), as plain
records (``obs-pipelines trace --json``), as a markdown block with timing bars (exemplar traces in the
materialization metadata) and as the rows the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.markdown import escape_markdown

BAR_WIDTH = 24


@dataclass
class Node:
    depth: int
    span: dict


def read_trace(engine: Engine, trace_id: str) -> list[dict]:
    """Every span of the trace as a dict (all contract columns), in start order."""
    query = sa.text("SELECT * FROM spans WHERE trace_id = :t ORDER BY start_time, span_id")
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query, {"t": trace_id.lower()}).mappings()]


def tree(spans: list[dict]) -> list[Node]:
    """Depth-first order: roots (and spans whose parent is missing) first, children by start time."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict]] = {}
    for s in spans:
        parent = s.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(s)
    key = lambda s: (str(s.get("start_time")), s["span_id"])  # noqa: E731
    out: list[Node] = []
    stack = [(0, s) for s in sorted(children.get(None, []), key=key, reverse=True)]
    while stack:
        depth, span = stack.pop()
        out.append(Node(depth, span))
        stack += [(depth + 1, c) for c in sorted(children.get(span["span_id"], []), key=key, reverse=True)]
    return out


def _ts(value) -> datetime | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def duration_ms(span: dict) -> float | None:
    start, end = _ts(span.get("start_time")), _ts(span.get("end_time"))
    return (end - start).total_seconds() * 1000.0 if start and end else None


def bar(span: dict, t0: datetime, total_ms: float, width: int = BAR_WIDTH) -> str:
    """The span's place on the request's timeline, e.g. ``···████······``."""
    start, ms = _ts(span.get("start_time")), duration_ms(span)
    if start is None or ms is None or total_ms <= 0:
        return " " * width
    left = int(round((start - t0).total_seconds() * 1000.0 / total_ms * width))
    length = max(1, int(round(ms / total_ms * width)))
    left = min(max(left, 0), width - 1)
    return ("·" * left + "█" * min(length, width - left)).ljust(width, "·")


def timeline(nodes: list[Node]) -> tuple[datetime | None, float]:
    starts = [_ts(n.span.get("start_time")) for n in nodes]
    ends = [_ts(n.span.get("end_time")) for n in nodes]
    starts, ends = [s for s in starts if s], [e for e in ends if e]
    if not starts or not ends:
        return None, 0.0
    return min(starts), (max(ends) - min(starts)).total_seconds() * 1000.0


def _count(value) -> int:
    """A token count as read from a frame (a float, NaN where the span has none) as a whole number."""
    return 0 if value is None or pd.isna(value) else int(value)


def markdown(spans: list[dict], title: str = "") -> str:
    """The tree as a markdown list: name, kind, duration, status, tokens, the timing bar."""
    nodes = tree(spans)
    t0, total = timeline(nodes)
    lines = [f"**{escape_markdown(title)}**", ""] if title else []
    for node in nodes:
        s = node.span
        ms = duration_ms(s)
        parts = [f"`{bar(s, t0, total) if t0 else ''}`", f"**{escape_markdown(s.get('name') or '?')}**",
                 f"({escape_markdown(s.get('kind') or '?')})", f"{ms:.0f} ms" if ms is not None else "? ms"]
        if s.get("status") == "error":
            parts.append(f"ERROR {escape_markdown(s.get('error_type') or '')}")
        tokens_in, tokens_out = _count(s.get("input_tokens")), _count(s.get("output_tokens"))
        if tokens_in or tokens_out:
            parts.append(f"{tokens_in}→{tokens_out} tok")
        lines.append("  " * node.depth + "- " + " ".join(parts))
    return "\n".join(lines)
