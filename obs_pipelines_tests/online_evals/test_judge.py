"""LLM-as-judge scorers against a fake OpenAI-compatible endpoint on 127.0.0.1 (no test needs the internet):
success, malformed answer, 429 then success, timeout, the concurrency limit, and the asset storing every call."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from obs_pipelines.online_evals import registry
from obs_pipelines.online_evals.judge import JudgeClient, parse_verdict
from obs_pipelines.online_evals.scorers.base import Example
from obs_pipelines.online_evals.scorers.judge import JudgeFailed
from obs_pipelines.online_evals.tables import eval_scores, judge_calls
from obs_pipelines_tests.online_evals.conftest import load_traffic
from obs_pipelines_tests.online_evals.fake_judge import FakeJudge

EXAMPLE = Example(input="Can I cancel my order?", output="Yes, until it is packed.", expected="Yes, before packing.",
                  context=("Orders can be cancelled until they are packed.",))


def judged(fake: FakeJudge, name: str = "judge_factuality", **client_options):
    client = JudgeClient(fake.url, "judge-model", "secret-key", backoff_s=0.01, **client_options)
    return registry.get(name).bind(client)


def test_a_judge_answer_becomes_a_score_with_its_call_recorded():
    with FakeJudge() as fake:
        score = judged(fake)(EXAMPLE)
    call = score.details["judge_call"]
    assert score.value == 0.75 and score.details["judge_reason"] == "mostly right"  # 4 on 1-5
    assert call.status == "ok" and call.attempts == 1 and (call.input_tokens, call.output_tokens) == (120, 12)
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret-key"
    assert request["body"]["model"] == "judge-model" and "Yes, before packing." in request["body"]["messages"][0]["content"]


def test_a_malformed_judge_answer_is_a_null_score_with_the_reason():
    with FakeJudge(answer="I think it is pretty good!") as fake:
        score = judged(fake)(EXAMPLE)
    assert score.value is None and score.reason == "judge answer malformed"
    assert score.details["judge_call"].raw_answer == "I think it is pretty good!"


def test_a_429_is_retried_with_backoff_then_succeeds():
    with FakeJudge() as fake:
        fake.script.extend([(429, '{"error": "rate limited"}'), (503, "overloaded")])
        score = judged(fake)(EXAMPLE)
    assert score.value == 0.75 and score.details["judge_call"].attempts == 3 and len(fake.requests) == 3


def test_a_judge_that_times_out_raises_with_the_attempts_recorded():
    with FakeJudge(delay_s=1.0) as fake:
        scorer = judged(fake, timeout_s=0.2, max_retries=1)
        with pytest.raises(JudgeFailed) as failed:
            scorer(EXAMPLE)
    assert failed.value.call.status == "timeout" and failed.value.call.attempts == 2


def test_the_concurrency_limit_is_respected():
    with FakeJudge(delay_s=0.1) as fake:
        scorer = judged(fake, "judge_answer_relevance", concurrency=3)
        with ThreadPoolExecutor(12) as pool:
            scores = list(pool.map(scorer, [EXAMPLE] * 12))
    assert all(s.value == 0.75 for s in scores) and fake.max_in_flight == 3


def test_verdicts_are_parsed_from_fenced_json_and_bare_numbers_and_refused_out_of_scale():
    assert parse_verdict('```json\n{"score": 5, "reason": "r"}\n```', (1, 5)) == (1.0, "r", "ok")
    assert parse_verdict(" 3 ", (1, 5))[0] == 0.5
    assert parse_verdict('{"score": 9}', (1, 5)) == (None, None, "malformed")


def test_without_an_endpoint_a_judge_scorer_gives_a_null_score():
    assert registry.get("judge_safety")(EXAMPLE).reason == "no judge endpoint configured"


def test_the_asset_stores_every_judge_call_next_to_its_score(store, monkeypatch):
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.settings import Settings

    start = datetime(2026, 3, 2, 9)
    load_traffic(store.engine, start, 1, rate=0.005)
    with FakeJudge() as fake:
        settings = Settings(db_url=store.db_url, partitions_start="2026-03-01-00:00", phases=["online_evals"],
                            online_evals={"rules": [{"name": "judged", "scorers": ["judge_answer_relevance", "refusal"]}],
                                          "judge": {"base_url": fake.url, "model": "judge-model", "backoff_s": 0.01,
                                                    "usd_per_m_input": 1.0, "usd_per_m_output": 2.0}})
        job = build_definitions(settings).resolve_job_def("online_evals_hourly_job")
        instance = dg.DagsterInstance.ephemeral()
        assert job.execute_in_process(partition_key="2026-03-02-09:00", instance=instance).success
        requests = len(fake.requests)
        assert job.execute_in_process(partition_key="2026-03-02-09:00", instance=instance).success
        assert len(fake.requests) == requests  # a scored hour asks the judge nothing again
    with store.engine.connect() as conn:
        scores = conn.execute(sa.select(eval_scores).where(eval_scores.c.scorer == "judge_answer_relevance")).mappings().all()
        calls = conn.execute(sa.select(judge_calls)).mappings().all()
    answered = [s for s in scores if s["score"] is not None]
    assert answered and len(calls) == len(answered) == requests
    assert all(s["score"] == 0.75 and s["scorer_version"].endswith("@judge-model") for s in answered)
    call = calls[0]
    assert call["status"] == "ok" and call["model"] == "judge-model" and "Answer with one JSON object" in call["prompt"]
    assert call["cost_usd"] == pytest.approx((120 * 1.0 + 12 * 2.0) / 1e6) and json.loads(call["raw_answer"])["score"] == 4
