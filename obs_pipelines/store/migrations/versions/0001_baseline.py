"""Baseline: every table as `metadata.create_all` made it before migrations (raw store + monitoring).

A frozen copy of store/schema.py and monitoring/tables.py at that time: later changes to those files come
as new revisions, never as edits here. A store created before migrations (some or all of these tables, no
`alembic_version`) is adopted in place: only the tables it lacks are created, existing ones are kept.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TYPES = {"datetime": sa.DateTime, "text": sa.Text, "int": sa.BigInteger, "float": sa.Float, "bool": sa.Boolean}
_NULL_LABEL = "(none)"

# ---- monitoring: (name, type, comment) per column, as monitoring/tables.py declared them -----------------

_WINDOW = [
    ("window_start", "datetime", "Start of the window (UTC, inclusive)."),
    ("window_end", "datetime", "End of the window (UTC, exclusive)."),
    ("dimension", "text", "What the row is grouped by (see dimension_value)."),
    ("dimension_value", "text", f"Value of the dimension; {_NULL_LABEL!r} when the attribute is missing, "
                                "null on the 'overall' row."),
]
_LATENCY = [
    ("latency_p50_ms", "float", "Exact median latency in ms (linear interpolation, = percentile_cont)."),
    ("latency_p90_ms", "float", "Exact 90th percentile latency in ms."),
    ("latency_p95_ms", "float", "Exact 95th percentile latency in ms."),
    ("latency_p99_ms", "float", "Exact 99th percentile latency in ms."),
    ("latency_max_ms", "float", "Maximum latency in ms."),
    ("latency_mean_ms", "float", "Mean latency in ms."),
    ("latency_count", "int", "Number of items with a known latency (both start and end times)."),
]
_COMPUTED = [("computed_at", "datetime", "When this row was computed (UTC).")]
_REQUEST = [
    *_WINDOW,
    ("request_count", "int", "Requests in the window. dimension overall / route: traces (a trace belongs to "
                             "the hour its root span starts in); model / prompt_version: llm calls."),
    ("throughput_per_min", "float", "request_count / minutes in the window."),
    ("error_count", "int", "Requests that failed: traces with at least one span in status error; "
                           "llm calls in status error."),
    ("error_rate", "float", "error_count / request_count."),
    *_LATENCY,
    *_COMPUTED,
]
_STEP = [
    *_WINDOW,
    ("span_kind", "text", "Span kind (llm, retrieval, tool ...)."),
    ("span_name", "text", "Span name; null on the per-kind rows (dimension span_kind)."),
    ("span_count", "int", "Spans of this kind / name starting in the window."),
    ("throughput_per_min", "float", "span_count / minutes in the window."),
    ("error_count", "int", "Spans in status error."),
    ("error_rate", "float", "error_count / span_count."),
    *_LATENCY,
    *_COMPUTED,
]
_ERROR = [
    *_WINDOW,
    ("error_class", "text", "rate_limit, provider_5xx, timeout, context_length, invalid_request, auth, "
                            "tool_error, guardrail_block or other; null on overall / provider rows."),
    ("provider", "text", "Provider of the failed span; null on overall / error_class rows."),
    ("error_count", "int", "Failed spans where the error originated (a failed span whose failure is explained "
                           "by a failed child span is not counted again)."),
    ("span_count", "int", "Denominator: spans of the provider (provider rows) or all spans of the window."),
    ("error_rate", "float", "error_count / span_count."),
    ("example_trace_id", "text", "One trace with such an error (the largest trace_id, deterministic)."),
    *_COMPUTED,
]
_USAGE = [
    *_WINDOW,
    ("call_count", "int", "llm and embedding spans starting in the window."),
    ("input_tokens", "int", "Input tokens (including cached input tokens)."),
    ("output_tokens", "int", "Output tokens."),
    ("cached_input_tokens", "int", "Cached input tokens."),
    ("cost_usd", "float", "Cost in USD: the app-reported cost_usd when present, else computed from tokens."),
    ("reported_cost_usd", "float", "Part of cost_usd reported by the app."),
    ("computed_cost_usd", "float", "Part of cost_usd computed from tokens with the price table."),
    ("unpriced_call_count", "int", "Calls with no reported cost and no price for their model (cost unknown)."),
    ("price_version", "text", "Price table used: genai-prices version (+ hash of the overrides)."),
    *_COMPUTED,
]
_SLO = [
    ("window_start", "datetime", "Start of the hourly window (UTC)."),
    ("window_end", "datetime", "End of the hourly window (UTC)."),
    ("slo_name", "text", "Name of the SLO (settings)."),
    ("metric", "text", "Column of the hourly request rollup the SLO is about."),
    ("dimension", "text", "Rollup dimension the SLO reads (overall, route, model)."),
    ("dimension_value", "text", "Route / model of the SLO; null for overall."),
    ("objective", "text", "Objective per window, e.g. '< 2500'."),
    ("target", "float", "Share of windows that must meet the objective."),
    ("value", "float", "Measured value in this window (null: no traffic, the window is not judged)."),
    ("met", "bool", "Whether the window met the objective (null: no traffic)."),
    ("windows_judged", "int", "Judged windows in the trailing compliance period."),
    ("attainment", "float", "Share of judged windows in the trailing compliance period that met the objective."),
    ("error_budget_remaining", "float", "1 - bad windows / allowed bad windows ((1 - target) * judged); "
                                        "negative when the budget is overspent."),
    ("burn_rate_1h", "float", "Share of bad windows in the last 1 h / (1 - target)."),
    ("burn_rate_6h", "float", "Share of bad windows in the last 6 h / (1 - target)."),
    *_COMPUTED,
]
_QUALITY = [
    ("window_start", "datetime", "Start of the checked partition (UTC)."),
    ("window_end", "datetime", "End of the checked partition (UTC)."),
    ("check_name", "text", "Name of the data-quality check."),
    ("severity", "text", "ERROR (blocking) or WARN."),
    ("passed", "bool", "Whether the check passed."),
    ("failing_count", "int", "Rows (or columns, for the column check) failing the check."),
    ("row_count", "int", "Rows checked."),
    ("examples", "text", "JSON list of a few failing rows (trace_id / span_id)."),
    ("description", "text", "What the check verifies."),
    *_COMPUTED,
]
_MONITORING = {
    "request_rollup_hourly": (_REQUEST, "Requests per hour: overall, by route (traces), by model and prompt "
                                        "version (llm calls)."),
    "request_rollup_daily": (_REQUEST, "Requests per day, from the hourly rollup; percentiles recomputed "
                                       "exactly from the day's spans."),
    "step_rollup_hourly": (_STEP, "Step latency per hour by span kind and span name."),
    "step_rollup_daily": (_STEP, "Step latency per day, from the hourly rollup; percentiles recomputed exactly "
                                 "from the day's spans."),
    "error_rollup_hourly": (_ERROR, "Errors per hour by error class and provider."),
    "error_rollup_daily": (_ERROR, "Errors per day, summed from the hourly rollup."),
    "usage_rollup_hourly": (_USAGE, "Tokens and cost per hour by model, route, prompt version and user segment "
                                    "(top N users + other)."),
    "usage_rollup_daily": (_USAGE, "Tokens and cost per day, summed from the hourly rollup."),
    "slo_status_hourly": (_SLO, "SLO status per hourly window: value, attainment, error budget, burn rates."),
    "quality_checks_hourly": (_QUALITY, "Data-quality check results per hourly partition of spans."),
}


def _monitoring_columns(spec: list[tuple[str, str, str]]) -> list[sa.Column]:
    return [sa.Column(n, _TYPES[t](), nullable=n not in ("window_start", "window_end"), comment=d) for n, t, d in spec]


# ---- raw store, as store/schema.py declared it --------------------------------------------------------


def _spans() -> list:
    return [
        sa.Column("trace_id", sa.Text(), nullable=False),
        sa.Column("span_id", sa.Text(), nullable=False),
        *(sa.Column(n, sa.Text()) for n in ("parent_span_id", "name", "kind")),
        sa.Column("start_time", sa.DateTime()),
        sa.Column("end_time", sa.DateTime()),
        *(sa.Column(n, sa.Text()) for n in ("status", "error_type", "error_message", "service_name", "route",
                                             "model", "provider", "prompt_name", "prompt_version")),
        *(sa.Column(n, sa.BigInteger()) for n in ("input_tokens", "output_tokens", "cached_input_tokens")),
        sa.Column("cost_usd", sa.Float()),
        *(sa.Column(n, sa.Text()) for n in ("user_id", "session_id", "input", "output")),
        sa.Column("attributes", sa.JSON()),
        sa.Column("ingested_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name="spans_pk"),
    ]


def _feedback() -> list:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trace_id", sa.Text(), nullable=False),
        sa.Column("span_id", sa.Text()),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Float()),
        sa.Column("comment", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ]


def _ingest_rejects() -> list:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text()),
        sa.Column("location", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text()),
        sa.Column("rejected_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ]


def _span_arrivals() -> list:
    return [
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("partition_hour", sa.DateTime(), nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ]


_RAW_INDEXES = {
    "spans": {"ix_spans_start_time": "start_time"},
    "feedback": {"ix_feedback_trace_id": "trace_id", "ix_feedback_created_at": "created_at"},
    "ingest_rejects": {"ix_ingest_rejects_rejected_at": "rejected_at"},
    "span_arrivals": {},
}
_RAW_COLUMNS = {"spans": _spans, "feedback": _feedback, "ingest_rejects": _ingest_rejects, "span_arrivals": _span_arrivals}


def baseline_metadata() -> sa.MetaData:
    """The tables of this revision as SQLAlchemy tables (what create_all made; tests build old stores with it)."""
    meta = sa.MetaData()
    for name, columns in _RAW_COLUMNS.items():
        sa.Table(name, meta, *columns(), *(sa.Index(ix, col) for ix, col in _RAW_INDEXES[name].items()))
    for name, (spec, comment) in _MONITORING.items():
        sa.Table(name, meta, *_monitoring_columns(spec), sa.Index(f"ix_{name}_window_start", "window_start"),
                 comment=comment)
    return meta


def upgrade() -> None:
    # the very DDL create_all emitted before migrations; checkfirst: a table that exists (made by create_all,
    # with its indexes) is kept as it is, so an old store with some or all of the tables is adopted in place
    baseline_metadata().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind())
