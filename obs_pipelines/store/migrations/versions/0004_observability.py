"""the observability phase's tables: traces, session_rollup_daily, latency / cost attribution, error causes,
retrieval log and rollup, agent paths (observability/tables.py), each with its window index and a unique key
on its grain.

A frozen snapshot of observability/tables.py when the phase shipped: later changes come as new revisions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import add_grain_key, drop_grain_key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# table -> (comment, [(column, type, comment)], grain columns after window_start)
TABLES = {
    'agent_paths': (
        "Per request with tool calls: the ordered tool path and the loop detector's verdict.",
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('trace_id', sa.Text, 'A request of the hour (store/traces.py) with at least one tool call.'),
            ('route', sa.Text, 'Route of the request.'),
            ('tool_calls', sa.BigInteger, "Tool spans of the request (its steps starting up to an hour after its hour closes count: a request's path is whole in the hour of its root)."),
            ('llm_calls', sa.BigInteger, 'llm spans of the request.'),
            ('total_steps', sa.BigInteger, 'tool_calls + llm_calls.'),
            ('distinct_tools', sa.BigInteger, 'Distinct tool names called.'),
            ('path', sa.Text, "Tool names in call order, joined with ' > '."),
            ('steps', sa.Text, 'JSON list of the tool calls in order: name, args_hash (sha1 of the arguments, 12 hex), status, latency_ms.'),
            ('tool_errors', sa.BigInteger, 'Tool calls in status error.'),
            ('loop_detected', sa.Boolean, 'Any loop rule fired.'),
            ('loop_kind', sa.Text, 'repeated_call, repeated_cycle and/or repeated_output (comma-separated) when a loop was detected.'),
            ('loop_evidence', sa.Text, 'JSON: what each fired rule saw (tool and args hash with the count, the cycle and its repeats, the similar outputs and their ratio).'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('trace_id',),
    ),
    'cost_attribution_hourly': (
        'Per hour and dimension value: cost against the baseline, split into volume and unit cost.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('dimension', sa.Text, "route, model (canonical model key, as monitoring's rollups), prompt_version (prompt_name@version) or user_segment (top N users by cost + '(other)')."),
            ('dimension_value', sa.Text, "Value of the dimension; '(none)' when the call does not carry it."),
            ('calls', sa.BigInteger, 'llm and embedding calls.'),
            ('input_tokens', sa.BigInteger, 'Input tokens (including cached).'),
            ('output_tokens', sa.BigInteger, 'Output tokens.'),
            ('cost_usd', sa.Float, 'Cost in USD (app-reported, else tokens x price table).'),
            ('baseline_calls', sa.Float, 'Mean calls per hour over the baseline (same hour of day over the previous baseline_days days (settings.observability)).'),
            ('baseline_cost_usd', sa.Float, 'Mean cost per hour over the baseline.'),
            ('delta_cost_usd', sa.Float, 'cost_usd - baseline_cost_usd.'),
            ('share_of_change', sa.Float, "delta_cost_usd / the hour's total delta (all calls)."),
            ('volume_effect_usd', sa.Float, '(calls - baseline_calls) x baseline cost per call: the change from more (or fewer) calls.'),
            ('unit_cost_effect_usd', sa.Float, 'calls x (cost per call - baseline cost per call): the change from more tokens per call or a pricier model. volume + unit cost = delta.'),
            ('driver', sa.Text, 'volume or unit_cost: the larger of the two effects (by absolute value).'),
            ('rank', sa.BigInteger, 'Rank of the value within its dimension by delta_cost_usd (1 = added most).'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('dimension', 'dimension_value'),
    ),
    'error_causes_hourly': (
        'Per hour: errors by class x provider x model x route x failing step, with examples.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('error_class', sa.Text, 'Class of the error (rate_limit, provider_5xx = a provider outage, timeout, ...).'),
            ('provider', sa.Text, "Provider of the failing span ('(none)' when none)."),
            ('model', sa.Text, "Model of the failing span ('(none)' when none)."),
            ('route', sa.Text, 'Route of the request.'),
            ('failing_step', sa.Text, 'Name of the span where the error originated (no failed child explains it).'),
            ('error_count', sa.BigInteger, 'Errors of this cause in the window.'),
            ('share', sa.Float, 'error_count / all errors (where they originated) of the window.'),
            ('example_trace_ids', sa.Text, 'Up to 3 trace ids with this cause, JSON list (smallest ids).'),
            ('message', sa.Text, 'Representative message: the most frequent one of the cause (first 500 characters).'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('error_class', 'provider', 'model', 'route', 'failing_step'),
    ),
    'latency_attribution_hourly': (
        "Per hour, route and step: p50 / p95 against the baseline, the change and its share of the route's p95 change.",
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('route', sa.Text, "The request's route."),
            ('span_name', sa.Text, "Step: span name (the request's root span is the route itself, not a step)."),
            ('span_kind', sa.Text, 'Step: span kind.'),
            ('calls', sa.BigInteger, 'Spans of this step in the window.'),
            ('p50_ms', sa.Float, 'Exact median duration of the step (ms).'),
            ('p95_ms', sa.Float, 'Exact 95th percentile duration of the step (ms).'),
            ('baseline_calls', sa.BigInteger, 'Spans of this step in the baseline (same hour of day over the previous baseline_days days (settings.observability)).'),
            ('baseline_p95_ms', sa.Float, 'Exact p95 of the step over the baseline (same hour of day over the previous baseline_days days (settings.observability)); null if unseen.'),
            ('delta_p95_ms', sa.Float, 'p95_ms - baseline_p95_ms: how much the step added to (or took off) its p95.'),
            ('route_p95_ms', sa.Float, "Exact p95 latency of the route's requests in the window."),
            ('route_baseline_p95_ms', sa.Float, "Exact p95 latency of the route's requests over the baseline."),
            ('route_delta_p95_ms', sa.Float, 'route_p95_ms - route_baseline_p95_ms.'),
            ('share_of_route_change', sa.Float, 'delta_p95_ms / route_delta_p95_ms (null when the route did not move).'),
            ('wraps_steps', sa.Boolean, 'The step has child spans (agent, chain ...): its time includes theirs.'),
            ('rank', sa.BigInteger, '1 = the step that added most to its p95 in this hour (steps that wrap others rank after the leaf steps, which their time only repeats).'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('route', 'span_name', 'span_kind'),
    ),
    'prompt_version_comparison_daily': (
        'Per day, route and prompt: each version against the previous one, with sample sizes and significance tests.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('route', sa.Text, "Route of the llm calls ('(none)' when they carry none)."),
            ('prompt_name', sa.Text, 'Prompt name.'),
            ('prompt_version', sa.Text, 'The version judged.'),
            ('previous_version', sa.Text, 'The version before it (natural version order) seen the same day.'),
            ('calls', sa.BigInteger, 'llm calls of the version in the day.'),
            ('previous_calls', sa.BigInteger, 'llm calls of the previous version in the day.'),
            ('latency_p50_ms', sa.Float, 'Median call latency of the version (ms).'),
            ('latency_p95_ms', sa.Float, '95th percentile call latency of the version (ms).'),
            ('previous_latency_p95_ms', sa.Float, '95th percentile call latency of the previous version (ms).'),
            ('cost_per_call_usd', sa.Float, 'Mean cost per call (reported, else tokens x price table).'),
            ('previous_cost_per_call_usd', sa.Float, 'Mean cost per call of the previous version.'),
            ('error_rate', sa.Float, "Share of the version's calls in status error."),
            ('previous_error_rate', sa.Float, "Share of the previous version's calls in status error."),
            ('output_tokens_mean', sa.Float, 'Mean output tokens per call.'),
            ('previous_output_tokens_mean', sa.Float, 'Mean output tokens per call of the previous version.'),
            ('latency_p_value', sa.Float, 'Mann-Whitney U (two-sided) on call latency; null when not judged.'),
            ('cost_p_value', sa.Float, 'Mann-Whitney U (two-sided) on cost per call.'),
            ('error_p_value', sa.Float, "Fisher's exact test on the error counts."),
            ('output_tokens_p_value', sa.Float, 'Mann-Whitney U (two-sided) on output tokens.'),
            ('mean_score', sa.Float, 'Mean online eval score of the version (null until online evals publish scores).'),
            ('verdict', sa.Text, 'regression (significantly slower, costlier or failing more), changed (significant differences in the other direction or in output length), no_change, or insufficient_samples (fewer than comparison_min_samples calls on either side).'),
            ('reasons', sa.Text, "The significant differences, e.g. 'output tokens down (p=1e-40)'."),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('route', 'prompt_name', 'prompt_version'),
    ),
    'retrieval_log': (
        'One row per retrieval span: query, documents, scores, ranks, previews and quality flags.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('trace_id', sa.Text, 'Trace of the retrieval.'),
            ('span_id', sa.Text, 'The retrieval span.'),
            ('route', sa.Text, 'Route of the request.'),
            ('span_name', sa.Text, 'Name of the retrieval span.'),
            ('start_time', sa.DateTime, 'Start of the retrieval.'),
            ('latency_ms', sa.Float, 'Duration of the retrieval in ms.'),
            ('status', sa.Text, 'Status of the span.'),
            ('query', sa.Text, 'The query (span input), first 1000 characters.'),
            ('document_count', sa.BigInteger, 'Documents returned.'),
            ('document_ids', sa.Text, 'JSON list of the document ids, in rank order.'),
            ('scores', sa.Text, 'JSON list of their scores (null entries when not reported).'),
            ('ranks', sa.Text, 'JSON list of their ranks (1-based, in the order returned).'),
            ('previews', sa.Text, 'JSON list of the first 120 characters of each document.'),
            ('top_score', sa.Float, 'Highest score (null when none).'),
            ('no_documents', sa.Boolean, 'Nothing was retrieved.'),
            ('all_below_threshold', sa.Boolean, 'Documents were returned but every score is below the low-score threshold.'),
            ('duplicate_documents', sa.Boolean, 'A document id appears more than once.'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('trace_id', 'span_id'),
    ),
    'retrieval_rollup_hourly': (
        'Per hour and route: retrievals, empty and low-score rates, mean top score.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('route', sa.Text, "Route of the requests; '(all)' for the row over every route."),
            ('retrievals', sa.BigInteger, 'Retrieval spans.'),
            ('empty_rate', sa.Float, 'Share of retrievals with no documents.'),
            ('low_score_rate', sa.Float, 'Share of retrievals with documents all below the low-score threshold.'),
            ('duplicate_rate', sa.Float, 'Share of retrievals returning a document twice.'),
            ('mean_top_score', sa.Float, 'Mean of the top score (retrievals with scores).'),
            ('mean_documents', sa.Float, 'Mean documents per retrieval.'),
            ('error_rate', sa.Float, 'Share of retrieval spans in status error.'),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('route',),
    ),
    'session_rollup_daily': (
        'Per session and day: user, first / last seen, turns, errors, tokens, cost, routes, whether it ended on an error.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('session_id', sa.Text, 'The session (requests without a session are not listed).'),
            ('user_id', sa.Text, "The session's user (the smallest id when a session has several)."),
            ('first_seen', sa.DateTime, "Start of the session's first request of the day."),
            ('last_seen', sa.DateTime, 'End of its last request of the day.'),
            ('turns', sa.BigInteger, 'Requests of the session in the day.'),
            ('errors', sa.BigInteger, 'Requests in status error.'),
            ('input_tokens', sa.BigInteger, 'Input tokens of its requests.'),
            ('output_tokens', sa.BigInteger, 'Output tokens of its requests.'),
            ('cost_usd', sa.Float, 'Cost of its requests in USD.'),
            ('routes', sa.Text, 'Routes the session used, sorted, comma-separated.'),
            ('ended_on_error', sa.Boolean, "Whether the session's last request of the day failed."),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('session_id',),
    ),
    'traces': (
        'One row per request (trace): timing, status and first error, spans per kind, tokens, cost, models, prompt versions, time per step kind.',
        [
            ('window_start', sa.DateTime, 'Start of the window (UTC, inclusive): the hour (the day for daily tables).'),
            ('window_end', sa.DateTime, 'End of the window (UTC, exclusive).'),
            ('trace_id', sa.Text, "The request's trace id (one row per request, store/traces.py's definition)."),
            ('start_time', sa.DateTime, "Request start: the root span's start (rootless trace: its first span's)."),
            ('end_time', sa.DateTime, "Request end: the root span's end (rootless trace: its last span's end)."),
            ('latency_ms', sa.Float, 'end_time - start_time in ms.'),
            ('route', sa.Text, "The root's route, else any route of the trace, else '(none)'."),
            ('service_name', sa.Text, "The root's service, else any service of the trace."),
            ('user_id', sa.Text, "The root's user, else any user of the trace."),
            ('session_id', sa.Text, "The root's session, else any session of the trace."),
            ('status', sa.Text, 'error when any span of the request (in the window) failed, else ok.'),
            ('error_class', sa.Text, "Class of the first error where it originated (monitoring's classifier + the settings' error_rules); null when ok."),
            ('error_span', sa.Text, 'Name of the span where the first error originated; null when ok.'),
            ('error_message', sa.Text, 'Message of that first error (first 500 characters).'),
            ('span_count', sa.BigInteger, 'Spans of the request starting in the window.'),
            ('llm_spans', sa.BigInteger, 'Spans of kind llm.'),
            ('retrieval_spans', sa.BigInteger, 'Spans of kind retrieval.'),
            ('tool_spans', sa.BigInteger, 'Spans of kind tool.'),
            ('agent_spans', sa.BigInteger, 'Spans of kind agent.'),
            ('chain_spans', sa.BigInteger, 'Spans of kind chain.'),
            ('embedding_spans', sa.BigInteger, 'Spans of kind embedding.'),
            ('reranker_spans', sa.BigInteger, 'Spans of kind reranker.'),
            ('guardrail_spans', sa.BigInteger, 'Spans of kind guardrail.'),
            ('other_spans', sa.BigInteger, 'Spans of kind other.'),
            ('input_tokens', sa.BigInteger, "Input tokens of the request's llm and embedding spans (including cached)."),
            ('output_tokens', sa.BigInteger, 'Output tokens.'),
            ('cached_input_tokens', sa.BigInteger, 'Cached input tokens.'),
            ('cost_usd', sa.Float, 'Cost in USD: the app-reported cost_usd of each call, else tokens x price table.'),
            ('models', sa.Text, "Models of the request's llm calls, sorted, comma-separated."),
            ('prompt_versions', sa.Text, 'prompt_name:prompt_version pairs of its llm calls, sorted, comma-separated.'),
            ('llm_ms', sa.Float, "Wall-clock time in ms during which at least one llm step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('retrieval_ms', sa.Float, "Wall-clock time in ms during which at least one retrieval step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('tool_ms', sa.Float, "Wall-clock time in ms during which at least one tool step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('embedding_ms', sa.Float, "Wall-clock time in ms during which at least one embedding step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('reranker_ms', sa.Float, "Wall-clock time in ms during which at least one reranker step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('guardrail_ms', sa.Float, "Wall-clock time in ms during which at least one guardrail step of the request was running (union of their intervals: parallel calls are not counted twice); for sequential steps this is the step kind's share of the critical path."),
            ('computed_at', sa.DateTime, 'When this row was computed (UTC).'),
        ],
        ('trace_id',),
    ),
}

def upgrade() -> None:
    for name, (comment, columns, grain) in TABLES.items():
        op.create_table(
            name,
            *(sa.Column(c, type_, nullable=c not in ("window_start", "window_end"), comment=text)
              for c, type_, text in columns),
            comment=comment,
        )
        op.create_index(f"ix_{name}_window_start", name, ["window_start"])
        add_grain_key(name, grain)


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        drop_grain_key(name)
        op.drop_index(f"ix_{name}_window_start", table_name=name)
        op.drop_table(name)
