"""Test helper (no pytest import): build OTLP/JSON requests the way exporters write them, and read rows back."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import sqlalchemy as sa

from obs_pipelines.store.schema import ingest_rejects, spans

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"
CHILD = "00f067aa0ba902b7"


def av(value) -> dict:
    """An OTLP AnyValue in the JSON mapping (int64 as strings, like protobuf's JSON mapping)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [av(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": av(v)} for k, v in value.items()]}}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    return {"stringValue": value}


def span(
    name: str = "span",
    trace_id: str = TRACE,
    span_id: str = ROOT,
    parent: str | None = None,
    attrs: dict | None = None,
    start_ns: int = T0,
    dur_ns: int = 1_000_000,
    kind=1,
    status: dict | None = None,
    events: list | None = None,
) -> dict:
    sp = {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent or "",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + dur_ns),
        "attributes": [{"key": k, "value": av(v)} for k, v in (attrs or {}).items()],
    }
    if status is not None:
        sp["status"] = status
    if events is not None:
        sp["events"] = events
    return sp


def request(*spans_: dict, service: str = "svc", scope: str = "test") -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": scope}, "spans": list(spans_)}],
            }
        ]
    }


def write_jsonl(path: Path, *requests: dict | str | bytes, gz: bool = False) -> Path:
    lines = []
    for r in requests:
        if isinstance(r, bytes):
            lines.append(r)
        elif isinstance(r, str):
            lines.append(r.encode())
        else:
            lines.append(json.dumps(r).encode())
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def hex_to_b64(h: str) -> str:
    return base64.b64encode(bytes.fromhex(h)).decode()


def span_rows(engine) -> dict[tuple[str, str], dict]:
    with engine.connect() as conn:
        return {(r["trace_id"], r["span_id"]): dict(r) for r in conn.execute(sa.select(spans)).mappings()}


def reject_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(ingest_rejects).order_by(ingest_rejects.c.id)).mappings()]


def comparable(row: dict) -> dict:
    """A stored row without the per-ingest timestamp."""
    return {k: v for k, v in row.items() if k != "ingested_at"}
