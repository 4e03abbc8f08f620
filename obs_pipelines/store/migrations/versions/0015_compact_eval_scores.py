"""compact eval_scores (issue 23: the wide table was larger than spans): eval_scores becomes a view, with the same
columns, over eval_responses (each scored response once, numbered by hour), eval_scorer_refs (each rule / scorer
/ version / threshold once), eval_texts (each reason / details text once) and eval_results (one narrow row per
response and scorer ref; passed is computed by the view, scored_at kept as seconds after the window start).
Existing scores are moved over.

Also window_writes (when each derived table's window was last written) and step_inputs (the fingerprint of the
inputs each daily asset / alert rule window was computed from): a re-run skips what did not change.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import drop_grain_key, grain_key_name, hashed_grain_expressions

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

HOUR_BITS = 24
WINDOW_START = "Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily)."
WINDOW_END = "End of the window (UTC, exclusive)."
SCORE_COMMENTS = {
    "trace_id": "Trace of the scored response.",
    "span_id": "The scored span: the request's root span, or an llm / other span a rule names.",
    "span_kind": "'root' for the request's root span, else the span's kind (llm ...).",
    "route": "Route of the trace ('(none)' when unknown).",
    "model": "Model of the span, or for a root span the model of the trace's last llm call.",
    "prompt_version": "Prompt version, taken like the model.",
    "rule": "Settings rule that selected the scorer for this response.",
    "scorer": "Scorer name (docs/online_evals.md).",
    "scorer_version": "Scorer code version + hash of its options: a change re-scores its rows.",
    "score": "Score in [0, 1] (1 = best); null when the scorer does not apply or failed.",
    "passed": "score >= threshold; null with the score.",
    "threshold": "Threshold of the rule for this scorer.",
    "reason": "Why the score is null when the scorer does not apply (e.g. 'no context').",
    "details": "JSON of the scorer's details (findings are masked).",
    "error": "Exception of a scorer that failed on this response (the partition goes on).",
    "scored_at": "When the score was computed (UTC).",
}
OLD_COLUMNS = [("window_start", sa.DateTime, False, WINDOW_START), ("window_end", sa.DateTime, False, WINDOW_END),
               ("trace_id", sa.Text, False, None), ("span_id", sa.Text, False, None), ("span_kind", sa.Text, True, None),
               ("route", sa.Text, True, None), ("model", sa.Text, True, None), ("prompt_version", sa.Text, True, None),
               ("rule", sa.Text, True, None), ("scorer", sa.Text, False, None), ("scorer_version", sa.Text, False, None),
               ("score", sa.Float, True, None), ("passed", sa.Boolean, True, None), ("threshold", sa.Float, True, None),
               ("reason", sa.Text, True, None), ("details", sa.Text, True, None), ("error", sa.Text, True, None),
               ("scored_at", sa.DateTime, True, None)]
OLD_COMMENT = ("Every production response scored by the selected scorers: one row per (response span, scorer, "
               "scorer version).")
OLD_GRAIN = ("trace_id", "span_id", "scorer", "scorer_version")


def _text(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable, comment=SCORE_COMMENTS[name])


def _scored_at(dialect: str) -> str:
    if dialect == "postgresql":
        return "r.window_start + x.scored_at * interval '1 second'"
    # the text form SQLAlchemy's DateTime stores and reads on SQLite
    return "strftime('%Y-%m-%d %H:%M:%S.000000', r.window_start, x.scored_at || ' seconds')"


VIEW_FROM = """FROM eval_responses r
JOIN eval_results x ON x.response = r.response
JOIN eval_scorer_refs k ON k.id = x.scorer_ref
LEFT JOIN eval_texts tr ON tr.id = x.reason_ref
LEFT JOIN eval_texts td ON td.id = x.details_ref"""


def _view_select(dialect: str) -> str:
    return ("r.window_start AS window_start, r.window_end AS window_end, r.trace_id AS trace_id, "
            "r.span_id AS span_id, r.span_kind AS span_kind, r.route AS route, r.model AS model, "
            "r.prompt_version AS prompt_version, k.rule AS rule, k.scorer AS scorer, "
            "k.scorer_version AS scorer_version, x.score AS score, x.score >= k.threshold AS passed, "
            "k.threshold AS threshold, tr.text AS reason, td.text AS details, x.error AS error, "
            f"{_scored_at(dialect)} AS scored_at")


def _view_sql(dialect: str) -> str:
    return f"CREATE VIEW eval_scores AS\nSELECT {_view_select(dialect)}\n{VIEW_FROM}"


def _hour_index(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(floor(EXTRACT(EPOCH FROM {column}) / 3600) AS BIGINT)"
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


def _seconds_after(dialect: str, column: str, start: str) -> str:
    if dialect == "postgresql":
        return f"CAST(floor(EXTRACT(EPOCH FROM ({column} - {start}))) AS INTEGER)"
    # whole seconds of each (strftime's %s drops the fraction): exact, where julianday's float is not
    return f"(CAST(strftime('%s', {column}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"


def _same(dialect: str, a: str, b: str) -> str:
    return f"{a} IS NOT DISTINCT FROM {b}" if dialect == "postgresql" else f"{a} IS {b}"


def _create_tables() -> None:
    op.create_table(
        "eval_responses",
        sa.Column("window_start", sa.DateTime, nullable=False, comment=WINDOW_START),
        sa.Column("window_end", sa.DateTime, nullable=False, comment=WINDOW_END),
        sa.Column("response", sa.BigInteger, nullable=False, autoincrement=False,
                  comment="The response's number: the hour (epoch hours) times 2^24 plus its rank in the hour."),
        _text("trace_id", False), _text("span_id", False), _text("span_kind"), _text("route"), _text("model"),
        _text("prompt_version"),
        sa.PrimaryKeyConstraint("response", name="pk_eval_responses"),
        comment="The scored responses of each hour, once each (eval_scores' response columns).",
    )
    op.create_index("ix_eval_responses_window_start", "eval_responses", ["window_start"])
    # the grain, trace first so that it finds a trace's scores too; the ids are not hashed: the spans table's
    # primary key already holds them whole in a btree
    op.create_index(grain_key_name("eval_responses"), "eval_responses", ["trace_id", "span_id", "window_start"],
                    unique=True)
    op.create_table(
        "eval_scorer_refs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Referenced by eval_results.scorer_ref."),
        sa.Column("ref_key", sa.Text, nullable=False,
                  comment="JSON of [rule, scorer, scorer_version, threshold]: one row per set."),
        _text("rule"), _text("scorer", False), _text("scorer_version", False),
        sa.Column("threshold", sa.Float, nullable=True, comment=SCORE_COMMENTS["threshold"]),
        sa.UniqueConstraint("ref_key", name="uq_eval_scorer_refs_ref_key"),
        comment="Each (rule, scorer, scorer version, threshold) eval_results refers to, stored once.",
    )
    op.create_table(
        "eval_texts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Referenced by eval_results."),
        sa.Column("text_hash", sa.Text, nullable=False, comment="md5 of the text: one row per text."),
        sa.Column("text", sa.Text, nullable=False, comment="A reason or a details JSON of eval_scores."),
        sa.UniqueConstraint("text_hash", name="uq_eval_texts_text_hash"),
        comment="The reasons and details texts of eval_results, each stored once (most repeat: 'no context').",
    )
    op.create_table(
        "eval_results",
        sa.Column("response", sa.BigInteger, nullable=False, autoincrement=False,
                  comment="eval_responses.response of the scored response."),
        sa.Column("score", sa.Float, nullable=True, comment=SCORE_COMMENTS["score"]),
        sa.Column("scorer_ref", sa.Integer, nullable=False, autoincrement=False,
                  comment="eval_scorer_refs.id: rule, scorer, version, threshold."),
        sa.Column("scored_at", sa.Integer, nullable=True,
                  comment="When the score was computed: seconds after the response's window_start."),
        sa.Column("reason_ref", sa.Integer, nullable=True, comment="eval_texts.id of the reason (why the score is null)."),
        sa.Column("details_ref", sa.Integer, nullable=True,
                  comment="eval_texts.id of the details JSON (null when they say nothing)."),
        _text("error"),
        sa.PrimaryKeyConstraint("response", "scorer_ref", name="pk_eval_results"),
        comment="One narrow row per (response, scorer ref): eval_scores' score columns.",
        sqlite_with_rowid=False,
    )


def _move_rows(dialect: str) -> None:
    """The old table's rows into the compact tables (refs keyed as score_store.ref_key keys them)."""
    bind = op.get_bind()
    sets = bind.execute(sa.text("SELECT DISTINCT rule, scorer, scorer_version, threshold FROM eval_scores_wide")).all()
    if not sets:
        return
    refs = sa.table("eval_scorer_refs", sa.column("ref_key"), sa.column("rule"), sa.column("scorer"),
                    sa.column("scorer_version"), sa.column("threshold"))
    op.bulk_insert(refs, [{"ref_key": json.dumps([rule, str(scorer), str(version),
                                                  None if threshold is None else float(threshold)]),
                           "rule": rule, "scorer": scorer, "scorer_version": version, "threshold": threshold}
                          for rule, scorer, version, threshold in sets])
    hour = _hour_index(dialect, "window_start")
    op.execute(f"""INSERT INTO eval_responses (window_start, window_end, response, trace_id, span_id, span_kind, route,
                                               model, prompt_version)
SELECT window_start, window_end, hour * {1 << HOUR_BITS} + row_number() OVER (PARTITION BY hour ORDER BY trace_id, span_id) - 1,
       trace_id, span_id, span_kind, route, model, prompt_version
FROM (SELECT window_start, MAX(window_end) AS window_end, trace_id, span_id, MAX(span_kind) AS span_kind,
             MAX(route) AS route, MAX(model) AS model, MAX(prompt_version) AS prompt_version, {hour} AS hour
      FROM eval_scores_wide GROUP BY window_start, trace_id, span_id) AS responses""")
    if dialect == "sqlite":  # md5() as PostgreSQL has it (hex of the UTF-8 bytes), for this connection
        bind.connection.dbapi_connection.create_function(
            "md5", 1, lambda t: None if t is None else hashlib.md5(str(t).encode("utf-8", "surrogatepass")).hexdigest(),
            deterministic=True)
    op.execute("""INSERT INTO eval_texts (text_hash, text)
SELECT md5(t), t FROM (SELECT reason AS t FROM eval_scores_wide WHERE reason IS NOT NULL
                       UNION SELECT details FROM eval_scores_wide WHERE details IS NOT NULL) AS texts""")
    op.execute(f"""INSERT INTO eval_results (response, score, scorer_ref, scored_at, reason_ref, details_ref, error)
SELECT r.response, s.score, k.id, {_seconds_after(dialect, 's.scored_at', 's.window_start')},
       (SELECT id FROM eval_texts WHERE text_hash = md5(s.reason)),
       (SELECT id FROM eval_texts WHERE text_hash = md5(s.details)), s.error
FROM eval_scores_wide s
JOIN eval_responses r ON r.window_start = s.window_start AND r.trace_id = s.trace_id AND r.span_id = s.span_id
JOIN eval_scorer_refs k ON k.scorer = s.scorer AND k.scorer_version = s.scorer_version
 AND {_same(dialect, 'k.rule', 's.rule')} AND {_same(dialect, 'k.threshold', 's.threshold')}""")


def _create_fingerprint_tables() -> None:
    op.create_table(
        "window_writes",
        sa.Column("table_name", sa.Text, nullable=False), sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("window_end", sa.DateTime, nullable=False), sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("written_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("table_name", "window_start", name="pk_window_writes"),
    )
    op.create_table(
        "step_inputs",
        sa.Column("step", sa.Text, nullable=False), sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False), sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("step", "window_start", name="pk_step_inputs"),
    )


def upgrade() -> None:
    _create_fingerprint_tables()
    dialect = op.get_bind().dialect.name
    drop_grain_key("eval_scores")
    op.drop_index("ix_eval_scores_trace_id", table_name="eval_scores")
    op.drop_index("ix_eval_scores_window_start", table_name="eval_scores")
    op.rename_table("eval_scores", "eval_scores_wide")
    _create_tables()
    _move_rows(dialect)
    op.drop_table("eval_scores_wide")
    op.execute(_view_sql(dialect))


def downgrade() -> None:
    op.drop_table("step_inputs")
    op.drop_table("window_writes")
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW eval_scores")
    op.create_table("eval_scores", *(sa.Column(n, t, nullable=nullable, comment=c or SCORE_COMMENTS[n])
                                     for n, t, nullable, c in OLD_COLUMNS), comment=OLD_COMMENT)
    names = ", ".join(n for n, *_ in OLD_COLUMNS)
    op.execute(f"INSERT INTO eval_scores ({names}) SELECT {_view_select(dialect)} {VIEW_FROM}")
    op.drop_table("eval_results")
    op.drop_table("eval_texts")
    op.drop_table("eval_scorer_refs")
    drop_grain_key("eval_responses")
    op.drop_index("ix_eval_responses_window_start", table_name="eval_responses")
    op.drop_table("eval_responses")
    op.create_index("ix_eval_scores_trace_id", "eval_scores", ["trace_id"])
    op.create_index("ix_eval_scores_window_start", "eval_scores", ["window_start"])
    op.create_index(grain_key_name("eval_scores"), "eval_scores",
                    [sa.text(e) for e in hashed_grain_expressions(OLD_GRAIN, dialect)], unique=True)
