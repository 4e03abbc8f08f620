"""The judge client (scorers/judge_client.py) against a real HTTP server on 127.0.0.1 (fake_judge.py): request
parameters from the settings, retries, a deadline per attempt that a trickled body cannot stretch, a capped
body, function-call answers, cost, and texts made storable. Hostile cases use small timeouts: no real waits."""

from __future__ import annotations

import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest
from genai_prices import Usage, calc_price

from obs_pipelines.online_evals.config import JudgeSettings
from obs_pipelines.pricing import load_prices
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example
from obs_pipelines.scorers.judge import JudgeFailed
from obs_pipelines.scorers.judge_client import JudgeClient, storable
from obs_pipelines_tests.online_evals.fake_judge import FakeJudge, completion

EXAMPLE = Example(input="Can I cancel my order?", output="Yes, until it is packed.", expected="Yes, before packing.",
                  context=("Orders can be cancelled until they are packed.",))
MESSAGES = [{"role": "user", "content": "judge this"}]


def client(fake: FakeJudge, **options) -> JudgeClient:
    options.setdefault("backoff_s", 0.01)
    return JudgeClient(fake.url, "judge-model", "secret-key", **options)


def judged(fake: FakeJudge, name: str = "judge_answer_relevance", **options):
    return registry.get(name).bind(client(fake, **options))


def test_a_judge_answer_becomes_the_score_of_its_choice_with_the_call_recorded():
    with FakeJudge('{"reasoning": "It answers the question.", "choice": "A"}') as fake:
        score = judged(fake)(EXAMPLE)
    call = score.details["judge_call"]
    assert score.value == 1.0 and score.details["judge_choice"] == "A"
    assert score.details["judge_reason"] == "It answers the question."
    assert call.status == "ok" and call.attempts == 1 and (call.input_tokens, call.output_tokens) == (120, 12)
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret-key"
    assert request["body"]["model"] == "judge-model" and [m["role"] for m in request["body"]["messages"]] == [
        "system", "user"]


def test_a_malformed_answer_is_a_null_score_with_the_reason_never_zero():
    with FakeJudge("I think it is pretty good!") as fake:
        score = judged(fake)(EXAMPLE)
    assert score.value is None and score.reason == "judge answer malformed" and score.details["judge_problem"]
    assert score.details["judge_call"].raw_answer == "I think it is pretty good!"


def test_request_parameters_come_from_the_settings():
    with FakeJudge() as fake:
        client(fake).complete(MESSAGES)
        client(fake, temperature=None, response_format={"type": "json_object"},
               extra_params={"max_tokens": 300, "seed": 7}).complete(MESSAGES)
    default, custom = (r["body"] for r in fake.requests)
    assert default["temperature"] == 0 and "response_format" not in default
    assert "temperature" not in custom and custom["response_format"] == {"type": "json_object"}
    assert (custom["max_tokens"], custom["seed"]) == (300, 7)


def test_an_endpoint_refusing_a_parameter_is_configured_around():
    # a reasoning model's endpoint refusing temperature: the call fails at once (a 400 is not retried) until
    # the setting is null
    def refuse_temperature(body):
        if "temperature" in body:
            return 400, '{"error": {"message": "Unsupported parameter: temperature"}}'
        return 200, completion('{"reasoning": "r", "choice": "A"}')

    with FakeJudge() as fake:
        fake.reply = refuse_temperature
        refused = client(fake).complete(MESSAGES)
        answered = client(fake, temperature=None).complete(MESSAGES)
    assert refused.status == "error" and refused.attempts == 1 and "Unsupported parameter" in refused.error
    assert answered.status == "ok"


def test_extra_params_may_not_override_what_the_client_sets():
    with pytest.raises(ValueError, match="messages"):
        JudgeSettings(extra_params={"messages": []})


def test_a_429_and_a_503_are_retried_with_backoff_then_succeed():
    with FakeJudge() as fake:
        fake.script.extend([(429, '{"error": "rate limited"}'), (503, "overloaded")])
        score = judged(fake)(EXAMPLE)
    assert score.value == 1.0 and score.details["judge_call"].attempts == 3 and len(fake.requests) == 3


def test_a_judge_that_times_out_raises_with_the_attempts_recorded():
    with FakeJudge(delay_s=1.0) as fake:
        scorer = judged(fake, timeout_s=0.2, max_retries=1)
        with pytest.raises(JudgeFailed) as failed:
            scorer(EXAMPLE)
    assert failed.value.call.status == "timeout" and failed.value.call.attempts == 2


def test_a_trickled_body_cannot_stretch_an_attempt_past_its_deadline():
    # 1 byte every 20 ms: the whole body would take several seconds; each read alone is fast, so only a
    # deadline over the attempt stops it (the probe: 22 s at a 2 s per-read timeout)
    with FakeJudge() as fake:
        fake.trickle = (1, 0.02)
        call = client(fake, timeout_s=0.3, max_retries=0).complete(MESSAGES)
    assert call.status == "timeout" and call.attempts == 1
    assert call.latency_ms < 1500  # the 0.3 s deadline plus scheduling slack, far below the trickle's seconds


def test_trickled_headers_cannot_stretch_an_attempt_either():
    # the deadline bounds every read, the header reads included
    with FakeJudge() as fake:
        fake.slow_headers = 0.02
        call = client(fake, timeout_s=0.3, max_retries=0).complete(MESSAGES)
    assert call.status == "timeout" and call.latency_ms < 1500


@pytest.mark.parametrize("announced", [True, False])
def test_a_50_mb_answer_is_refused_as_too_large_with_memory_bounded(announced):
    with FakeJudge() as fake:
        fake.flood = (50 * 2**20, announced)
        tracemalloc.start()
        try:
            call = client(fake, max_answer_bytes=2**20).complete(MESSAGES)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert call.status == "too_large" and "max_answer_bytes" in call.error and call.raw_answer is None
    assert peak < 8 * 2**20  # the 1 MiB cap plus a chunk, not the 50 MiB body
    assert call.attempts == 1  # not retried: the same flood would be paid for again


def test_a_too_large_answer_is_a_null_score_not_a_failure_to_retry():
    with FakeJudge() as fake:
        fake.flood = (4 * 2**20, True)
        score = judged(fake, max_answer_bytes=2**20)(EXAMPLE)
    assert score.value is None and score.reason == "judge answer too large"


def test_the_verdict_may_come_as_a_function_call():
    with FakeJudge() as fake:
        fake.reply = lambda body: (200, completion(None, '{"reasoning": "off topic", "choice": "C"}'))
        score = judged(fake, use_tool=True)(EXAMPLE)
    body = fake.requests[0]["body"]
    assert body["tools"][0]["function"]["name"] == "select_choice"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "select_choice"}}
    assert score.value == 0.0 and score.details["judge_answer_form"] == "tool_call"
    assert "off topic" in score.details["judge_call"].stored()["raw_answer"]


def test_the_concurrency_limit_is_respected():
    with FakeJudge(delay_s=0.1) as fake:
        scorer = judged(fake, concurrency=3)
        with ThreadPoolExecutor(12) as pool:
            scores = list(pool.map(scorer, [EXAMPLE] * 12))
    assert all(s.value == 1.0 for s in scores) and fake.max_in_flight == 3


def test_the_cost_comes_from_genai_prices_when_no_price_is_set_by_hand():
    # 120 prompt / 12 completion tokens of gpt-4o-mini, priced by genai-prices itself
    expected = float(calc_price(Usage(input_tokens=120, output_tokens=12), "gpt-4o-mini", provider_id="openai").total_price)
    with FakeJudge() as fake:
        fake.reply = lambda body: (200, completion('{"choice": "A"}', model="gpt-4o-mini"))
        priced = client(fake, prices=load_prices()).complete(MESSAGES)
        by_hand = client(fake, prices=load_prices(), usd_per_m_input=1.0, usd_per_m_output=2.0).complete(MESSAGES)
        unknown = client(fake, prices=load_prices())
        fake.reply = lambda body: (200, completion('{"choice": "A"}', model="our-private-judge-7b"))
        unpriced = unknown.complete(MESSAGES)
    assert expected > 0 and priced.cost_usd == pytest.approx(expected)
    assert by_hand.cost_usd == pytest.approx((120 * 1.0 + 12 * 2.0) / 1e6)  # hand-set prices win
    assert unpriced.cost_usd is None  # a model no price list knows: unknown, not 0


def test_the_settings_client_prices_with_the_bundled_table_by_default():
    settings = JudgeSettings(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini")
    assert settings.client().prices is not None and JudgeSettings().client() is None


def test_stored_texts_are_nul_safe_and_cut_visibly():
    assert storable("a\x00b", 100) == "a\\u0000b"
    cut = storable("x" * 50, 10)
    assert cut.startswith("x" * 10) and "50 characters in all" in cut and len(cut) < 50
    assert storable(None, 10) is None


def test_the_judge_identity_changes_with_the_request_settings():
    with FakeJudge() as fake:
        base, hotter, tool = client(fake), client(fake, temperature=0.7), client(fake, use_tool=True)
    assert base.identity.startswith("judge-model~") and len({base.identity, hotter.identity, tool.identity}) == 3


def test_an_unreadable_200_is_an_error_with_the_body_kept():
    with FakeJudge() as fake:
        fake.reply = lambda body: (200, "<html>gateway page</html>")
        call = client(fake).complete(MESSAGES)
    assert call.status == "error" and "unreadable" in call.error and "gateway" in call.raw_answer


def test_content_as_a_list_of_parts_is_read():
    with FakeJudge() as fake:
        fake.reply = lambda body: (200, json.dumps({"choices": [{"message": {"content": [
            {"type": "text", "text": '{"choice": '}, {"type": "text", "text": '"B"}'}]}}]}))
        score = judged(fake)(EXAMPLE)
    assert score.value == 0.5
