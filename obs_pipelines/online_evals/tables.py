"""Tables written by the online evals phase (SQLAlchemy Core, their own MetaData), published for the other
phases (offline evals picks low-scoring traces from ``eval_scores``; alert rules read the rollups).

* ``eval_scores``: one row per (response span, scorer, scorer version) of an hour; the hour is the one the
  response span starts in. A view (migration 0015, issue 23) over the compact tables below, with the columns
  it always had: every reader selects from it as before; rows are written through ``online_evals.score_store``.
* ``eval_responses``: one row per scored response of an hour (trace, span, kind, route, model, prompt version),
  keyed by ``response``, a number that orders the responses of an hour and encodes the hour (score_store.py).
* ``eval_scorer_refs``: the (rule, scorer, scorer version, threshold) sets, each stored once and referenced by id.
* ``eval_results``: one narrow row per (response, scorer ref): score, reason, details (only when they say
  something) as ids of ``eval_texts`` (each text once), error, scored_at as seconds after the window start.
  Primary key (response, scorer_ref): the grain.
* ``eval_hours``: per hour, what it was scored with (selection hash) and from (span count, newest ingest,
  feedback count): a backfill finding all of them unchanged skips the hour without reading it. Grain:
  window_start.
* ``score_rollup_daily``: the same per day, recomputed from the day's ``eval_scores`` (exact percentiles).
* ``judge_calls``: every LLM-judge call behind a judge score (the evaluator is auditable). Grain as
  eval_scores.
* ``failure_clusters_daily``: per day, the clusters of the day's failing requests (a score below its rule's
  threshold, or negative feedback) by input text, each with its share of the failures and of the traffic
  (online_evals/clusters.py). Grain: window_start, cluster.
* ``score_rollup_hourly``: per hour, scorer and dimension (overall, route, model, prompt_version, and the
  route x model x prompt version combination, whose values are also in the route / model / prompt_version
  columns for the alert rules to group by): counts, mean, p10, share below the threshold, nulls, errors; user
  feedback from the ``feedback`` table as scorers named ``feedback:<name>``. Grain key: window_start, scorer,
  dimension, dimension_value.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from obs_pipelines.store.tables import COLUMN_TYPES, TableSpecs

online_evals_metadata = sa.MetaData()


_WINDOW = [
    ("window_start", "datetime", "Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily)."),
    ("window_end", "datetime", "End of the window (UTC, exclusive)."),
]
_SCORES = [
    *_WINDOW,
    ("trace_id", "text", "Trace of the scored response."),
    ("span_id", "text", "The scored span: the request's root span, or an llm / other span a rule names."),
    ("span_kind", "text", "'root' for the request's root span, else the span's kind (llm ...)."),
    ("route", "text", "Route of the trace ('(none)' when unknown)."),
    ("model", "text", "Model of the span, or for a root span the model of the trace's last llm call."),
    ("prompt_version", "text", "Prompt version, taken like the model."),
    ("rule", "text", "Settings rule that selected the scorer for this response."),
    ("scorer", "text", "Scorer name (docs/online_evals.md)."),
    ("scorer_version", "text", "Scorer code version + hash of its options: a change re-scores its rows."),
    ("score", "float", "Score in [0, 1] (1 = best); null when the scorer does not apply or failed."),
    ("passed", "bool", "score >= threshold; null with the score."),
    ("threshold", "float", "Threshold of the rule for this scorer."),
    ("reason", "text", "Why the score is null when the scorer does not apply (e.g. 'no context')."),
    ("details", "text", "JSON of the scorer's details (findings are masked)."),
    ("error", "text", "Exception of a scorer that failed on this response (the partition goes on)."),
    ("scored_at", "datetime", "When the score was computed (UTC)."),
]
_ROLLUP = [
    *_WINDOW,
    ("scorer", "text", "Scorer name, or feedback:<name> for user feedback from the feedback table."),
    ("scorer_version", "text", "Scorer version of the window's scores (null for feedback)."),
    ("dimension", "text", "overall, route, model, prompt_version, or route_model_prompt_version (the three at once)."),
    ("dimension_value", "text", "Value of the dimension ('(none)' when missing; route | model | prompt_version for "
     "the combination); null on the overall row."),
    ("route", "text", "The route of the row's responses (route and combination rows; null on the others)."),
    ("model", "text", "The model of the row's responses (model and combination rows; null on the others)."),
    ("prompt_version", "text", "The prompt version of the row's responses (prompt_version and combination rows; "
     "null on the others)."),
    ("response_count", "int", "Responses the scorer ran on (feedback: feedback records)."),
    ("scored_count", "int", "Responses with a score (not null)."),
    ("null_count", "int", "Responses the scorer did not apply to (null score, no error)."),
    ("error_count", "int", "Responses on which the scorer failed."),
    ("mean_score", "float", "Mean score (feedback: mean value)."),
    ("p10_score", "float", "10th percentile of the scores (linear interpolation, = percentile_cont)."),
    ("p50_score", "float", "Median score."),
    ("below_threshold_share", "float", "Share of scored responses below the rule's threshold."),
    ("threshold", "float", "The threshold (the lowest one if rules differ)."),
    ("computed_at", "datetime", "When this row was computed (UTC)."),
]

_HOURS = [
    *_WINDOW,
    ("selection", "text", "Hash of the rules, the scorer versions and the text bound the hour was scored with."),
    ("span_count", "int", "Spans starting in the hour when it was scored."),
    ("last_ingested_at", "datetime", "Newest ingested_at of those spans."),
    ("feedback_count", "int", "Feedback records on the hour's requests when it was scored."),
    ("responses", "int", "Responses scored."),
    ("score_rows", "int", "Rows of eval_scores for the hour."),
    ("scored_at", "datetime", "When the hour was scored (UTC)."),
]

_JUDGE = [
    *_WINDOW,
    ("trace_id", "text", "Trace of the judged response."),
    ("span_id", "text", "The judged span."),
    ("scorer", "text", "Judge scorer (judge_factuality ...)."),
    ("scorer_version", "text", "Its version (with the judge model)."),
    ("model", "text", "Judge model asked."),
    ("prompt", "text", "The prompt as sent (system and user messages, PII scrubbed; cut with a marker past max_stored_chars)."),
    ("raw_answer", "text", "The judge's answer as received, with any function-call arguments (NUL escaped; cut with a marker)."),
    ("status", "text", "ok, error or timeout (after the retries), or too_large (an answer over max_answer_bytes)."),
    ("error", "text", "What went wrong (HTTP status and body, timeout ...)."),
    ("input_tokens", "int", "Prompt tokens the endpoint reported."),
    ("output_tokens", "int", "Completion tokens the endpoint reported."),
    ("cost_usd", "float", "Cost: judge prices set by hand, else the price table (null for a model it does not know)."),
    ("latency_ms", "float", "Wall time of the call, retries and waits included."),
    ("attempts", "int", "Requests sent (1 + retries)."),
    ("called_at", "datetime", "When the call was made (UTC)."),
]

_CLUSTERS = [
    *_WINDOW,
    ("cluster", "int", "Rank of the cluster in the day: 0 holds the largest share of the failing requests."),
    ("label", "text", "Its three most distinctive terms (over-represented in its failing inputs vs the day's traffic)."),
    ("top_terms", "text", "JSON list of up to five distinctive terms."),
    ("failure_count", "int", "Failing requests in the cluster."),
    ("traffic_count", "int", "Requests of the day (failing or not) whose input falls in the cluster."),
    ("failure_share", "float", "failure_count / the day's failing requests."),
    ("traffic_share", "float", "traffic_count / the day's requests with an input."),
    ("lift", "float", "failure_share / traffic_share: above 1, the cluster fails more often than the app does."),
    ("failure_rate", "float", "failure_count / traffic_count."),
    ("top_route", "text", "The route most of its failing requests came from."),
    ("top_route_share", "float", "Share of its failing requests from that route."),
    ("top_scorers", "text", "JSON object: the scorers (feedback:<name> for feedback) its requests failed, with counts."),
    ("exemplar_trace_ids", "text", "JSON list: the failing requests closest to the cluster's centre."),
    ("exemplar_inputs", "text", "JSON list: their inputs (first 200 characters, personal data masked)."),
    ("computed_at", "datetime", "When this row was computed (UTC)."),
]

_SPECS = TableSpecs(online_evals_metadata)
TABLE_COLUMNS = _SPECS.columns


def _table(name: str, columns: list[tuple[str, str, str]], not_null: tuple[str, ...], description: str,
           *indexes: sa.Index) -> sa.Table:
    return _SPECS.table(name, columns, description, *indexes, not_null=not_null)


# eval_scores is a view (migration 0015): described on a MetaData of its own, so that no create_all makes it a
# table; its columns are those the readers and the UI have always seen
_VIEWS = TableSpecs(sa.MetaData())
eval_scores = _VIEWS.table("eval_scores", _SCORES, "Every production response scored by the selected scorers: one "
                           "row per (response span, scorer, scorer version); a view over eval_responses, "
                           "eval_results and eval_scorer_refs.", window_index=False,
                           not_null=("window_start", "window_end", "trace_id", "span_id", "scorer", "scorer_version"))
TABLE_COLUMNS[eval_scores.name] = _VIEWS.columns[eval_scores.name]

_RESPONSES = [
    *_WINDOW,
    ("response", "int", "The response's number: the hour (epoch hours) times 2^24 plus its rank in the hour."),
    *[c for c in _SCORES if c[0] in ("trace_id", "span_id", "span_kind", "route", "model", "prompt_version")],
]
# (the grain key, migration 0015: unique trace_id, span_id, window_start, which also finds a trace's scores)
eval_responses = _table("eval_responses", _RESPONSES, ("window_start", "window_end", "response", "trace_id", "span_id"),
                        "The scored responses of each hour, once each (eval_scores' response columns).")
eval_responses.c.response.autoincrement = False  # numbered by score_store, never by a sequence
eval_responses.append_constraint(sa.PrimaryKeyConstraint("response", name="pk_eval_responses"))
eval_responses.info["published_as"] = "eval_scores"  # its writes stamp eval_scores' windows (db.replace_windows)

eval_scorer_refs = sa.Table(
    "eval_scorer_refs", online_evals_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Referenced by eval_results.scorer_ref."),
    sa.Column("ref_key", sa.Text, nullable=False,
              comment="JSON of [rule, scorer, scorer_version, threshold]: one row per set."),
    *(sa.Column(n, COLUMN_TYPES[t], nullable=n not in ("scorer", "scorer_version"), comment=d)
      for n, t, d in _SCORES if n in ("rule", "scorer", "scorer_version", "threshold")),
    sa.UniqueConstraint("ref_key", name="uq_eval_scorer_refs_ref_key"),
    comment="Each (rule, scorer, scorer version, threshold) eval_results refers to, stored once.",
)

eval_texts = sa.Table(
    "eval_texts", online_evals_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Referenced by eval_results."),
    sa.Column("text_hash", sa.Text, nullable=False, comment="md5 of the text: one row per text."),
    sa.Column("text", sa.Text, nullable=False, comment="A reason or a details JSON of eval_scores."),
    sa.UniqueConstraint("text_hash", name="uq_eval_texts_text_hash"),
    comment="The reasons and details texts of eval_results, each stored once (most repeat: 'no context').",
)

EPOCH = datetime(1970, 1, 1)
HOUR_BITS = 24  # up to 16.7M responses an hour


def hour_base(start: datetime) -> int:
    """The first response number of the hour ``start`` falls in: epoch hours << HOUR_BITS."""
    return int((start - EPOCH).total_seconds() // 3600) << HOUR_BITS


def response_range(start: datetime, end: datetime) -> tuple[int, int]:
    """The response numbers of the hours in [start, end) (whole hours: eval_scores' windows)."""
    return hour_base(start), hour_base(end)


eval_results = sa.Table(
    "eval_results", online_evals_metadata,
    sa.Column("response", sa.BigInteger, nullable=False, comment="eval_responses.response of the scored response."),
    sa.Column("score", sa.Float, comment="Score in [0, 1] (1 = best); null when the scorer does not apply or failed."),
    sa.Column("scorer_ref", sa.Integer, nullable=False, comment="eval_scorer_refs.id: rule, scorer, version, threshold."),
    sa.Column("scored_at", sa.Integer, comment="When the score was computed: seconds after the response's window_start."),
    sa.Column("reason_ref", sa.Integer, comment="eval_texts.id of the reason (why the score is null)."),
    sa.Column("details_ref", sa.Integer, comment="eval_texts.id of the details JSON (null when they say nothing)."),
    sa.Column("error", sa.Text, comment="Exception of a scorer that failed on this response (the partition goes on)."),
    sa.PrimaryKeyConstraint("response", "scorer_ref", name="pk_eval_results"),
    comment="One narrow row per (response, scorer ref): eval_scores' score columns.",
    sqlite_with_rowid=False,
    # db.replace_windows deletes a window of this table by its range of response numbers
    info={"window_range": ("response", response_range), "published_as": "eval_scores"},
)
score_rollup_hourly = _table("score_rollup_hourly", _ROLLUP, ("window_start", "window_end", "scorer", "dimension"),
                             "Scores per hour by scorer, overall and by route, model and prompt version; user "
                             "feedback alongside.")

eval_hours = _table("eval_hours", _HOURS, ("window_start", "window_end"), "What each hour was scored with and "
                    "from: a later run finding the same selection, spans and feedback skips the hour.")

score_rollup_daily = _table("score_rollup_daily", _ROLLUP, ("window_start", "window_end", "scorer", "dimension"),
                            "Scores per day by scorer, overall and by route, model and prompt version, recomputed "
                            "from the day's eval_scores (percentiles exact); feedback alongside.")
judge_calls = _table("judge_calls", _JUDGE, ("window_start", "window_end", "trace_id", "span_id", "scorer",
                                             "scorer_version"),
                     "Every LLM-judge call behind a judge score: prompt, raw answer, tokens, cost, latency, status.")

failure_clusters_daily = _table("failure_clusters_daily", _CLUSTERS, ("window_start", "window_end", "cluster"),
                                "Clusters of the day's failing requests by input text, each with its share of the "
                                "failures and of the traffic: which kinds of question the app fails on.")

SCORE_COLUMNS = [c[0] for c in _SCORES]
JUDGE_COLUMNS = [c[0] for c in _JUDGE]
HOUR_COLUMNS = [c[0] for c in _HOURS]
ROLLUP_COLUMNS = [c[0] for c in _ROLLUP]

__all__ = ["HOUR_COLUMNS", "JUDGE_COLUMNS", "ROLLUP_COLUMNS", "SCORE_COLUMNS", "TABLE_COLUMNS", "eval_hours",
           "EPOCH", "HOUR_BITS", "eval_responses", "eval_results", "eval_scorer_refs", "eval_scores", "eval_texts", "hour_base",
           "response_range", "failure_clusters_daily", "judge_calls", "online_evals_metadata", "score_rollup_daily", "score_rollup_hourly"]
