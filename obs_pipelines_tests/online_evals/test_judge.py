"""The judge in the online phase, on SQLite and PostgreSQL, against a real HTTP server on 127.0.0.1: every call
stored next to its score, failed calls asked again on the hour's next run (and only they), NUL in an answer,
PII scrubbed in what is sent and stored, and texts cut at max_text_chars recorded in the scores' details.

Traffic is the generator's (load_traffic) for the stored-calls test, and hand-written request spans (another
vocabulary, routes and sizes; nothing the generator writes) for the others."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from obs_pipelines.online_evals import scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.online_evals.tables import (
    eval_scores,
    judge_calls,
    online_evals_metadata,
)
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example
from obs_pipelines.store import db
from obs_pipelines_tests.online_evals.conftest import load_traffic
from obs_pipelines_tests.online_evals.fake_judge import FakeJudge

HOUR = datetime(2026, 3, 2, 9)
PARTITION = "2026-03-02-09:00"

# a travel-insurance assistant: questions and answers nobody tuned the scorers on
CLAIMS = [
    ("Does my policy cover a cancelled flight?", "Yes, if the airline cancels within 14 days of departure."),
    ("How do I file a claim for lost luggage?", "Send the airline's property irregularity report with the form."),
    ("Is skiing covered?", "Only with the winter sports add-on."),
    ("Can I extend my trip cover abroad?", "Yes, before the policy ends, online or by phone."),
    ("What is the excess on medical claims?", "EUR 75 per claim, per person."),
    ("Are pre-existing conditions covered?", "Only those you declared and we accepted in writing."),
]


def write_requests(engine, rows: list[tuple[str, str]], route: str = "claims_helper") -> None:
    """One root span per (question, answer), spread over the hour."""
    db.create_tables(engine)
    db.create_tables(engine, online_evals_metadata)
    spans = []
    for i, (question, answer) in enumerate(rows):
        start = HOUR + timedelta(minutes=5 * i + 1)
        spans.append({"trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "parent_span_id": None,
                      "name": "POST /assist", "kind": "chain", "start_time": start,
                      "end_time": start + timedelta(seconds=2), "status": "ok", "route": route, "model": "claims-llm",
                      "input": question, "output": answer})
    db.insert_spans(engine, spans)


def run_hour(store, fake: FakeJudge, scorers: list[str], instance: dg.DagsterInstance, price_overrides=None,
             **judge) -> None:
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.settings import Settings

    settings = Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00", phases=["online_evals"],
                        price_overrides=price_overrides or {},
                        online_evals={"rules": [{"name": "judged", "scorers": scorers}],
                                      "judge": {"base_url": fake.url, "model": "judge-model", "backoff_s": 0.01,
                                                **judge}})
    job = build_definitions(settings).resolve_job_def("online_evals_hourly_job")
    assert job.execute_in_process(partition_key=PARTITION, instance=instance).success


def rows(engine, table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def test_the_asset_stores_every_judge_call_next_to_its_score(store):
    load_traffic(store.engine, HOUR, 1, rate=0.005)
    instance = dg.DagsterInstance.ephemeral()
    with FakeJudge('{"reasoning": "It addresses part of the request.", "choice": "B"}') as fake:
        run_hour(store, fake, ["judge_answer_relevance", "refusal"], instance, usd_per_m_input=1.0,
                 usd_per_m_output=2.0)
        requests = len(fake.requests)
        run_hour(store, fake, ["judge_answer_relevance", "refusal"], instance, usd_per_m_input=1.0,
                 usd_per_m_output=2.0)
        assert len(fake.requests) == requests  # a scored hour asks the judge nothing again
    scores = [s for s in rows(store.engine, eval_scores) if s["scorer"] == "judge_answer_relevance"]
    calls = rows(store.engine, judge_calls)
    answered = [s for s in scores if s["score"] is not None]
    assert answered and len(calls) == len(answered) == requests
    assert all(s["score"] == 0.5 and "@judge-model~" in s["scorer_version"] for s in answered)  # B: partly
    assert all(json.loads(s["details"])["judge_choice"] == "B" for s in answered)
    call = calls[0]
    assert call["status"] == "ok" and call["model"] == "judge-model" and "<output>" in call["prompt"]
    assert call["cost_usd"] == pytest.approx((120 * 1.0 + 12 * 2.0) / 1e6)
    assert json.loads(call["raw_answer"])["choice"] == "B"


def test_without_hand_set_prices_the_judge_is_priced_by_the_settings_price_table(store):
    write_requests(store.engine, CLAIMS[:2])
    instance = dg.DagsterInstance.ephemeral()
    with FakeJudge() as fake:  # the endpoint reports 120 prompt and 12 completion tokens
        run_hour(store, fake, ["judge_answer_relevance"], instance,
                 price_overrides={"judge-model": {"input": 2.0, "output": 4.0}})
    costs = [c["cost_usd"] for c in rows(store.engine, judge_calls)]
    assert costs == [pytest.approx((120 * 2.0 + 12 * 4.0) / 1e6)] * 2  # USD per 1M tokens


def test_failed_judge_calls_are_asked_again_on_the_next_run_and_only_they(store):
    write_requests(store.engine, CLAIMS)
    instance = dg.DagsterInstance.ephemeral()
    with FakeJudge() as fake:
        fake.script.extend([(503, "overloaded"), (503, "overloaded")])  # two calls fail (no retries allowed)
        run_hour(store, fake, ["judge_answer_relevance"], instance, max_retries=0, concurrency=1)
        first = rows(store.engine, eval_scores)
        failed = [s for s in first if s["error"]]
        assert len(failed) == 2 and all(s["error"].startswith("JudgeFailed:") for s in failed)
        answered_at = {(c["trace_id"], c["called_at"]) for c in rows(store.engine, judge_calls) if c["status"] == "ok"}
        run_hour(store, fake, ["judge_answer_relevance"], instance, max_retries=0, concurrency=1)
        assert len(fake.requests) == len(CLAIMS) + 2  # the second run asked exactly the two failed pairs
        run_hour(store, fake, ["judge_answer_relevance"], instance, max_retries=0, concurrency=1)
        assert len(fake.requests) == len(CLAIMS) + 2  # nothing left to ask: the hour is current
    final = rows(store.engine, eval_scores)
    calls = rows(store.engine, judge_calls)
    assert len(final) == len(CLAIMS) and all(s["score"] == 1.0 and s["error"] is None for s in final)
    assert len(calls) == len(CLAIMS) and all(c["status"] == "ok" for c in calls)
    # the judgments paid for in the first run were kept as they were
    assert answered_at <= {(c["trace_id"], c["called_at"]) for c in calls}


def test_a_nul_in_the_judge_answer_is_stored_on_both_databases(store):
    write_requests(store.engine, CLAIMS[:3])
    instance = dg.DagsterInstance.ephemeral()
    with FakeJudge('{"reasoning": "fine\u0000 really", "choice": "A"}\u0000') as fake:
        run_hour(store, fake, ["judge_answer_relevance"], instance)
    scores, calls = rows(store.engine, eval_scores), rows(store.engine, judge_calls)
    assert len(scores) == 3 and all(s["score"] == 1.0 for s in scores)
    assert all("\x00" not in c["raw_answer"] and "\\u0000" in c["raw_answer"] for c in calls)


def test_pii_never_leaves_the_process_nor_lands_in_judge_calls(store):
    write_requests(store.engine, [("My email is ana.lopez@example.org, call me on +34 612 345 678",
                                   "We will write to ana.lopez@example.org today.")])
    instance = dg.DagsterInstance.ephemeral()
    with FakeJudge() as fake:
        run_hour(store, fake, ["judge_answer_relevance"], instance)
    sent = json.dumps(fake.requests[0]["body"])
    (call,), (score,) = rows(store.engine, judge_calls), rows(store.engine, eval_scores)
    for text in (sent, call["prompt"]):
        assert "ana.lopez" not in text and "612 345" not in text and "<EMAIL>" in text and "<PHONE>" in text
    assert json.loads(score["details"])["judge_pii_scrubbed"] == {"email": 2, "phone": 1}


def test_a_text_cut_at_max_text_chars_is_recorded_in_every_score_of_the_response(store):
    long_answer = "Cover depends on the plan you bought. " * 30  # 1,140 characters
    write_requests(store.engine, [("Is my camera covered?", long_answer), ("Short?", "Yes.")])
    settings = OnlineEvalsSettings(rules=[{"name": "r", "scorers": ["word_count_bounds", "refusal"]}],
                                   max_text_chars=200)
    hour = scoring.score_hour(store.engine, HOUR, HOUR + timedelta(hours=1), settings, scoring.scorers_for(settings))
    by_trace = {}
    for row in hour.frame.to_dict("records"):
        by_trace.setdefault(row["trace_id"], []).append(json.loads(row["details"] or "{}").get("text_cut"))
    assert by_trace[f"{1:032x}"] == [{"limit": 200, "lengths": {"output": len(long_answer)}}] * 2
    assert by_trace[f"{2:032x}"] == [None, None]  # nothing cut, nothing said


def test_without_an_endpoint_a_judge_scorer_gives_a_null_score():
    assert registry.get("judge_safety")(Example(output="x")).reason == "no judge endpoint configured"


def test_on_another_apps_traffic_each_judge_request_carries_that_responses_answer_and_documents(store, tmp_path):
    # the second app (OpenInference kb_answer route, documents in retrieval.documents.N attributes, ingested
    # through the real ingest path): the judge must see each response's own answer and its own documents
    from obs_pipelines_tests.second_app import Profile, SupportBot, ingest_hours

    start = datetime(2026, 3, 4, 10)
    db.create_tables(store.engine)
    ingest_hours(store.engine, tmp_path, SupportBot(Profile(requests_per_hour=40, scale=0.1, seed=3)), start, 1)
    settings = OnlineEvalsSettings(rules=[{"name": "kb", "routes": ["kb_answer"], "scorers": ["judge_faithfulness"]}])
    with FakeJudge() as fake:
        client = settings.judge.model_copy(update={"base_url": fake.url, "backoff_s": 0.01}).client()
        hour = scoring.score_hour(store.engine, start, start + timedelta(hours=1), settings,
                                  scoring.scorers_for(settings, client))
        client.close()
    with store.engine.connect() as conn:
        roots = conn.execute(sa.text("SELECT trace_id, output FROM spans WHERE parent_span_id IS NULL")).all()
    answers = dict(roots)
    judged = [r for r in hour.frame.to_dict("records") if r["score"] is not None]
    assert judged and len(hour.judge_calls) == len(judged) == len(fake.requests)
    sent = {_blocks_of(prompt, "output")[0] for prompt in fake.user_prompts()}
    assert sent == {answers[r["trace_id"]] for r in judged}  # each response's own answer, verbatim
    for prompt in fake.user_prompts():
        assert '<document index="1">' in prompt  # documents read from the retrieval spans, numbered


def _blocks_of(text: str, tag: str) -> list[str]:
    import re

    return re.findall(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
