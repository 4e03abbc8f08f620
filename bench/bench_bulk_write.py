"""Benchmark of the derived tables' write path (issue 23; run by hand, not by pytest): an hour of eval_scores
(``--rows``, default 62,000, the size the issue measured) replaced in its window through ``db.replace_window``
(store/bulk.py: COPY on PostgreSQL, DBAPI tuples on SQLite) against the previous path measured in the same run
(the frame turned into a list of dicts, SQLAlchemy's executemany), on SQLite and on PostgreSQL.

    .venv/bin/python bench/bench_bulk_write.py [--rows 62000] [--pg-url postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.online_evals.tables import eval_scores as _view  # noqa: E402
from obs_pipelines.store import db, locks  # noqa: E402
from obs_pipelines_tests.pg_schemas import private_schema  # noqa: E402

HOUR = datetime(2026, 3, 2, 8)
# eval_scores is a view over compact tables since migration 0015: the write path is measured on a table of its
# wide columns (what the issue measured), made by this bench
_META = sa.MetaData()
eval_scores = sa.Table("bench_eval_scores_wide", _META, *(sa.Column(c.name, c.type) for c in _view.columns))


def hour_of_scores(rows: int) -> pd.DataFrame:
    rng = random.Random(3)
    scorers = [f"scorer_{i}" for i in range(17)]
    records = []
    for i in range(rows):
        score = rng.random() if rng.random() > 0.1 else None
        records.append({
            "window_start": HOUR, "window_end": HOUR + timedelta(hours=1), "trace_id": f"{i // 17:032x}",
            "span_id": f"{i // 17:016x}", "span_kind": "root", "route": rng.choice(["rag_qa", "agent", "chat"]),
            "model": "gpt-4o-mini", "prompt_version": str(rng.randint(1, 5)), "rule": "responses",
            "scorer": scorers[i % 17], "scorer_version": "3", "score": score,
            "passed": None if score is None else score >= 0.5, "threshold": 0.5,
            "reason": None if score is not None else "no context",
            "details": '{"matched": 3, "total": 4}' if score is not None else None, "error": None,
            "scored_at": HOUR + timedelta(minutes=70),
        })
    return pd.DataFrame(records)


def previous_path(engine, frame: pd.DataFrame) -> None:
    """The write before store/bulk.py: DataFrame -> list of dicts -> SQLAlchemy executemany."""
    sub = frame.astype(object).where(frame.notna(), None)
    records = sub.to_dict("records")
    for rec in records:
        for key, value in rec.items():
            if isinstance(value, pd.Timestamp):
                rec[key] = value.to_pydatetime()
            elif hasattr(value, "item"):
                rec[key] = value.item()
    with locks.begin(engine) as conn:
        conn.execute(sa.delete(eval_scores).where(eval_scores.c.window_start >= HOUR,
                                                  eval_scores.c.window_start < HOUR + timedelta(hours=1)))
        conn.execute(sa.insert(eval_scores), records)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def measure(name: str, url: str, frame: pd.DataFrame) -> None:
    engine = db.make_engine(url)
    db.create_tables(engine)
    db.create_tables(engine, _META)
    before = best_of(lambda: previous_path(engine, frame))
    now = best_of(lambda: db.replace_window(engine, eval_scores, HOUR, HOUR + timedelta(hours=1), frame))
    print(f"{name:10s} previous (dicts + executemany) {before:6.2f} s   bulk {now:6.2f} s   ratio {now / before:.2f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=62_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test")
    args = parser.parse_args()
    frame = hour_of_scores(args.rows)
    print(f"{len(frame):,} eval_scores rows of one hour, best of 3")
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", f"sqlite:///{tmp}/bench.db", frame)
    with private_schema(args.pg_url) as url:
        measure("postgresql", url, frame)


if __name__ == "__main__":
    main()
