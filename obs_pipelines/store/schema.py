"""SQLAlchemy Core tables of the trace store.

`spans` is the public raw trace contract (see docs/architecture.md); its column names are fixed.
Times are naive UTC `DateTime`s so both SQLite and PostgreSQL compare them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

SPAN_KINDS = (
    "llm",
    "retrieval",
    "tool",
    "agent",
    "chain",
    "embedding",
    "reranker",
    "guardrail",
    "evaluator",
    "other",
)
SPAN_STATUSES = ("ok", "error")
# the model calls: the spans that carry tokens and a cost (usage rollups, call pricing, cost attribution), and the
# same as an SQL list for ``kind IN {MODEL_CALL_KINDS_SQL}``
MODEL_CALL_KINDS = ("llm", "embedding")
MODEL_CALL_KINDS_SQL = "(" + ", ".join(f"'{k}'" for k in MODEL_CALL_KINDS) + ")"

spans = Table(
    "spans",
    metadata,
    Column("trace_id", Text, nullable=False),
    Column("span_id", Text, nullable=False),
    Column("parent_span_id", Text),
    Column("name", Text),
    Column("kind", Text),
    Column("start_time", DateTime),
    Column("end_time", DateTime),
    Column("status", Text),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("service_name", Text),
    Column("route", Text),
    Column("model", Text),
    Column("provider", Text),
    Column("prompt_name", Text),
    Column("prompt_version", Text),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cached_input_tokens", BigInteger),
    Column("cost_usd", Float),
    Column("user_id", Text),
    Column("session_id", Text),
    Column("input", Text),
    Column("output", Text),
    Column("attributes", JSON),
    # when ingest stored the row: lets late-data detection and audits tell arrivals apart
    Column("ingested_at", DateTime),
    PrimaryKeyConstraint("trace_id", "span_id", name="spans_pk"),
    # every phase reads its window by start_time; trace assembly reads by trace_id (covered by the pk)
    Index("ix_spans_start_time", "start_time"),
)

SPAN_COLUMNS: tuple[str, ...] = tuple(c.name for c in spans.columns)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", Text, nullable=False),
    Column("span_id", Text),
    Column("name", Text, nullable=False),
    Column("value", Float),
    Column("comment", Text),
    Column("source", Text),
    Column("created_at", DateTime, nullable=False),
    Index("ix_feedback_trace_id", "trace_id"),
    Index("ix_feedback_created_at", "created_at"),
)

ingest_rejects = Table(
    "ingest_rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text),  # file path (or other origin) the record came from
    Column("location", Text),  # line number / span index inside the source
    Column("reason", Text, nullable=False),
    Column("payload", Text),  # the raw record, as read (NUL bytes escaped)
    Column("rejected_at", DateTime, nullable=False),
    Index("ix_ingest_rejects_rejected_at", "rejected_at"),
)

# One row per (ingest batch, hour) that received new spans: the late-data sensor reads it
# to re-materialize exactly the hourly partitions that changed after they were rolled up.
span_arrivals = Table(
    "span_arrivals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("partition_hour", DateTime, nullable=False),
    Column("span_count", Integer, nullable=False),
    Column("arrived_at", DateTime, nullable=False),
)

# When each derived table's window was last written (db.replace_windows, in the same transaction): what a step
# that reads the table compares to skip a window whose inputs did not change (store/fingerprints.py).
window_writes = Table(
    "window_writes",
    metadata,
    Column("table_name", Text, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("written_at", DateTime, nullable=False),
    PrimaryKeyConstraint("table_name", "window_start", name="pk_window_writes"),
)

# Per step (a daily asset, an alert rule) and window: the fingerprint of the inputs its stored output was
# computed from; a re-run finding the same fingerprint leaves the window as it is.
step_inputs = Table(
    "step_inputs",
    metadata,
    Column("step", Text, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("computed_at", DateTime, nullable=False),
    PrimaryKeyConstraint("step", "window_start", name="pk_step_inputs"),
)
