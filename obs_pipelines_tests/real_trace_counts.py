"""Counts of the real-data fixture (`shared/data/real-traces`), computed from its `expected.json` so that no
test copies them as literals: one entry there per span line of the OTLP file (what Langfuse derived)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from obs_pipelines_tests.conftest import REAL_TRACES_DIR

TRACES_FILE = "framework-traces.otlp.jsonl"


@dataclass(frozen=True)
class RealCounts:
    read: int  # spans in the file (a span exported twice counts twice)
    stored: int  # distinct (trace_id, span_id): what one ingest stores
    duplicate: int  # read - stored: repeated spans, counted as duplicates by ingest
    traces: int  # distinct trace ids


@cache
def real_counts() -> RealCounts:
    expected = json.loads((REAL_TRACES_DIR / "expected.json").read_text())
    spans = [s for per_framework in expected.values() for s in per_framework]
    distinct = {(s["trace_id"], s["span_id"]) for s in spans}
    return RealCounts(
        read=len(spans),
        stored=len(distinct),
        duplicate=len(spans) - len(distinct),
        traces=len({s["trace_id"] for s in spans}),
    )
