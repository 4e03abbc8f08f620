"""Human feedback files (thumbs, ratings, corrections) into the `feedback` table, with rejects like ingest.

A file is CSV (header row) or JSON lines, one judgement per row:

    trace_id (required, 32 hex)   span_id (16 hex, optional)   name (required, e.g. thumbs, rating)
    value (a number, or up/down, yes/no, true/false, good/bad)   comment   source   created_at (ISO 8601)

A row that cannot be read goes to `ingest_rejects` with its line number, the reason and the row as read: a
row longer than 1 MiB, a NUL, bytes invalid in the file's encoding (a UTF-8 BOM, UTF-16 and Windows-1252 /
latin-1 files are read as such: `textrows`), a bad id, value or time. The file is streamed in batches, so
memory does not grow with its size. Importing the same file again adds nothing: a row already stored with the
same trace, span, name, value, comment and source is skipped, and a reject already stored for the same line
and reason is not stored twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.ingest.landing import path_text
from obs_pipelines.ingest.textrows import DEFAULT_MAX_ROW_BYTES, Row, csv_rows, jsonl_rows
from obs_pipelines.store import db
from obs_pipelines.store.schema import feedback, ingest_rejects

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_WORDS = {"up": 1.0, "down": 0.0, "yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "good": 1.0, "bad": 0.0,
          "positive": 1.0, "negative": 0.0, "thumbs_up": 1.0, "thumbs_down": 0.0}
MAX_REJECT_PAYLOAD = 64 * 1024  # characters of a rejected row kept in ingest_rejects.payload
BATCH_ROWS = 5000  # rows validated, deduplicated and written per transaction


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
            raise ValueError(f"value {raw!r} is neither a number nor a thumbs word ({', '.join(sorted(_WORDS))})") \
                from None
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
        raise ValueError(f"created_at {created!r} is not an ISO 8601 time") from None
    return {"trace_id": trace_id, "span_id": span_id, "name": name, "value": _value(row.get("value")),
            "comment": _text(row, "comment"), "source": _text(row, "source") or default_source,
            "created_at": created_at}


def read_rows(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Iterator[Row]:
    """The rows of a CSV (``.csv``) or JSON-lines file, streamed (`textrows`)."""
    with open(path, "rb") as stream:
        reader = csv_rows if path.suffix.lower() == ".csv" else jsonl_rows
        yield from reader(stream, max_row_bytes, MAX_REJECT_PAYLOAD)


def _key(record: dict) -> tuple:
    return (record["trace_id"], record["span_id"], record["name"], record["value"], record["comment"],
            record["source"])


def import_feedback(engine: Engine, path: str | Path, source: str | None = None,
                    batch_rows: int = BATCH_ROWS, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> FeedbackSummary:
    """Validate and store every row of the file, a batch at a time (memory bounded by the batch, whatever the
    file's size); returns what was read, stored, skipped and rejected. Each batch is one transaction: an import
    cut short is finished by importing the file again (stored rows and rejects are recognised, not repeated)."""
    path = Path(path)
    now = db.utcnow()
    db.create_tables(engine)
    read = stored = duplicate = rejected = 0
    records: list[dict] = []
    rejects: list[dict] = []
    shown_source = path_text(path)
    for row in read_rows(path, max_row_bytes):
        read += 1
        try:
            if row.error is not None:
                raise ValueError(row.error)
            records.append(parse_row(row.value, source or path_text(path.name), now))
        except ValueError as exc:
            rejects.append({"source": shown_source, "location": f"line {row.line}", "reason": f"feedback: {exc}",
                            "payload": row.raw, "rejected_at": now})
        if len(records) + len(rejects) >= batch_rows:
            s, d, r = _write_batch(engine, records, rejects)
            stored, duplicate, rejected = stored + s, duplicate + d, rejected + r
            records, rejects = [], []
    s, d, r = _write_batch(engine, records, rejects)
    return FeedbackSummary(read=read, stored=stored + s, duplicate=duplicate + d, rejected=rejected + r)


def _write_batch(engine: Engine, records: list[dict], rejects: list[dict]) -> tuple[int, int, int]:
    """Store a batch's new records and new rejects in one transaction: (stored, duplicates, rejected)."""
    if not records and not rejects:
        return 0, 0, 0
    with engine.begin() as conn:
        existing: set[tuple] = set()
        traces = sorted({r["trace_id"] for r in records})
        for i in range(0, len(traces), 500):  # bounded IN lists: no input size breaks the query
            query = sa.select(feedback.c.trace_id, feedback.c.span_id, feedback.c.name, feedback.c.value,
                              feedback.c.comment, feedback.c.source).where(feedback.c.trace_id.in_(traces[i:i + 500]))
            existing.update(tuple(row) for row in conn.execute(query))
        fresh = []
        for record in records:
            if _key(record) not in existing:
                existing.add(_key(record))
                fresh.append(record)
        if fresh:
            conn.execute(sa.insert(feedback), fresh)
        # a reject already stored for this row of this file (an earlier import of it) is not stored again
        known: set[tuple] = set()
        for source in {r["source"] for r in rejects}:
            locations = sorted({r["location"] for r in rejects if r["source"] == source})
            for i in range(0, len(locations), 500):
                known.update(tuple(row) for row in conn.execute(
                    sa.select(ingest_rejects.c.source, ingest_rejects.c.location, ingest_rejects.c.reason).where(
                        ingest_rejects.c.source == source, ingest_rejects.c.location.in_(locations[i:i + 500]))))
        new_rejects = [r for r in rejects if (r["source"], r["location"], r["reason"]) not in known]
        if new_rejects:
            conn.execute(sa.insert(ingest_rejects), new_rejects)
    return len(fresh), len(records) - len(fresh), len(rejects)
