"""The compact storage behind the eval_scores view (issue 23), on SQLite and PostgreSQL: what is written reads
back as the same wide rows, repeated strings are stored once, and the bytes stay well under the spans'."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from obs_pipelines.online_evals import score_store, scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.online_evals.tables import eval_responses, eval_results, eval_scorer_refs, eval_scores, eval_texts
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, window_params
from obs_pipelines_tests.online_evals.conftest import load_traffic
from obs_pipelines_tests.second_app import Profile, SupportBot, ingest_hours

H = datetime(2026, 3, 2, 14)
H_END = H + timedelta(hours=1)


def _stored(store, start=H, end=H_END) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.select(eval_scores).where(
            eval_scores.c.window_start >= start, eval_scores.c.window_start < end)).mappings().all())
    return frame.sort_values(["trace_id", "span_id", "scorer"]).reset_index(drop=True)


def _count(store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def _rows(seconds: int = 30) -> list[dict]:
    # two responses of one hour, two scorers each; a by-eye case: what goes in must come out of the view
    at = H + timedelta(minutes=70, seconds=seconds)
    base = {"window_start": H, "window_end": H_END, "span_kind": "root", "route": "rag_qa", "model": "m",
            "prompt_version": "2", "rule": "responses", "scorer_version": "1", "threshold": 0.5, "scored_at": at,
            "error": None}
    return [
        {**base, "trace_id": "a" * 32, "span_id": "1" * 16, "scorer": "groundedness", "score": 0.25,
         "reason": None, "details": '{"unsupported": 3}'},
        {**base, "trace_id": "a" * 32, "span_id": "1" * 16, "scorer": "refusal", "score": 1.0, "reason": None,
         "details": None},
        {**base, "trace_id": "b" * 32, "span_id": "2" * 16, "scorer": "groundedness", "score": None,
         "reason": "no context", "details": None},
        {**base, "trace_id": "b" * 32, "span_id": "2" * 16, "scorer": "refusal", "score": 0.75, "reason": None,
         "details": None, "route": None, "model": None, "prompt_version": None},
    ]


def test_rows_written_read_back_from_the_view_as_written_with_passed_computed(store):
    db.create_tables(store.engine)
    rows = _rows()
    written = db.replace_windows(store.engine, H, H_END, score_store.frames(store.engine, pd.DataFrame(rows)))
    assert written == {"eval_responses": 2, "eval_results": 4}
    back = _stored(store)
    # the second response's dimensions are those of its first row (they are per response)
    expected = pd.DataFrame(rows).assign(route=["rag_qa"] * 4, model=["m"] * 4, prompt_version=["2"] * 4)
    for column in ("trace_id", "span_id", "scorer", "route", "model", "rule", "scorer_version", "reason", "details"):
        assert back[column].tolist() == expected[column].tolist(), column
    assert back["score"].tolist()[:2] == [0.25, 1.0] and pd.isna(back["score"][2])
    assert back["passed"].tolist()[:2] == [False, True] and pd.isna(back["passed"][2])  # 0.25 < 0.5 <= 1.0
    assert set(pd.to_datetime(back["scored_at"])) == {pd.Timestamp(H + timedelta(minutes=70, seconds=30))}
    assert set(pd.to_datetime(back["window_end"])) == {pd.Timestamp(H_END)}


def test_scorer_sets_and_texts_are_stored_once_however_many_rows_and_hours_use_them(store):
    db.create_tables(store.engine)
    for hour in range(3):
        start = H + timedelta(hours=hour)
        rows = [{**r, "window_start": start, "window_end": start + timedelta(hours=1)} for r in _rows()]
        db.replace_windows(store.engine, start, start + timedelta(hours=1),
                           score_store.frames(store.engine, pd.DataFrame(rows)))
    assert _count(store, eval_results) == 12 and _count(store, eval_responses) == 6
    assert _count(store, eval_scorer_refs) == 2  # groundedness and refusal under one rule, version, threshold
    assert _count(store, eval_texts) == 2  # 'no context' and the one details JSON


def test_replacing_an_hour_leaves_the_neighbouring_hours_alone(store):
    db.create_tables(store.engine)
    score_store.insert_scores(store.engine, _rows())
    later = [{**r, "window_start": H_END, "window_end": H_END + timedelta(hours=1)} for r in _rows()]
    score_store.insert_scores(store.engine, later)
    db.replace_windows(store.engine, H, H_END, score_store.frames(store.engine, pd.DataFrame(_rows()[:1])))
    assert len(_stored(store)) == 1 and len(_stored(store, H_END, H_END + timedelta(hours=1))) == 4


def test_details_that_say_nothing_are_not_stored():
    assert score_store.informative_details({"found": {}, "markers": [], "phrase": None, "words": 3}) == {"words": 3}


def _scored_hour(store) -> scoring.HourScores:
    settings = OnlineEvalsSettings()
    return scoring.score_hour(store.engine, H, H_END, settings, scoring.scorers_for(settings), workers=1)


def _round_trip(store, hour: scoring.HourScores) -> None:
    db.replace_windows(store.engine, H, H_END, score_store.frames(store.engine, hour.frame))
    back = fetch_frame(store.engine, "SELECT * FROM eval_scores WHERE window_start >= :start AND window_start < :end",
                       window_params(H, H_END))
    assert len(back) == len(hour.frame) > 0
    keys = ["trace_id", "span_id", "scorer"]
    got = back.sort_values(keys).reset_index(drop=True)
    want = hour.frame.sort_values(keys).reset_index(drop=True)
    for column in ("trace_id", "span_id", "span_kind", "scorer", "scorer_version", "rule", "reason", "details"):
        assert got[column].fillna("").tolist() == want[column].fillna("").tolist(), column
    assert (got["score"].fillna(-1) == want["score"].astype(float).fillna(-1)).all()


def test_a_generated_hour_round_trips_and_its_scores_take_well_under_half_the_spans_bytes(store):
    load_traffic(store.engine, H, 1, rate=0.1)
    hour = _scored_hour(store)
    _round_trip(store, hour)
    ratio = _bytes(store, ["eval_responses", "eval_results", "eval_scorer_refs", "eval_texts"]) / _bytes(store, ["spans"])
    assert ratio <= 0.5, ratio  # the bound: eval_scores' bytes at most half of the spans' for the same hour


def test_an_hour_of_the_second_app_round_trips(store, tmp_path):
    ingest_hours(store.engine, tmp_path, SupportBot(Profile(requests_per_hour=60, scale=1, seed=3)), H, 1)
    _round_trip(store, _scored_hour(store))


def _bytes(store, tables: list[str]) -> int:
    """Bytes of the tables with their indexes: pg_total_relation_size, or SQLite's dbstat pages."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            return sum(conn.execute(sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}).scalar()
                       for t in tables)
        names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE tbl_name IN ({})".format(
            ", ".join(f"'{t}'" for t in tables)))).scalars().all()
        return conn.execute(sa.text("SELECT SUM(pgsize) FROM dbstat WHERE name IN ({})".format(
            ", ".join(f"'{n}'" for n in names)))).scalar()

