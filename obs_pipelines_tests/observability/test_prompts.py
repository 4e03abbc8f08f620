"""prompt_version_comparison_daily on generated traffic: the prompt_regression incident's new version is flagged
against the one before it; two versions the generator draws from the same distribution are not, over 20
seeds. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from obs_pipelines.observability.prompts import prompt_comparison, version_order
from obs_pipelines.pricing import load_prices
from obs_pipelines.synth.generator import generate_traces
from obs_pipelines_tests.observability.conftest import DAY0, load_traffic

DAY = timedelta(days=1)
MIN_SAMPLES, ALPHA = 30, 0.001


def _day(hour: datetime) -> tuple[datetime, datetime]:
    start = hour.replace(hour=0)
    return start, start + DAY


def test_the_prompt_regression_version_is_flagged_against_the_previous_one(store):
    load_traffic(store, "prompt_regression")  # rag_answer v5 in the incident hour: short, ungrounded answers
    rows = prompt_comparison(store.engine, *_day(DAY0), load_prices(), MIN_SAMPLES, ALPHA).set_index(
        ["prompt_name", "prompt_version"])
    regressed = rows.loc[("rag_answer", "5")]
    assert regressed["previous_version"] == "4" and regressed["calls"] >= MIN_SAMPLES
    assert regressed["verdict"] in ("regression", "changed")
    assert "output tokens down" in regressed["reasons"] and regressed["output_tokens_p_value"] < 1e-6


def test_a_same_quality_new_version_is_not_flagged_over_20_seeds(store):
    # rag_qa draws rag_answer v3 (10 %) and v4 (90 %) from one distribution: v4 is a same-quality new version
    verdicts = []
    for seed in range(20):
        day = DAY0 + seed * DAY
        store.insert_spans([r for t in generate_traces(day, 2, 0.25, seed) for r in t])
        rows = prompt_comparison(store.engine, *_day(day), load_prices(), MIN_SAMPLES, ALPHA)
        verdicts += rows.loc[rows["prompt_name"] == "rag_answer", "verdict"].tolist()
    assert len(verdicts) == 20
    assert "regression" not in verdicts and "changed" not in verdicts
    assert verdicts.count("no_change") >= 15  # the rest: too few v3 calls in the day to judge


def test_versions_are_compared_in_natural_order():
    assert sorted(["10", "2", "v1.10", "v1.2", "1"], key=version_order) == ["1", "2", "10", "v1.2", "v1.10"]
