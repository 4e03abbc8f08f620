"""Tables written by the monitoring phase (SQLAlchemy Core, their own MetaData).

Every rollup table is keyed by its window (``window_start`` / ``window_end``, naive UTC) and a
``dimension`` / ``dimension_value`` pair, so one table holds the overall row and the per-route / per-model /
... rows of a window; rows of one window are replaced together (``db.replace_window``).

``TABLE_COLUMNS`` describes every column as plain dicts (name / type / description) for the Dagster
``TableSchema`` metadata the definitions attach to the assets.
"""

from __future__ import annotations

import sqlalchemy as sa

from obs_pipelines.store.tables import TableSpecs
from obs_pipelines.store.traces import NULL_LABEL  # dimension value of spans without that attribute

monitoring_metadata = sa.MetaData()

OTHER_LABEL = "(other)"  # user segment of every user outside the top N


_WINDOW = [
    ("window_start", "datetime", "Start of the window (UTC, inclusive)."),
    ("window_end", "datetime", "End of the window (UTC, exclusive)."),
    ("dimension", "text", "What the row is grouped by (see dimension_value)."),
    ("dimension_value", "text", f"Value of the dimension; {NULL_LABEL!r} when the attribute is missing, "
                                "null on the 'overall' row."),
]
# model rows group by a canonical key, so that a failed call (request model, gpt-4o) and a successful one
# (response model, gpt-4o-2024-08-06) share a row; the exact names stay here. (Comments of existing columns
# are left as they were: a changed comment is a schema change, i.e. a migration.)
_MODEL_NAMES = [
    ("model_names", "text", "Model rows (dimension 'model', whose dimension_value is the canonical model key: "
                            "date / version suffixes and provider prefixes stripped, e.g. 'gpt-4o' for gpt-4o "
                            "and gpt-4o-2024-08-06; error rollup: error_class and provider null, span_count = "
                            "spans of that key): the exact model names seen in the row, sorted, "
                            "comma-separated. Null on other rows."),
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
    *_MODEL_NAMES,
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
    *_MODEL_NAMES,
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
    *_MODEL_NAMES,
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

_SPECS = TableSpecs(monitoring_metadata)
TABLE_COLUMNS = _SPECS.columns


def _table(name: str, columns: list[tuple[str, str, str]], description: str) -> sa.Table:
    return _SPECS.table(name, columns, description)


request_rollup_hourly = _table("request_rollup_hourly", _REQUEST, "Requests per hour: overall, by route "
                               "(traces), by model and prompt version (llm calls).")
request_rollup_daily = _table("request_rollup_daily", _REQUEST, "Requests per day, from the hourly rollup; "
                              "percentiles recomputed exactly from the day's spans.")
step_rollup_hourly = _table("step_rollup_hourly", _STEP, "Step latency per hour by span kind and span name.")
step_rollup_daily = _table("step_rollup_daily", _STEP, "Step latency per day, from the hourly rollup; "
                           "percentiles recomputed exactly from the day's spans.")
error_rollup_hourly = _table("error_rollup_hourly", _ERROR, "Errors per hour by error class and provider.")
error_rollup_daily = _table("error_rollup_daily", _ERROR, "Errors per day, summed from the hourly rollup.")
usage_rollup_hourly = _table("usage_rollup_hourly", _USAGE, "Tokens and cost per hour by model, route, "
                             "prompt version and user segment (top N users + other).")
usage_rollup_daily = _table("usage_rollup_daily", _USAGE, "Tokens and cost per day, summed from the hourly "
                            "rollup.")
slo_status_hourly = _table("slo_status_hourly", _SLO, "SLO status per hourly window: value, attainment, "
                           "error budget, burn rates.")
quality_checks_hourly = _table("quality_checks_hourly", _QUALITY, "Data-quality check results per hourly "
                               "partition of spans.")

HOURLY_TABLES = {
    "request": request_rollup_hourly,
    "step": step_rollup_hourly,
    "error": error_rollup_hourly,
    "usage": usage_rollup_hourly,
}
DAILY_TABLES = {
    "request": request_rollup_daily,
    "step": step_rollup_daily,
    "error": error_rollup_daily,
    "usage": usage_rollup_daily,
}


def column_names(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns]


__all__ = [
    "DAILY_TABLES",
    "HOURLY_TABLES",
    "NULL_LABEL",
    "OTHER_LABEL",
    "TABLE_COLUMNS",
    "column_names",
    "error_rollup_daily",
    "error_rollup_hourly",
    "monitoring_metadata",
    "quality_checks_hourly",
    "request_rollup_daily",
    "request_rollup_hourly",
    "slo_status_hourly",
    "step_rollup_daily",
    "step_rollup_hourly",
    "usage_rollup_daily",
    "usage_rollup_hourly",
]
