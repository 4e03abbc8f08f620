"""THE blocking checks of the raw span contract: what a span must satisfy for its hour's rollups to be trusted.

One definition, used by both sides:
* ingest quarantines a row that fails one (``row_failure``; ``may_fail`` is its hot-path pre-test), so one bad
  row never blocks its whole hour;
* monitoring's hourly quality gate (monitoring/quality.py) runs every one of them over a stored hour, with
  great-expectations, as its ERROR checks, and adds its own warnings.

Two are guaranteed by the store itself and have no row-level test: ``required_columns`` (the table's columns)
and ``span_key_unique`` (its primary key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from obs_pipelines.store.schema import SPAN_STATUSES

ERROR = "ERROR"
WARN = "WARN"
REQUIRED_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status")
# ids are lowercase hex of a fixed length (the whole value)
TRACE_ID_PATTERN = "[0-9a-f]{32}"
SPAN_ID_PATTERN = "[0-9a-f]{16}"
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens")
STATUSES = SPAN_STATUSES


@dataclass(frozen=True)
class SpanCheck:
    name: str
    description: str
    columns: tuple[str, ...]  # the span columns it reads
    per_row: bool = True  # False: the store guarantees it (no row can fail it alone)


# in the order the quality gate reports them
BLOCKING_CHECKS: tuple[SpanCheck, ...] = (
    SpanCheck("required_columns", "the contract's key columns are present", REQUIRED_COLUMNS, per_row=False),
    SpanCheck("trace_id_well_formed", "trace_id is 32 lowercase hex characters", ("trace_id",)),
    SpanCheck("span_id_well_formed", "span_id is 16 lowercase hex characters", ("span_id",)),
    SpanCheck("parent_span_id_well_formed", "parent_span_id, when set, is 16 lowercase hex characters",
              ("parent_span_id",)),
    SpanCheck("span_key_unique", "(trace_id, span_id) is unique", ("trace_id", "span_id"), per_row=False),
    SpanCheck("end_not_before_start", "end_time >= start_time", ("start_time", "end_time")),
    *(SpanCheck(f"{col}_non_negative", f"{col} >= 0", (col,)) for col in TOKEN_COLUMNS),
    SpanCheck("cost_non_negative", "cost_usd >= 0", ("cost_usd",)),
    SpanCheck("status_valid", "status is set and is 'ok' or 'error'", ("status",)),
)

_TRACE_ID = re.compile(TRACE_ID_PATTERN)
_SPAN_ID = re.compile(SPAN_ID_PATTERN)
_COUNT_CHECKS = tuple((col, f"{col}_non_negative") for col in TOKEN_COLUMNS)
_STATUSES = frozenset(STATUSES)


def row_failure(row: dict) -> str | None:
    """The first blocking check ``row`` (a ``spans`` row as a dict) fails, as ``name`` or ``name (the value)``;
    None when it passes them all."""
    cost = row.get("cost_usd")
    if cost is not None and cost < 0:
        return f"cost_non_negative (cost_usd {cost})"
    for col, check in _COUNT_CHECKS:
        v = row.get(col)
        if v is not None and v < 0:
            return f"{check} ({col} {v})"
    start, end = row.get("start_time"), row.get("end_time")
    if start is not None and end is not None and end < start:
        return "end_not_before_start"
    if row.get("status") not in STATUSES:
        return f"status_valid (status {row.get('status')!r})"
    tid, sid, pid = row.get("trace_id"), row.get("span_id"), row.get("parent_span_id")
    if type(tid) is not str or not _TRACE_ID.fullmatch(tid):
        return f"trace_id_well_formed (trace_id {tid!r})"
    if type(sid) is not str or not _SPAN_ID.fullmatch(sid):
        return f"span_id_well_formed (span_id {sid!r})"
    if pid is not None and (type(pid) is not str or not _SPAN_ID.fullmatch(pid)):
        return f"parent_span_id_well_formed (parent_span_id {pid!r})"
    return None


def may_fail(r: dict) -> bool:
    """The hot-path test (~0.3 us a row): could ``r`` fail a blocking check? Ids are not looked at here: ingest's
    mapping only emits ids it normalized to lowercase hex of the right length. Raises KeyError / TypeError on a
    row not shaped like the mapping's (then ask ``row_failure``)."""
    c, i, o, k = r["cost_usd"], r["input_tokens"], r["output_tokens"], r["cached_input_tokens"]
    if (c is not None and c < 0) or (i is not None and i < 0) or (o is not None and o < 0) or (k is not None and k < 0):
        return True
    s, e = r["start_time"], r["end_time"]
    return (s is not None and e is not None and e < s) or r["status"] not in _STATUSES


__all__ = ["BLOCKING_CHECKS", "ERROR", "REQUIRED_COLUMNS", "SPAN_ID_PATTERN", "STATUSES", "SpanCheck",
           "TOKEN_COLUMNS", "TRACE_ID_PATTERN", "WARN", "may_fail", "row_failure"]
