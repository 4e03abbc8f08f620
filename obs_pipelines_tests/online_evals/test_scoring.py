"""Scoring an hour of production traffic (the plain functions the asset runs), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from obs_pipelines.online_evals import rollups, score_store, scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example, Scorer
from obs_pipelines.store import db
from obs_pipelines_tests.online_evals.conftest import load_traffic

H = datetime(2026, 3, 2, 14, 0)
H_END = H + timedelta(hours=1)


def _score(store, settings: OnlineEvalsSettings, stored=None, scorers=None):
    scorers = scorers or scoring.scorers_for(settings)
    return scoring.score_hour(store.engine, H, H_END, settings, scorers, stored)


def test_every_response_of_the_hour_gets_one_row_per_selected_scorer(store):
    load_traffic(store.engine, H, 1)
    settings = OnlineEvalsSettings()
    hour = _score(store, settings)
    frame = hour.frame
    assert hour.responses > 20 and hour.errors == 0
    assert len(frame) == hour.responses * len(registry.DEFAULT_SCORERS)
    assert not frame.duplicated(["trace_id", "span_id", "scorer", "scorer_version"]).any()
    assert set(frame["span_kind"]) == {"root"}
    rag = frame[(frame["route"] == "rag_qa") & (frame["scorer"] == "groundedness")]
    # rag answers have documents and a model (a failed request has neither output nor documents)
    assert rag["score"].notna().mean() > 0.8 and rag["model"].notna().mean() > 0.8
    agent = frame[(frame["route"] == "agent_tools") & (frame["scorer"] == "tool_error_rate")]
    assert agent["score"].notna().any()
    scored = frame[frame["score"].notna()]
    assert (scored["passed"] == (scored["score"] >= scored["threshold"])).all()


def test_stored_rows_of_the_current_versions_are_kept_and_a_changed_option_rescores_only_its_scorer(store):
    load_traffic(store.engine, H, 1)
    settings = OnlineEvalsSettings()
    first = _score(store, settings)
    db.replace_windows(store.engine, H, H_END, score_store.frames(store.engine, first.frame))
    again = _score(store, settings, scoring.stored_scores(store.engine, H, H_END))
    assert again.scored == 0 and again.kept == len(first.frame) and again.unchanged
    changed = OnlineEvalsSettings(scorer_options={"word_count_bounds": {"max_words": 10}})
    third = _score(store, changed, scoring.stored_scores(store.engine, H, H_END))
    assert third.scored == first.responses  # exactly the word_count_bounds rows
    assert set(third.frame.loc[third.frame["scored_at"] > first.frame["scored_at"].max(), "scorer"]) <= {
        "word_count_bounds"}
    assert len(third.frame) == len(first.frame) and not third.unchanged


def test_rules_filter_by_route_and_kind_and_sample_by_trace_id(store):
    load_traffic(store.engine, H, 1)
    settings = OnlineEvalsSettings(rules=[
        {"name": "rag", "scorers": ["groundedness"], "routes": ["rag_qa"]},
        {"name": "calls", "scorers": ["refusal"], "span_kinds": ["llm"], "sample_rate": 0.5},
    ])
    frame = _score(store, settings).frame
    assert set(frame.loc[frame["scorer"] == "groundedness", "route"]) == {"rag_qa"}
    calls = frame[frame["scorer"] == "refusal"]
    assert set(calls["span_kind"]) == {"llm"} and set(calls["rule"]) == {"calls"}
    assert 0.2 < calls["trace_id"].nunique() / frame["trace_id"].nunique() < 0.8 or calls.empty is False
    again = _score(store, settings).frame  # the same traces are sampled every time
    assert set(again.loc[again["scorer"] == "refusal", "trace_id"]) == set(calls["trace_id"])


class _Exploding(Scorer):
    name = "refusal"  # stands in for a registered scorer
    requires = ()

    def score(self, example: Example):
        if "cancel" in (example.input or "").lower():
            raise RuntimeError("boom")
        return self.result(1.0)


def test_a_scorer_raising_on_one_response_records_the_error_and_the_hour_goes_on(store):
    load_traffic(store.engine, H, 1)
    settings = OnlineEvalsSettings(rules=[{"name": "r", "scorers": ["refusal"]}])
    hour = _score(store, settings, scorers={"refusal": _Exploding()})
    errors = hour.frame[hour.frame["error"].notna()]
    assert hour.errors == len(errors) > 0 and (errors["error"] == "RuntimeError: boom").all()
    assert errors["score"].isna().all() and (hour.frame["score"] == 1.0).sum() == len(hour.frame) - len(errors)


def test_the_rollup_counts_means_thresholds_and_feedback(store):
    load_traffic(store.engine, H, 1)
    hour = _score(store, OnlineEvalsSettings())
    trace = hour.frame["trace_id"].iloc[0]
    with store.engine.begin() as conn:
        conn.execute(db.sa.insert(db.metadata.tables["feedback"]), [
            {"trace_id": trace, "name": "thumbs", "value": 1.0, "created_at": H},
            {"trace_id": trace, "name": "thumbs", "value": 0.0, "created_at": H}])
    rollup = rollups.score_rollup(hour.frame, rollups.read_feedback(store.engine, H, H_END), H, H_END)
    overall = rollup[rollup["dimension"] == "overall"].set_index("scorer")
    g = hour.frame[hour.frame["scorer"] == "groundedness"]
    assert overall.loc["groundedness", "response_count"] == len(g)
    assert overall.loc["groundedness", "mean_score"] == pytest.approx(g["score"].mean())
    assert overall.loc["groundedness", "p10_score"] == pytest.approx(g["score"].dropna().quantile(0.1))
    assert overall.loc["groundedness", "null_count"] == g["score"].isna().sum()
    assert overall.loc["groundedness", "below_threshold_share"] == pytest.approx((g["score"].dropna() < 0.5).mean())
    assert overall.loc["feedback:thumbs", "mean_score"] == 0.5 and overall.loc["feedback:thumbs", "response_count"] == 2
    routes = rollup[(rollup["scorer"] == "groundedness") & (rollup["dimension"] == "route")]
    assert routes["response_count"].sum() == len(g)
    assert isinstance(rollup, pd.DataFrame) and not rollup.duplicated(["scorer", "dimension", "dimension_value"]).any()


def test_the_daily_rollup_read_an_hour_at_a_time_equals_the_rollup_of_the_whole_days_rows(store):
    # three scored hours and feedback on some requests: reading the day hour by hour (issue 23) must give the
    # rows one pass over all the day's rows gives (exact percentiles, feedback by its request's dimensions)
    from obs_pipelines.store.query import fetch_frame, window_params

    day = H.replace(hour=0)
    load_traffic(store.engine, H, 3)
    settings = OnlineEvalsSettings()
    scorers = scoring.scorers_for(settings)
    for hour in range(3):
        start = H + timedelta(hours=hour)
        frame = scoring.score_hour(store.engine, start, start + timedelta(hours=1), settings, scorers).frame
        db.replace_windows(store.engine, start, start + timedelta(hours=1), score_store.frames(store.engine, frame))
    traces = fetch_frame(store.engine, "SELECT trace_id FROM eval_scores WHERE window_start >= :start AND "
                                       "window_start < :end", window_params(day, day + timedelta(days=1)))
    with store.engine.begin() as conn:
        conn.execute(db.metadata.tables["feedback"].insert(), [
            {"trace_id": t, "name": "thumbs", "value": float(i % 2), "created_at": H}
            for i, t in enumerate(sorted(set(traces["trace_id"]))[::7])])
    end = day + timedelta(days=1)
    day_rows = ("SELECT trace_id, span_kind, scorer, scorer_version, score, threshold, error, route, model, "
                "prompt_version FROM eval_scores WHERE window_start >= :start AND window_start < :end")
    whole = rollups.score_rollup(fetch_frame(store.engine, day_rows, window_params(day, end)),
                                 rollups.read_feedback(store.engine, day, end), day, end)
    streamed = rollups.daily_rollup(store.engine, day, end)
    assert len(streamed) > 0 and (streamed["scorer"] == "feedback:thumbs").any()
    pd.testing.assert_frame_equal(streamed.drop(columns=["computed_at"]), whole.drop(columns=["computed_at"]))
