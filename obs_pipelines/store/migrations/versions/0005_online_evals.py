"""the online evals phase's tables: eval_scores (every production response scored by the selected scorers),
score_rollup_hourly / _daily, eval_hours (what each hour was scored with) and judge_calls (every LLM-judge call;
online_evals/tables.py), each with its window index and a unique key on its grain.

A frozen snapshot of online_evals/tables.py when the phase shipped: later changes come as new revisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import add_grain_key, drop_grain_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# the columns of both score rollups (hourly and daily)
_ROLLUP = [
    ('window_start', sa.DateTime, False, 'Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily).'),
    ('window_end', sa.DateTime, False, 'End of the window (UTC, exclusive).'),
    ('scorer', sa.Text, False, 'Scorer name, or feedback:<name> for user feedback from the feedback table.'),
    ('scorer_version', sa.Text, True, "Scorer version of the window's scores (null for feedback)."),
    ('dimension', sa.Text, False, 'overall, route, model or prompt_version.'),
    ('dimension_value', sa.Text, True, "Value of the dimension ('(none)' when missing); null on the overall row."),
    ('response_count', sa.BigInteger, True, 'Responses the scorer ran on (feedback: feedback records).'),
    ('scored_count', sa.BigInteger, True, 'Responses with a score (not null).'),
    ('null_count', sa.BigInteger, True, 'Responses the scorer did not apply to (null score, no error).'),
    ('error_count', sa.BigInteger, True, 'Responses on which the scorer failed.'),
    ('mean_score', sa.Float, True, 'Mean score (feedback: mean value).'),
    ('p10_score', sa.Float, True, '10th percentile of the scores (linear interpolation, = percentile_cont).'),
    ('p50_score', sa.Float, True, 'Median score.'),
    ('below_threshold_share', sa.Float, True, "Share of scored responses below the rule's threshold."),
    ('threshold', sa.Float, True, 'The threshold (the lowest one if rules differ).'),
    ('computed_at', sa.DateTime, True, 'When this row was computed (UTC).'),
]

# table -> (comment, [(column, type, nullable, comment)], extra indexes, grain columns after window_start)
TABLES = {
    'eval_scores': (
        'Every production response scored by the selected scorers: one row per (response span, scorer, scorer version).',
        [
            ('window_start', sa.DateTime, False, 'Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily).'),
            ('window_end', sa.DateTime, False, 'End of the window (UTC, exclusive).'),
            ('trace_id', sa.Text, False, 'Trace of the scored response.'),
            ('span_id', sa.Text, False, "The scored span: the request's root span, or an llm / other span a rule names."),
            ('span_kind', sa.Text, True, "'root' for the request's root span, else the span's kind (llm ...)."),
            ('route', sa.Text, True, "Route of the trace ('(none)' when unknown)."),
            ('model', sa.Text, True, "Model of the span, or for a root span the model of the trace's last llm call."),
            ('prompt_version', sa.Text, True, 'Prompt version, taken like the model.'),
            ('rule', sa.Text, True, 'Settings rule that selected the scorer for this response.'),
            ('scorer', sa.Text, False, 'Scorer name (docs/online_evals.md).'),
            ('scorer_version', sa.Text, False, 'Scorer code version + hash of its options: a change re-scores its rows.'),
            ('score', sa.Float, True, 'Score in [0, 1] (1 = best); null when the scorer does not apply or failed.'),
            ('passed', sa.Boolean, True, 'score >= threshold; null with the score.'),
            ('threshold', sa.Float, True, 'Threshold of the rule for this scorer.'),
            ('reason', sa.Text, True, "Why the score is null when the scorer does not apply (e.g. 'no context')."),
            ('details', sa.Text, True, "JSON of the scorer's details (findings are masked)."),
            ('error', sa.Text, True, 'Exception of a scorer that failed on this response (the partition goes on).'),
            ('scored_at', sa.DateTime, True, 'When the score was computed (UTC).'),
        ],
        [('ix_eval_scores_trace_id', ['trace_id']), ('ix_eval_scores_window_start', ['window_start'])],
        ('trace_id', 'span_id', 'scorer', 'scorer_version'),
    ),
    'score_rollup_hourly': (
        'Scores per hour by scorer, overall and by route, model and prompt version; user feedback alongside.',
        _ROLLUP,
        [('ix_score_rollup_hourly_window_start', ['window_start'])],
        ('scorer', 'dimension', 'dimension_value'),
    ),
    'eval_hours': (
        'What each hour was scored with and from: a later run finding the same selection, spans and feedback skips the hour.',
        [
            ('window_start', sa.DateTime, False, 'Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily).'),
            ('window_end', sa.DateTime, False, 'End of the window (UTC, exclusive).'),
            ('selection', sa.Text, True, 'Hash of the rules, the scorer versions and the text bound the hour was scored with.'),
            ('span_count', sa.BigInteger, True, 'Spans starting in the hour when it was scored.'),
            ('last_ingested_at', sa.DateTime, True, 'Newest ingested_at of those spans.'),
            ('feedback_count', sa.BigInteger, True, "Feedback records on the hour's requests when it was scored."),
            ('responses', sa.BigInteger, True, 'Responses scored.'),
            ('score_rows', sa.BigInteger, True, 'Rows of eval_scores for the hour.'),
            ('scored_at', sa.DateTime, True, 'When the hour was scored (UTC).'),
        ],
        [('ix_eval_hours_window_start', ['window_start'])],
        (),
    ),
    'judge_calls': (
        'Every LLM-judge call behind a judge score: prompt, raw answer, tokens, cost, latency, status.',
        [
            ('window_start', sa.DateTime, False, 'Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily).'),
            ('window_end', sa.DateTime, False, 'End of the window (UTC, exclusive).'),
            ('trace_id', sa.Text, False, 'Trace of the judged response.'),
            ('span_id', sa.Text, False, 'The judged span.'),
            ('scorer', sa.Text, False, 'Judge scorer (judge_factuality ...).'),
            ('scorer_version', sa.Text, False, 'Its version (with the judge model).'),
            ('model', sa.Text, True, 'Judge model asked.'),
            ('prompt', sa.Text, True, 'The prompt sent.'),
            ('raw_answer', sa.Text, True, "The judge's answer as received."),
            ('status', sa.Text, True, 'ok, error or timeout (after the retries).'),
            ('error', sa.Text, True, 'What went wrong (HTTP status and body, timeout ...).'),
            ('input_tokens', sa.BigInteger, True, 'Prompt tokens the endpoint reported.'),
            ('output_tokens', sa.BigInteger, True, 'Completion tokens the endpoint reported.'),
            ('cost_usd', sa.Float, True, 'Cost from the judge prices in the settings (null when not set).'),
            ('latency_ms', sa.Float, True, 'Wall time of the call, retries and waits included.'),
            ('attempts', sa.BigInteger, True, 'Requests sent (1 + retries).'),
            ('called_at', sa.DateTime, True, 'When the call was made (UTC).'),
        ],
        [('ix_judge_calls_window_start', ['window_start'])],
        ('trace_id', 'span_id', 'scorer', 'scorer_version'),
    ),
    'score_rollup_daily': (
        "Scores per day by scorer, overall and by route, model and prompt version, recomputed from the day's eval_scores (percentiles exact); feedback alongside.",
        _ROLLUP,
        [('ix_score_rollup_daily_window_start', ['window_start'])],
        ('scorer', 'dimension', 'dimension_value'),
    ),
}


NEWEST = {"score_rollup_hourly": "computed_at", "score_rollup_daily": "computed_at", "judge_calls": "called_at"}  # newest row kept per grain


def upgrade() -> None:
    for name, (comment, columns, indexes, grain) in TABLES.items():
        op.create_table(
            name,
            *(sa.Column(c, t, nullable=nullable, comment=text) for c, t, nullable, text in columns),
            comment=comment,
        )
        for index, cols in indexes:
            op.create_index(index, name, cols)
        add_grain_key(name, grain, newest_first=NEWEST.get(name, "scored_at"))


def downgrade() -> None:
    for name, (_comment, _columns, indexes, _grain) in TABLES.items():
        drop_grain_key(name)
        for index, _cols in indexes:
            op.drop_index(index, table_name=name)
        op.drop_table(name)
