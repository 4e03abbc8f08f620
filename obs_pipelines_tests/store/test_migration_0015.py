"""Migration 0015 (issue 23): the wide eval_scores rows of an existing store move into the compact tables and
read back from the eval_scores view as they were."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from obs_pipelines.online_evals.tables import eval_scores
from obs_pipelines.store import db
from obs_pipelines_tests.online_evals.test_score_store import H, _rows


def test_migration_0015_moves_the_wide_rows_into_the_compact_tables_unchanged(empty_db_url):
    from obs_pipelines.store import migrate

    engine = db.make_engine(empty_db_url)
    migrate.upgrade(engine, revision="0014")
    wide = sa.Table("eval_scores", sa.MetaData(), autoload_with=engine)
    rows = [{k: v for k, v in r.items() if k != "passed"} for r in _rows()]
    rows[3].update(route="other", model=None)  # (one response: its rows agree on their dimensions)
    rows[2].update(route="other", model=None)
    with engine.begin() as conn:
        conn.execute(sa.insert(wide), [{**r, "passed": None if r["score"] is None else r["score"] >= 0.5} for r in rows])
    migrate.upgrade(engine)
    with engine.connect() as conn:
        back = pd.DataFrame(conn.execute(sa.select(eval_scores).order_by(eval_scores.c.trace_id,
                                                                          eval_scores.c.scorer)).mappings().all())
    want = pd.DataFrame(rows).sort_values(["trace_id", "scorer"]).reset_index(drop=True)
    for column in ("trace_id", "span_id", "route", "model", "scorer", "rule", "reason", "details", "threshold"):
        assert back[column].tolist() == want[column].tolist(), column
    assert back["passed"].tolist()[:2] == [False, True]
    assert set(pd.to_datetime(back["scored_at"])) == {pd.Timestamp(H + timedelta(minutes=70, seconds=30))}
    engine.dispose()
