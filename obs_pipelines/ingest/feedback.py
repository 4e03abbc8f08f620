"""Human feedback files (thumbs, ratings, corrections) into the `feedback` table, with rejects like ingest.

A file is CSV (header row) or JSON lines, one judgement per row:

    trace_id (required, 32 hex)   span_id (16 hex, optional)   name (required, e.g. thumbs, rating)
    value (a number, or up/down, yes/no, true/false, good/bad)   comment   source   created_at (ISO 8601)

A row that cannot be read goes to `ingest_rejects` with its line number, the reason and the row as read.
Importing the same file again adds nothing: a row already stored with the same trace, span, name, value,
comment and source is skipped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db
from obs_pipelines.store.schema import feedback, ingest_rejects

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_WORDS = {"up": 1.0, "down": 0.0, "yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "good": 1.0, "bad": 0.0,
          "positive": 1.0, "negative": 0.0, "thumbs_up": 1.0, "thumbs_down": 0.0}
MAX_REJECT_PAYLOAD = 64 * 1024


@dataclass(frozen=True)
class FeedbackSummary:
    read: int
    stored: int
    duplicate: int
    rejected: int


def _text(row: dict, key: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _value(raw: Any) -> float | None:
    """A number, or a thumbs / yes-no word; None when the row carries no value (a comment only)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (int, float)):
        value = float(raw)
    else:
        word = str(raw).strip().lower()
        if word in _WORDS:
            return _WORDS[word]
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"value {raw!r} is neither a number nor a thumbs word ({', '.join(sorted(_WORDS))})")
    if not math.isfinite(value):
        raise ValueError(f"value {raw!r} is not a finite number")
    return value


def parse_row(row: dict, default_source: str, now: datetime) -> dict:
    """One feedback record from a row (dict of strings or JSON values); raises ValueError with the reason."""
    if not isinstance(row, dict):
        raise ValueError("a row must be an object with trace_id, name and value")
    trace_id = (_text(row, "trace_id") or "").lower()
    if not _HEX32.match(trace_id):
        raise ValueError(f"trace_id {row.get('trace_id')!r} is not 32 hex characters")
    span_id = _text(row, "span_id")
    if span_id is not None:
        span_id = span_id.lower()
        if not _HEX16.match(span_id):
            raise ValueError(f"span_id {row.get('span_id')!r} is not 16 hex characters")
    name = _text(row, "name")
    if name is None:
        raise ValueError("name is missing (e.g. thumbs, rating, correction)")
    created = _text(row, "created_at")
    try:
        created_at = db.to_naive_utc(datetime.fromisoformat(created.replace("Z", "+00:00"))) if created else now
    except ValueError:
        raise ValueError(f"created_at {created!r} is not an ISO 8601 time")
    return {"trace_id": trace_id, "span_id": span_id, "name": name, "value": _value(row.get("value")),
            "comment": _text(row, "comment"), "source": _text(row, "source") or default_source,
            "created_at": created_at}


def read_rows(path: Path) -> list[tuple[int, dict | str]]:
    """(line number, row) of a CSV or JSONL file; a JSON line that does not parse is kept as its text."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        return [(i + 2, {k.strip(): v for k, v in row.items() if k}) for i, row in enumerate(reader)]
    rows: list[tuple[int, dict | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError:
            rows.append((number, line))
    return rows


def _key(record: dict) -> tuple:
    return (record["trace_id"], record["span_id"], record["name"], record["value"], record["comment"],
            record["source"])


def import_feedback(engine: Engine, path: str | Path, source: str | None = None) -> FeedbackSummary:
    """Validate and store every row of the file; returns what was read, stored, skipped and rejected."""
    path = Path(path)
    now = db.utcnow()
    records, rejects = [], []
    rows = read_rows(path)
    for number, row in rows:
        try:
            if isinstance(row, str):
                raise ValueError("not a JSON object")
            records.append(parse_row(row, source or path.name, now))
        except ValueError as exc:
            payload = row if isinstance(row, str) else json.dumps(row, default=str)
            rejects.append({"source": str(path), "location": f"line {number}", "reason": f"feedback: {exc}",
                            "payload": payload[:MAX_REJECT_PAYLOAD], "rejected_at": now})
    db.create_tables(engine)
    with engine.begin() as conn:
        traces = sorted({r["trace_id"] for r in records})
        existing: set[tuple] = set()
        for i in range(0, len(traces), 500):  # bounded IN lists: no input size breaks the query
            query = sa.select(feedback.c.trace_id, feedback.c.span_id, feedback.c.name, feedback.c.value,
                              feedback.c.comment, feedback.c.source).where(feedback.c.trace_id.in_(traces[i:i + 500]))
            existing.update(tuple(row) for row in conn.execute(query))
        fresh, seen = [], set(existing)
        for record in records:
            if _key(record) not in seen:
                seen.add(_key(record))
                fresh.append(record)
        if fresh:
            conn.execute(sa.insert(feedback), fresh)
        if rejects:
            conn.execute(sa.insert(ingest_rejects), rejects)
    return FeedbackSummary(read=len(rows), stored=len(fresh), duplicate=len(records) - len(fresh),
                           rejected=len(rejects))
