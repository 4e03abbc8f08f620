"""`obs-pipelines trace TRACE_ID`: read one request — its span tree with timing bars, status, tokens, cost,
retrieved documents and tool calls (rich), or every span as JSON (``--json``) for machines."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import cast

import click
from rich.console import Console
from rich.text import Text
from rich.tree import Tree
from sqlalchemy import exc as sa_exc

from obs_pipelines.observability.retrieval import PREVIEW_CHARS
from obs_pipelines.observability.tree import bar, duration_ms, read_trace, timeline, tree
from obs_pipelines.settings import SettingsError, load_settings
from obs_pipelines.store import db
from obs_pipelines.terminal import terminal_safe

MAX_DOCUMENTS = 5
TEXT_CHARS = 160


def _attributes(span: dict) -> dict:
    value = span.get("attributes")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _short(text, limit: int = TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return terminal_safe(text)


def _json_default(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _details(span: dict) -> list[str]:
    """Lines under a span: its retrieved documents, its tool call, its error."""
    lines = []
    if span.get("kind") in ("retrieval", "reranker"):
        docs = _attributes(span).get("retrieval.documents") or _attributes(span).get("reranker.output_documents")
        if span.get("kind") == "retrieval" and not isinstance(docs, list):
            docs = []
        if isinstance(docs, list):
            lines.append(f"{len(docs)} document(s)" + ("" if docs else ": nothing retrieved"))
            for rank, doc in enumerate(docs[:MAX_DOCUMENTS], 1):
                if isinstance(doc, dict):
                    content = _short(doc.get("content") or "", PREVIEW_CHARS)
                    lines.append(f"#{rank} {_short(doc.get('id'))} score={_short(doc.get('score'))} {content}")
    if span.get("kind") == "tool":
        if span.get("input"):
            lines.append(f"args: {_short(span['input'])}")
        if span.get("output"):
            lines.append(f"result: {_short(span['output'])}")
    if span.get("status") == "error":
        lines.append(f"error: {_short(span.get('error_type') or '')} {_short(span.get('error_message') or '')}")
    return lines


def _line(span: dict, t0, total: float) -> Text:
    ms = duration_ms(span)
    line = Text()
    if t0:
        line.append(bar(span, t0, total, width=20) + " ", style="cyan")
    kind = terminal_safe(span.get("kind") or "?")  # every string here is the app's: shown, never obeyed
    line.append(terminal_safe(span.get("name") or "?"), style="bold")
    line.append(f" [{kind}] {ms:.0f} ms " if ms is not None else f" [{kind}] ? ms ")
    failed = span.get("status") == "error"
    line.append(terminal_safe(span.get("status") or ""), style="red" if failed else "green")
    if span.get("input_tokens") or span.get("output_tokens"):
        line.append(f"  {span.get('input_tokens') or 0}→{span.get('output_tokens') or 0} tok")
    if span.get("cost_usd") is not None:
        line.append(f"  ${span['cost_usd']:.6f}")
    if span.get("model"):
        line.append(f"  {terminal_safe(span['model'])}", style="magenta")
    return line


def render(spans: list[dict], console: Console) -> None:
    """The span tree: a timing bar on the request's timeline, then name, kind, duration, status, tokens, cost,
    model; retrieved documents, tool arguments / results and errors under their span."""
    nodes = tree(spans)
    t0, total = timeline(nodes)
    root = Tree(Text(f"trace {terminal_safe(spans[0]['trace_id'])}  {total:.0f} ms, {len(spans)} spans", style="bold"))
    branches: dict[str, Tree] = {}
    for node in nodes:
        s = node.span
        # a node below depth 0 hangs under its parent, whose id it holds
        parent = branches.get(cast(str, s.get("parent_span_id"))) if node.depth else None
        branch = (parent or root).add(_line(s, t0, total))
        for detail in _details(s):
            branch.add(Text(detail, style="dim"))
        branches[s["span_id"]] = branch
    console.print(root)


@click.command(name="trace")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Every span of the trace as JSON (tree order, with depth).")
@click.option("--db-url", default=None, help="Trace store URL (default: OBS_PIPELINES_DB_URL / the settings).")
def trace_command(trace_id: str, as_json: bool, db_url: str | None) -> None:
    """Print one request: its span tree with timing bars, status, tokens, cost, documents and tool calls."""
    try:
        url = db_url or load_settings().db_url
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    engine = db.make_engine(url)
    try:
        db.create_tables(engine)
        spans = read_trace(engine, trace_id)
    except sa_exc.OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise click.ClickException(f"cannot reach the trace store at {shown}: "
                                   f"{str(exc.orig or exc).strip().splitlines()[0]}") from None
    if not spans:
        raise click.ClickException(f"no spans for trace {terminal_safe(trace_id)} in the store")
    if as_json:
        records = [{**node.span, "depth": node.depth, "duration_ms": duration_ms(node.span),
                    "attributes": _attributes(node.span)} for node in tree(spans)]
        click.echo(json.dumps({"trace_id": trace_id.lower(), "spans": records}, default=_json_default))
        return
    render(spans, Console(file=sys.stdout))


__all__ = ["trace_command"]
