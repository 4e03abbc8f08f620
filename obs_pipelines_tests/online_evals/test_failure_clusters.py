"""Clusters of failing inputs (issue 19, part 4): the pure clustering on cases a person can check by eye, and the
daily asset on real SQLite and PostgreSQL stores.

The traffic here is written by hand for two apps the project's generator knows nothing about (an airline's help
desk and an HR assistant), with a failure pattern planted by topic, not by any scorer's formula."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.definitions import build_definitions
from obs_pipelines.online_evals.clusters import CLUSTER_COLUMNS, ClusterOptions, cluster_failures
from obs_pipelines.online_evals.defs import DAILY_JOB
from obs_pipelines.online_evals import score_store
from obs_pipelines.online_evals.tables import failure_clusters_daily, online_evals_metadata
from obs_pipelines.settings import Settings
from obs_pipelines.store import db

AIRLINE = {
    "baggage": ["How many bags can I check on flight {n}?", "What is the carry-on size limit for {c}?",
                "Can I bring skis as checked baggage to {c}?", "My suitcase is overweight, what does it cost?"],
    "seat": ["Can I pick a window seat on my {c} trip?", "How do I upgrade my seat to business class?",
             "Is there extra legroom seating to {c}?", "Can I sit next to my kid on flight {n}?"],
    "refund": ["My flight to {c} was cancelled, how do I get a refund?",
               "I want my money back for the cancelled flight {n}", "Refund status for cancelled booking {n}?",
               "They cancelled my {c} flight, when is the refund paid?"],
    "checkin": ["When does online check-in open for {c}?", "I cannot check in online for flight {n}",
                "Where is the check-in desk at {c} airport?", "Does mobile boarding pass work in {c}?"],
    "pets": ["Can my dog fly in the cabin to {c}?", "What are the pet carrier rules?",
             "Do you allow cats on flight {n}?", "Is a service animal allowed to {c}?"],
}
CITIES = ["Lisbon", "Oslo", "Kyoto", "Lima", "Cairo", "Quito", "Perth", "Dakar"]


def airline_day(requests: int, fail_rate: dict[str, float], seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(requests):
        topic = rng.choice(sorted(AIRLINE))
        text = rng.choice(AIRLINE[topic]).format(n=rng.randint(100, 999), c=rng.choice(CITIES))
        failing = rng.random() < fail_rate.get(topic, 0.0)
        rows.append({"trace_id": f"{i:032x}", "input": text, "failing": failing, "route": "help_desk",
                     "failing_scorers": "groundedness" if failing else "", "topic": topic})
    return pd.DataFrame(rows)


HR_SUBJECTS = {
    "parental_leave": ["parental leave", "maternity leave", "paternity leave", "leave after adoption"],
    "expenses": ["expense report", "travel reimbursement", "per diem", "receipt for a client dinner"],
    "payroll": ["payslip", "salary payment date", "tax withholding", "overtime pay"],
    "laptop": ["laptop replacement", "VPN access", "new monitor", "password reset for the intranet"],
}
HR_FRAMES = ["how does {s} work here", "who approves my {s}", "question about {s} please", "{s}: what are the rules",
             "I need help with {s} before Friday", "where do I find the policy on {s}"]


def hr_day(requests: int, seed: int = 11) -> pd.DataFrame:
    """An HR assistant: free phrasings around four subjects; parental-leave questions fail 70 % of the time,
    the others 4 %."""
    rng = random.Random(seed)
    rows = []
    for i in range(requests):
        subject = rng.choice(sorted(HR_SUBJECTS))
        text = rng.choice(HR_FRAMES).format(s=rng.choice(HR_SUBJECTS[subject]))
        failing = rng.random() < (0.7 if subject == "parental_leave" else 0.04)
        rows.append({"trace_id": f"{seed:08x}{i:024x}", "input": text, "failing": failing,
                     "route": rng.choice(["benefits", "it_help"]), "failing_scorers": "faithfulness" if failing
                     else "", "subject": subject})
    return pd.DataFrame(rows)


def test_a_planted_topic_that_carries_the_failures_is_the_top_cluster():
    # refund questions fail 80 % of the time, every other topic 3 %: about 0.2*0.8 / (0.2*0.8 + 0.8*0.03) = 87 % of
    # the failures are refund questions, which are 20 % of the traffic (lift about 4.3)
    day = airline_day(5000, {"refund": 0.8, "baggage": 0.03, "seat": 0.03, "checkin": 0.03, "pets": 0.03})
    clusters = cluster_failures(day)
    top = clusters.iloc[0]
    assert {"refund", "cancelled"} & set(json.loads(top["top_terms"]))
    assert 0.75 <= top["failure_share"] <= 0.95
    assert 0.15 <= top["traffic_share"] <= 0.30
    assert top["lift"] > 3


def test_the_planted_pattern_is_found_in_a_second_app_with_other_vocabulary():
    # parental-leave questions (a quarter of the traffic) fail 70 %, the rest 4 %: 0.25*0.7 / (0.25*0.7 + 0.75*0.04)
    # = 85 % of the failures
    day = hr_day(4000)
    top = cluster_failures(day).iloc[0]
    assert {"leave", "parental", "maternity", "paternity", "adoption"} & set(json.loads(top["top_terms"]))
    assert top["failure_share"] >= 0.7 and top["lift"] > 2.5


def test_failures_spread_evenly_over_topics_give_no_cluster_with_a_high_lift():
    # every topic fails 10 %: no kind of question fails more than the app does, so no cluster stands out
    day = airline_day(5000, {topic: 0.10 for topic in AIRLINE})
    clusters = cluster_failures(day)
    assert (clusters["lift"] < 2).all()


def test_too_few_failures_give_no_clusters():
    # 5 failing requests are below min_failures (10): nothing to group
    day = airline_day(300, {})
    day.loc[:4, "failing"] = True
    clusters = cluster_failures(day, ClusterOptions(min_failures=10))
    assert clusters.empty and list(clusters.columns) == CLUSTER_COLUMNS


def test_exemplars_are_failing_members_of_their_cluster():
    day = airline_day(3000, {"refund": 0.8, "pets": 0.05})
    clusters = cluster_failures(day)
    failing = set(day.loc[day["failing"], "trace_id"])
    refund = set(day.loc[day["topic"] == "refund", "trace_id"])
    exemplars = json.loads(clusters.iloc[0]["exemplar_trace_ids"])
    assert exemplars and set(exemplars) <= failing & refund


def test_the_same_day_in_another_row_order_gives_the_same_clusters():
    day = airline_day(2000, {"refund": 0.8, "seat": 0.05})
    first = cluster_failures(day)
    second = cluster_failures(day.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(first, second)


def test_exemplar_inputs_are_scrubbed_before_they_are_kept():
    day = airline_day(2000, {"refund": 0.9})
    day.loc[day["failing"], "input"] = day.loc[day["failing"], "input"] + " mail me at jane.doe@example.org"
    clusters = cluster_failures(day, scrub=lambda text: text.replace("jane.doe@example.org", "<EMAIL>"))
    kept = json.loads(clusters.iloc[0]["exemplar_inputs"])
    assert kept and all("jane.doe" not in text for text in kept)


# ---- the daily asset ---------------------------------------------------------------------------------------------

DAY = datetime(2026, 3, 2)


def load_day(store, day: pd.DataFrame) -> None:
    """Root spans with the day's inputs, and one eval score per request (failing ones below the threshold)."""
    db.create_tables(store.engine)
    db.create_tables(store.engine, online_evals_metadata)
    spans, scores = [], []
    for i, row in enumerate(day.itertuples(index=False)):
        start = DAY + timedelta(seconds=20 * i)
        span_id = f"{i:016x}"
        spans.append({"trace_id": row.trace_id, "span_id": span_id, "parent_span_id": None, "name": "request",
                      "kind": "chain", "start_time": start, "end_time": start + timedelta(seconds=1), "status": "ok",
                      "route": row.route, "input": row.input, "output": "an answer"})
        hour = start.replace(minute=0, second=0)
        scores.append({"window_start": hour, "window_end": hour + timedelta(hours=1), "trace_id": row.trace_id,
                       "span_id": span_id, "span_kind": "root", "route": row.route, "rule": "responses",
                       "scorer": "groundedness", "scorer_version": "1", "score": 0.2 if row.failing else 0.9,
                       "passed": not row.failing, "threshold": 0.5})
    db.insert_spans(store.engine, spans)
    score_store.insert_scores(store.engine, scores)


def test_the_daily_asset_writes_the_days_clusters_and_reports_the_top_one(store):
    day = airline_day(3000, {"refund": 0.8, "baggage": 0.03, "seat": 0.03, "checkin": 0.03, "pets": 0.03})
    load_day(store, day)
    defs = build_definitions(Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00",
                                      phases=["online_evals"]))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def(DAILY_JOB)
    for _ in range(2):  # a re-run replaces the day: no duplicates
        assert job.execute_in_process(partition_key="2026-03-02", instance=instance).success
    with store.engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(sa.select(failure_clusters_daily)).mappings().all())
    assert len(stored) == stored["cluster"].nunique() >= 1
    top = stored.sort_values("cluster").iloc[0]
    assert {"refund", "cancelled"} & set(json.loads(top["top_terms"]))
    # about 87 % of the day's failures are refund questions (see the first test)
    assert 0.75 * day["failing"].sum() <= top["failure_count"] <= day["failing"].sum()
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("failure_clusters_daily"), asset_partitions=["2026-03-02"]),
        limit=1).records[0]
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert meta["clusters"] == len(stored)
    assert meta["failing_requests"] == int(day["failing"].sum())
    assert abs(meta["top_cluster_failure_share"] - top["failure_share"]) < 1e-3  # metadata is rounded for people
    assert "refund" in meta["clusters_preview"] or "cancelled" in meta["clusters_preview"]

