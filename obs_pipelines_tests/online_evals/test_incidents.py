"""Incidents of the generator lower the right scores in the right hours only: silent_quality_drift (no
errors, same latency: only the answers get vaguer) lowers groundedness of rag_qa in its hours, and
retrieval_miss lowers context relevance and the empty-context score in its hours."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from obs_pipelines.online_evals import rollups, scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.orchestration.windows import HOUR, windows
from obs_pipelines_tests.online_evals.conftest import load_traffic

START = datetime(2026, 3, 3, 6, 0)
HOURS = 8
INCIDENT = START + timedelta(hours=3)  # hours 3..6 of 0..7


def _rag_means(store, incident: str, scorer: str) -> pd.Series:
    """Mean of ``scorer`` over rag_qa responses, per hour."""
    load_traffic(store.engine, START, HOURS, rate=0.03, seed=11, incidents=(f"{incident}@{INCIDENT.isoformat()}+4h",))
    settings = OnlineEvalsSettings()
    scorers = scoring.scorers_for(settings)
    means = {}
    for start, end in windows(START, START + HOURS * HOUR, HOUR):
        hour = scoring.score_hour(store.engine, start, end, settings, scorers)
        rollup = rollups.score_rollup(hour.frame, pd.DataFrame(), start, end)
        row = rollup[(rollup["scorer"] == scorer) & (rollup["dimension"] == "route")
                     & (rollup["dimension_value"] == "rag_qa")]
        means[start] = float(row["mean_score"].iloc[0])
    return pd.Series(means)


def _split(means: pd.Series) -> tuple[pd.Series, pd.Series]:
    inside = (means.index >= INCIDENT) & (means.index < INCIDENT + timedelta(hours=4))
    return means[inside], means[~inside]


def test_silent_quality_drift_lowers_rag_groundedness_in_its_hours_only(store):
    during, clean = _split(_rag_means(store, "silent_quality_drift", "groundedness"))
    assert clean.min() > 0.9, clean
    assert during.max() < clean.min(), (during, clean)
    assert during.iloc[-1] < 0.5  # the drift grows: most answers of its last hour are ungrounded


def test_retrieval_miss_lowers_rag_context_relevance_in_its_hours_only(store):
    during, clean = _split(_rag_means(store, "retrieval_miss", "context_relevance"))
    assert during.max() < clean.min(), (during, clean)
