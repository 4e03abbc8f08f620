"""Tables written by the observability phase (SQLAlchemy Core, their own MetaData): the published contract.

Every table is keyed by its window (``window_start`` / ``window_end``, naive UTC: the hour, or the day for
``session_rollup_daily``) and its grain (``GRAINS``: the columns that make a row unique within a window);
the rows of one window are replaced together (``db.replace_windows``).

``TABLE_COLUMNS`` describes every column as plain dicts (name / type / description) for the Dagster
``TableSchema`` metadata of the assets.
"""

from __future__ import annotations

import sqlalchemy as sa

from obs_pipelines.store.tables import TableSpecs
from obs_pipelines.store.traces import NULL_LABEL

observability_metadata = sa.MetaData()


# step kinds whose wall-clock time a request row reports (``<kind>_ms``); wrappers (agent, chain) are not
# steps of their own: their time is the time of what they wrap
TIMED_KINDS = ("llm", "retrieval", "tool", "embedding", "reranker", "guardrail")
# span kinds counted on a request row (``<kind>_spans``)
COUNTED_KINDS = ("llm", "retrieval", "tool", "agent", "chain", "embedding", "reranker", "guardrail", "other")

_WINDOW = [
    ("window_start", "datetime", "Start of the window (UTC, inclusive): the hour (the day for daily tables)."),
    ("window_end", "datetime", "End of the window (UTC, exclusive)."),
]
_COMPUTED = [("computed_at", "datetime", "When this row was computed (UTC).")]

_TRACES = [
    *_WINDOW,
    ("trace_id", "text", "The request's trace id (one row per request, store/traces.py's definition)."),
    ("start_time", "datetime", "Request start: the root span's start (rootless trace: its first span's)."),
    ("end_time", "datetime", "Request end: the root span's end (rootless trace: its last span's end)."),
    ("latency_ms", "float", "end_time - start_time in ms."),
    ("route", "text", f"The root's route, else any route of the trace, else {NULL_LABEL!r}."),
    ("service_name", "text", "The root's service, else any service of the trace."),
    ("user_id", "text", "The root's user, else any user of the trace."),
    ("session_id", "text", "The root's session, else any session of the trace."),
    ("status", "text", "error when any span of the request (in the window) failed, else ok."),
    ("error_class", "text", "Class of the first error where it originated (monitoring's classifier + the "
                            "settings' error_rules); null when ok."),
    ("error_span", "text", "Name of the span where the first error originated; null when ok."),
    ("error_message", "text", "Message of that first error (first 500 characters)."),
    ("span_count", "int", "Spans of the request starting in the window."),
    *[(f"{k}_spans", "int", f"Spans of kind {k}.") for k in COUNTED_KINDS],
    ("input_tokens", "int", "Input tokens of the request's llm and embedding spans (including cached)."),
    ("output_tokens", "int", "Output tokens."),
    ("cached_input_tokens", "int", "Cached input tokens."),
    ("cost_usd", "float", "Cost in USD: the app-reported cost_usd of each call, else tokens x price table."),
    ("models", "text", "Models of the request's llm calls, sorted, comma-separated."),
    ("prompt_versions", "text", "prompt_name:prompt_version pairs of its llm calls, sorted, comma-separated."),
    *[(f"{k}_ms", "float", f"Wall-clock time in ms during which at least one {k} step of the request was "
                           "running (union of their intervals: parallel calls are not counted twice); "
                           "for sequential steps this is the step kind's share of the critical path.")
      for k in TIMED_KINDS],
    *_COMPUTED,
]
_SESSIONS = [
    *_WINDOW,
    ("session_id", "text", "The session (requests without a session are not listed)."),
    ("user_id", "text", "The session's user (the smallest id when a session has several)."),
    ("first_seen", "datetime", "Start of the session's first request of the day."),
    ("last_seen", "datetime", "End of its last request of the day."),
    ("turns", "int", "Requests of the session in the day."),
    ("errors", "int", "Requests in status error."),
    ("input_tokens", "int", "Input tokens of its requests."),
    ("output_tokens", "int", "Output tokens of its requests."),
    ("cost_usd", "float", "Cost of its requests in USD."),
    ("routes", "text", "Routes the session used, sorted, comma-separated."),
    ("ended_on_error", "bool", "Whether the session's last request of the day failed."),
    *_COMPUTED,
]
_BASELINE_NOTE = "same hour of day over the previous baseline_days days (settings.observability)"
_LATENCY_ATTRIBUTION = [
    *_WINDOW,
    ("route", "text", "The request's route."),
    ("span_name", "text", "Step: span name (the request's root span is the route itself, not a step)."),
    ("span_kind", "text", "Step: span kind."),
    ("calls", "int", "Spans of this step in the window."),
    ("p50_ms", "float", "Exact median duration of the step (ms)."),
    ("p95_ms", "float", "Exact 95th percentile duration of the step (ms)."),
    ("baseline_calls", "int", f"Spans of this step in the baseline ({_BASELINE_NOTE})."),
    ("baseline_p95_ms", "float", f"Exact p95 of the step over the baseline ({_BASELINE_NOTE}); null if unseen."),
    ("delta_p95_ms", "float", "p95_ms - baseline_p95_ms: how much the step added to (or took off) its p95."),
    ("route_p95_ms", "float", "Exact p95 latency of the route's requests in the window."),
    ("route_baseline_p95_ms", "float", "Exact p95 latency of the route's requests over the baseline."),
    ("route_delta_p95_ms", "float", "route_p95_ms - route_baseline_p95_ms."),
    ("share_of_route_change", "float", "delta_p95_ms / route_delta_p95_ms (null when the route did not move)."),
    ("wraps_steps", "bool", "The step has child spans (agent, chain ...): its time includes theirs."),
    ("rank", "int", "1 = the step that added most to its p95 in this hour (steps that wrap others rank after "
                    "the leaf steps, which their time only repeats)."),
    *_COMPUTED,
]
_COST_ATTRIBUTION = [
    *_WINDOW,
    ("route", "text", "The route whose calls the row covers (model, prompt_version and user_segment rows per route); "
                      "'(all)' for the hour's calls over every route."),
    ("dimension", "text", "route, model (canonical model key, as monitoring's rollups), prompt_version "
                          "(prompt_name@version) or user_segment (top N users by cost + '(other)')."),
    ("dimension_value", "text", f"Value of the dimension; {NULL_LABEL!r} when the call does not carry it."),
    ("calls", "int", "llm and embedding calls."),
    ("input_tokens", "int", "Input tokens (including cached)."),
    ("output_tokens", "int", "Output tokens."),
    ("cost_usd", "float", "Cost in USD (app-reported, else tokens x price table)."),
    ("baseline_calls", "float", f"Mean calls per hour over the baseline ({_BASELINE_NOTE})."),
    ("baseline_cost_usd", "float", "Mean cost per hour over the baseline."),
    ("delta_cost_usd", "float", "cost_usd - baseline_cost_usd."),
    ("share_of_change", "float", "delta_cost_usd / the total delta of the row's calls (its route's, or all)."),
    ("volume_effect_usd", "float", "(calls - baseline_calls) x baseline cost per call: the change from more "
                                   "(or fewer) calls."),
    ("unit_cost_effect_usd", "float", "calls x (cost per call - baseline cost per call): the change from more "
                                      "tokens per call or a pricier model. volume + unit cost = delta."),
    ("driver", "text", "volume or unit_cost: the larger of the two effects (by absolute value)."),
    ("rank", "int", "Rank of the value within its route and dimension by delta_cost_usd (1 = added most)."),
    *_COMPUTED,
]
_ERROR_CAUSES = [
    *_WINDOW,
    ("error_class", "text", "Class of the error (rate_limit, provider_5xx = a provider outage, timeout, ...)."),
    ("provider", "text", f"Provider of the failing span ({NULL_LABEL!r} when none)."),
    ("model", "text", f"Model of the failing span ({NULL_LABEL!r} when none)."),
    ("route", "text", "Route of the request."),
    ("failing_step", "text", "Name of the span where the error originated (no failed child explains it)."),
    ("error_count", "int", "Errors of this cause in the window."),
    ("share", "float", "error_count / all errors (where they originated) of the window."),
    ("example_trace_ids", "text", "Up to 3 trace ids with this cause, JSON list (smallest ids)."),
    ("message", "text", "Representative message: the most frequent one of the cause (first 500 characters)."),
    *_COMPUTED,
]
_RETRIEVAL_LOG = [
    *_WINDOW,
    ("trace_id", "text", "Trace of the retrieval."),
    ("span_id", "text", "The retrieval span."),
    ("route", "text", "Route of the request."),
    ("span_name", "text", "Name of the retrieval span."),
    ("start_time", "datetime", "Start of the retrieval."),
    ("latency_ms", "float", "Duration of the retrieval in ms."),
    ("status", "text", "Status of the span."),
    ("query", "text", "The query (span input), first 1000 characters."),
    ("document_count", "int", "Documents returned."),
    ("document_ids", "text", "JSON list of the document ids, in rank order."),
    ("scores", "text", "JSON list of their scores (null entries when not reported)."),
    ("ranks", "text", "JSON list of their ranks (1-based, in the order returned)."),
    ("previews", "text", "JSON list of the first 120 characters of each document."),
    ("top_score", "float", "Highest score (null when none)."),
    ("no_documents", "bool", "Nothing was retrieved."),
    ("all_below_threshold", "bool", "Documents were returned but every score is below the low-score threshold."),
    ("duplicate_documents", "bool", "A document id appears more than once."),
    *_COMPUTED,
]
_RETRIEVAL_ROLLUP = [
    *_WINDOW,
    ("route", "text", "Route of the requests; '(all)' for the row over every route."),
    ("retrievals", "int", "Retrieval spans."),
    ("empty_rate", "float", "Share of retrievals with no documents."),
    ("low_score_rate", "float", "Share of retrievals with documents all below the low-score threshold."),
    ("duplicate_rate", "float", "Share of retrievals returning a document twice."),
    ("mean_top_score", "float", "Mean of the top score (retrievals with scores)."),
    ("mean_documents", "float", "Mean documents per retrieval."),
    ("error_rate", "float", "Share of retrieval spans in status error."),
    *_COMPUTED,
]
_AGENT_PATHS = [
    *_WINDOW,
    ("trace_id", "text", "A request of the hour (store/traces.py) with at least one tool call."),
    ("route", "text", "Route of the request."),
    ("tool_calls", "int", "Tool spans of the request (its steps starting up to an hour after its hour closes "
                          "count: a request's path is whole in the hour of its root)."),
    ("llm_calls", "int", "llm spans of the request."),
    ("total_steps", "int", "tool_calls + llm_calls."),
    ("distinct_tools", "int", "Distinct tool names called."),
    ("path", "text", "Tool names in call order, joined with ' > '."),
    ("steps", "text", "JSON list of the tool calls in order: name, args_hash (sha1 of the arguments, 12 hex), "
                      "status, latency_ms."),
    ("tool_errors", "int", "Tool calls in status error."),
    ("loop_detected", "bool", "Any loop rule fired."),
    ("loop_kind", "text", "repeated_call, repeated_cycle and/or repeated_output (comma-separated) when a loop was "
                          "detected."),
    ("loop_evidence", "text", "JSON: what each fired rule saw (tool and args hash with the count, the cycle "
                              "and its repeats, the similar outputs and their ratio)."),
    ("tool_loops", "text", "JSON object: each tool the request called -> 1 when its loop repeats that tool (the "
                           "repeated call's tool, the repeated cycle's tools; a repeated model output: every tool "
                           "called), else 0."),
    *_COMPUTED,
]

_PROMPT_COMPARISON = [
    *_WINDOW,
    ("route", "text", f"Route of the llm calls ({NULL_LABEL!r} when they carry none)."),
    ("prompt_name", "text", "Prompt name."),
    ("prompt_version", "text", "The version judged."),
    ("previous_version", "text", "The version before it (natural version order) seen the same day."),
    ("calls", "int", "llm calls of the version in the day."),
    ("previous_calls", "int", "llm calls of the previous version in the day."),
    ("latency_p50_ms", "float", "Median call latency of the version (ms)."),
    ("latency_p95_ms", "float", "95th percentile call latency of the version (ms)."),
    ("previous_latency_p95_ms", "float", "95th percentile call latency of the previous version (ms)."),
    ("cost_per_call_usd", "float", "Mean cost per call (reported, else tokens x price table)."),
    ("previous_cost_per_call_usd", "float", "Mean cost per call of the previous version."),
    ("error_rate", "float", "Share of the version's calls in status error."),
    ("previous_error_rate", "float", "Share of the previous version's calls in status error."),
    ("output_tokens_mean", "float", "Mean output tokens per call."),
    ("previous_output_tokens_mean", "float", "Mean output tokens per call of the previous version."),
    ("latency_p_value", "float", "Mann-Whitney U (two-sided) on call latency; null when not judged."),
    ("cost_p_value", "float", "Mann-Whitney U (two-sided) on cost per call."),
    ("error_p_value", "float", "Fisher's exact test on the error counts."),
    ("output_tokens_p_value", "float", "Mann-Whitney U (two-sided) on output tokens."),
    ("mean_score", "float", "Mean online eval score of the version (null until online evals publish scores)."),
    ("verdict", "text", "regression (significantly slower, costlier or failing more), changed (significant "
                        "differences in the other direction or in output length), no_change, or "
                        "insufficient_samples (fewer than comparison_min_samples calls on either side)."),
    ("reasons", "text", "The significant differences, e.g. 'output tokens down (p=1e-40)'."),
    *_COMPUTED,
]

_SPECS = TableSpecs(observability_metadata)
TABLE_COLUMNS = _SPECS.columns
# table -> the text columns that, with window_start, make a row unique (migration 0004's grain keys)
GRAINS: dict[str, tuple[str, ...]] = {}


def _table(name: str, columns: list[tuple[str, str, str]], grain: tuple[str, ...], description: str) -> sa.Table:
    GRAINS[name] = grain
    return _SPECS.table(name, columns, description)


traces = _table("traces", _TRACES, ("trace_id",),
                "One row per request (trace): timing, status and first error, spans per kind, tokens, cost, "
                "models, prompt versions, time per step kind.")
session_rollup_daily = _table("session_rollup_daily", _SESSIONS, ("session_id",),
                              "Per session and day: user, first / last seen, turns, errors, tokens, cost, routes, "
                              "whether it ended on an error.")
latency_attribution_hourly = _table(
    "latency_attribution_hourly", _LATENCY_ATTRIBUTION, ("route", "span_name", "span_kind"),
    "Per hour, route and step: p50 / p95 against the baseline, the change and its share of the route's p95 change.")
cost_attribution_hourly = _table(
    "cost_attribution_hourly", _COST_ATTRIBUTION, ("route", "dimension", "dimension_value"),
    "Per hour and dimension value, over all routes and within each route: cost against the baseline, split into "
    "volume and unit cost.")
error_causes_hourly = _table(
    "error_causes_hourly", _ERROR_CAUSES, ("error_class", "provider", "model", "route", "failing_step"),
    "Per hour: errors by class x provider x model x route x failing step, with examples.")
retrieval_log = _table("retrieval_log", _RETRIEVAL_LOG, ("trace_id", "span_id"),
                       "One row per retrieval span: query, documents, scores, ranks, previews and quality flags.")
retrieval_rollup_hourly = _table("retrieval_rollup_hourly", _RETRIEVAL_ROLLUP, ("route",),
                                 "Per hour and route: retrievals, empty and low-score rates, mean top score.")
prompt_version_comparison_daily = _table(
    "prompt_version_comparison_daily", _PROMPT_COMPARISON, ("route", "prompt_name", "prompt_version"),
    "Per day, route and prompt: each version against the previous one, with sample sizes and significance tests.")
agent_paths = _table("agent_paths", _AGENT_PATHS, ("trace_id",),
                     "Per request with tool calls: the ordered tool path and the loop detector's verdict.")

HOURLY_TABLES: dict[str, sa.Table] = {
    t.name: t for t in (traces, latency_attribution_hourly, cost_attribution_hourly, error_causes_hourly,
                        retrieval_log, retrieval_rollup_hourly, agent_paths)
}
DAILY_TABLES: dict[str, sa.Table] = {t.name: t for t in (session_rollup_daily, prompt_version_comparison_daily)}

__all__ = [
    "COUNTED_KINDS",
    "DAILY_TABLES",
    "GRAINS",
    "HOURLY_TABLES",
    "TABLE_COLUMNS",
    "TIMED_KINDS",
    "agent_paths",
    "cost_attribution_hourly",
    "error_causes_hourly",
    "latency_attribution_hourly",
    "observability_metadata",
    "prompt_version_comparison_daily",
    "retrieval_log",
    "retrieval_rollup_hourly",
    "session_rollup_daily",
    "traces",
]
