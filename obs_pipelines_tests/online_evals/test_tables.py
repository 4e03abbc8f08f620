"""The migrations make exactly the online evals tables the code defines, with unique keys on their grains."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from obs_pipelines.cli_db import all_metadata
from obs_pipelines.online_evals.tables import (
    eval_hours,
    eval_responses,
    eval_results,
    judge_calls,
    online_evals_metadata,
    score_rollup_daily,
    score_rollup_hourly,
)
from obs_pipelines.store import db, migrate

pytestmark = pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
T0, T1 = datetime(2026, 3, 2, 10), datetime(2026, 3, 2, 11)


def test_migrations_at_head_produce_exactly_the_online_evals_tables(store):
    db.create_tables(store.engine)
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": migrate.include_object, "compare_type": True})
        diff = compare_metadata(ctx, online_evals_metadata)
    # the other phases' tables are in the store too (and appear as "removed" here): only ours are compared
    ours = [d for d in diff if any(t in repr(d) for t in online_evals_metadata.tables)]
    assert ours == []
    assert online_evals_metadata in all_metadata()


@pytest.mark.parametrize(("table", "row"), [
    # eval_scores is a view: its grain is eval_responses' (one row per hour, trace and span) and eval_results'
    (eval_responses, {"response": 1, "trace_id": "t", "span_id": "s"}),
    (eval_results, {"response": 1, "scorer_ref": 1}),
    (score_rollup_hourly, {"scorer": "refusal", "dimension": "overall", "dimension_value": None}),
    (eval_hours, {"selection": "x"}),
    (score_rollup_daily, {"scorer": "refusal", "dimension": "route", "dimension_value": "rag_qa"}),
    (judge_calls, {"trace_id": "t", "span_id": "s", "scorer": "judge_safety", "scorer_version": "1@m"}),
])
def test_every_online_evals_table_refuses_a_second_row_on_its_grain(store, table, row):
    db.create_tables(store.engine)
    row = {"window_start": T0, "window_end": T1, **row} if "window_start" in table.c else row
    with store.engine.begin() as conn:
        conn.execute(sa.insert(table), [row])
    again = {**row, "response": 2} if table is eval_responses else row  # the same response under another number
    with pytest.raises(sa.exc.IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(sa.insert(table), [again])
