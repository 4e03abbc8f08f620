"""Semantic-convention mapping rules (pure functions, no database): one behaviour per test."""

from __future__ import annotations

import json

import pytest

from obs_pipelines.ingest.mapping import ROW_COLUMNS, WARNINGS_KEY, map_request
from obs_pipelines_tests.ingest.otlp_builders import CHILD, ROOT, request, span


def one(attrs=None, **kw) -> dict:
    rows, rejects = map_request(request(span(attrs=attrs, **kw)))
    assert rejects == []
    (row,) = rows
    return row


def test_a_row_has_exactly_the_contract_columns_except_ingested_at():
    assert tuple(one()) == ROW_COLUMNS
    assert "ingested_at" not in ROW_COLUMNS


# ---- kinds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attrs, kind",
    [
        ({"openinference.span.kind": "LLM"}, "llm"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieval"),
        ({"openinference.span.kind": "RERANKER"}, "reranker"),
        ({"openinference.span.kind": "TOOL"}, "tool"),
        ({"openinference.span.kind": "AGENT"}, "agent"),
        ({"openinference.span.kind": "CHAIN"}, "chain"),
        ({"openinference.span.kind": "EMBEDDING"}, "embedding"),
        ({"openinference.span.kind": "GUARDRAIL"}, "guardrail"),
        ({"openinference.span.kind": "EVALUATOR"}, "evaluator"),
        ({"langfuse.observation.type": "GENERATION"}, "llm"),
        ({"langfuse.observation.type": "span"}, "chain"),
        ({"langfuse.observation.type": "TOOL"}, "tool"),
        ({"langfuse.observation.type": "AGENT"}, "agent"),
        ({"langfuse.observation.type": "CHAIN"}, "chain"),
        ({"langfuse.observation.type": "RETRIEVER"}, "retrieval"),
        ({"langfuse.observation.type": "EMBEDDING"}, "embedding"),
        ({"langfuse.observation.type": "EVALUATOR"}, "evaluator"),
        ({"langfuse.observation.type": "GUARDRAIL"}, "guardrail"),
        ({"langfuse.observation.type": "EVENT"}, "other"),
        ({"traceloop.span.kind": "workflow"}, "chain"),
        ({"traceloop.span.kind": "task"}, "chain"),
        ({"traceloop.span.kind": "agent"}, "agent"),
        ({"traceloop.span.kind": "tool"}, "tool"),
        ({"llm.request.type": "chat"}, "llm"),
        ({"llm.request.type": "embedding"}, "embedding"),
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent"),
        ({"ai.operationId": "ai.generateText.doGenerate"}, "llm"),
        ({"ai.operationId": "ai.streamText.doStream"}, "llm"),
        ({"ai.operationId": "ai.embed.doEmbed"}, "embedding"),
        ({"ai.operationId": "ai.toolCall"}, "tool"),
        ({"ai.operationId": "ai.generateText"}, "chain"),
        ({"gen_ai.tool.name": "search"}, "tool"),
        ({"gen_ai.agent.name": "planner"}, "agent"),
        ({"gen_ai.request.model": "gpt-4o"}, "llm"),
        ({}, "other"),
    ],
)
def test_kind_from_each_convention(attrs, kind):
    assert one(attrs)["kind"] == kind


def test_an_explicit_kind_wins_over_the_operation_name():
    assert one({"openinference.span.kind": "CHAIN", "gen_ai.operation.name": "chat"})["kind"] == "chain"


def test_the_generic_langfuse_span_type_yields_to_a_specific_hint():
    assert one({"langfuse.observation.type": "span", "gen_ai.operation.name": "execute_tool"})["kind"] == "tool"


# ---- model, provider, tokens, cost -----------------------------------------------------------------------


def test_model_is_the_response_model_and_a_different_request_model_stays_in_attributes():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"})
    assert row["model"] == "gpt-4o-2024-08-06"
    assert row["attributes"]["gen_ai.request.model"] == "gpt-4o"


def test_model_falls_back_to_the_request_model():
    assert one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})["model"] == "gpt-4o"


@pytest.mark.parametrize(
    "attrs, provider",
    [
        ({"gen_ai.provider.name": "OpenAI"}, "openai"),
        ({"gen_ai.system": "anthropic"}, "anthropic"),
        ({"llm.provider": "Google"}, "google"),
        ({"llm.system": "openai"}, "openai"),
        ({"ai.model.provider": "openai.responses", "ai.operationId": "ai.generateText.doGenerate"}, "openai"),
        ({"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "bedrock"}, "aws.bedrock"),
    ],
)
def test_provider_from_each_convention(attrs, provider):
    assert one(attrs)["provider"] == provider


@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cache_read.input_tokens": 100},
        {"gen_ai.usage.prompt_tokens": 120, "gen_ai.usage.completion_tokens": 30, "gen_ai.usage.cache_read_input_tokens": 100},
        {"llm.token_count.prompt": 120, "llm.token_count.completion": 30, "llm.token_count.prompt_details.cache_read": 100},
        {"ai.usage.promptTokens": 120, "ai.usage.completionTokens": 30, "ai.usage.cachedInputTokens": 100},
        {"langfuse.observation.usage_details": json.dumps({"input": 20, "output": 30, "input_cache_read": 100})},
    ],
    ids=["otel-genai", "otel-genai-deprecated", "openinference", "vercel", "langfuse-input-excludes-cache"],
)
def test_token_counts_from_each_convention_with_input_including_cached(attrs):
    row = one({"gen_ai.operation.name": "chat", **attrs})
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (120, 30, 100)


def test_token_counts_as_strings_are_integers():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "3.0"})
    assert (row["input_tokens"], row["output_tokens"]) == (12, 3)


def test_negative_token_counts_are_null_with_a_warning():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -5})
    assert row["input_tokens"] is None
    assert row["attributes"]["gen_ai.usage.input_tokens"] == -5
    assert row["attributes"][WARNINGS_KEY]


def test_tokens_on_a_span_that_is_not_a_model_call_stay_in_attributes():
    row = one({"openinference.span.kind": "AGENT", "gen_ai.usage.input_tokens": 500, "llm.cost.total": 0.1})
    assert (row["input_tokens"], row["cost_usd"]) == (None, None)
    assert row["attributes"]["gen_ai.usage.input_tokens"] == 500


# ---- usage from the raw provider response in output.value (agno emits no token attributes) ---------------

OPENAI_CHAT_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 100}},
}
OPENAI_RESPONSES_BODY = {
    "id": "resp_1",
    "object": "response",
    "model": "gpt-4.1-2025-04-14",
    "usage": {"input_tokens": 120, "output_tokens": 30, "input_tokens_details": {"cached_tokens": 100}},
}
ANTHROPIC_BODY = {
    "id": "msg_1",
    "type": "message",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "hi"}],
    "usage": {"input_tokens": 15, "output_tokens": 30, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5},
}


def _oi_llm(body, **extra) -> dict:
    return one({"openinference.span.kind": "LLM", "llm.model_name": "m", "output.value": json.dumps(body), **extra})


@pytest.mark.parametrize(
    "body", [OPENAI_CHAT_BODY, OPENAI_RESPONSES_BODY, ANTHROPIC_BODY], ids=["openai-chat", "openai-responses", "anthropic"]
)
def test_usage_is_read_from_the_response_body_in_output_value_with_input_including_cached(body):
    row = _oi_llm(body)
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (120, 30, 100)
    assert row["output"] == json.dumps(body)  # the output itself is kept as captured


def test_the_response_body_model_is_the_model_and_the_request_model_stays_in_attributes():
    row = _oi_llm(OPENAI_CHAT_BODY)
    assert row["model"] == "gpt-4o-mini-2024-07-18"
    assert row["attributes"]["llm.model_name"] == "m"


def test_a_response_model_attribute_wins_over_the_response_body_model():
    row = _oi_llm(OPENAI_CHAT_BODY, **{"llm.response.model": "gpt-4o-mini"})
    assert row["model"] == "gpt-4o-mini"
    assert row["input_tokens"] == 120


def test_token_attributes_win_over_the_response_body():
    row = _oi_llm(OPENAI_CHAT_BODY, **{"llm.token_count.prompt": 7, "llm.token_count.completion": 3})
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (7, 3, "m")


def test_usage_in_the_response_body_of_a_span_that_is_not_a_model_call_is_not_read():
    row = one({"openinference.span.kind": "AGENT", "output.value": json.dumps(OPENAI_CHAT_BODY)})
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (None, None, None)


@pytest.mark.parametrize(
    "output",
    [
        "the word usage in plain text",
        '{"usage": "heavy"}',
        '{"answer": "see \\"usage\\" below", "n": 1}',
        '{"usage": {"prompt_tokens": 1',
        '{"usage": {"total_tokens": 5}}',
    ],
    ids=["not-json", "usage-not-an-object", "usage-only-in-a-string", "truncated", "no-known-counts"],
)
def test_an_output_without_a_readable_usage_object_leaves_tokens_null(output):
    row = one({"openinference.span.kind": "LLM", "llm.model_name": "m", "output.value": output})
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (None, None, "m")
    assert row["output"] == output


@pytest.mark.parametrize(
    "attrs, cost",
    [
        ({"llm.cost.total": 0.0123}, 0.0123),
        ({"langfuse.observation.cost_details": json.dumps({"input": 0.01, "output": 0.02, "total": 0.03})}, 0.03),
        ({"langfuse.observation.cost_details": json.dumps({"input": 0.01, "output": 0.02})}, 0.03),
    ],
)
def test_cost_as_reported_by_the_app(attrs, cost):
    assert one({"gen_ai.operation.name": "chat", **attrs})["cost_usd"] == pytest.approx(cost)


def test_a_value_equal_to_the_winner_from_another_convention_is_not_duplicated():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 62, "ai.usage.promptTokens": 62})
    assert row["input_tokens"] == 62
    assert "ai.usage.promptTokens" not in row["attributes"]


def test_a_disagreeing_value_from_another_convention_stays_in_attributes():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 62, "llm.token_count.prompt": 70})
    assert row["input_tokens"] == 62
    assert row["attributes"]["llm.token_count.prompt"] == 70


def test_an_invalid_value_yields_to_a_valid_one_of_another_convention():
    row = one({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "abc", "llm.token_count.prompt": 70})
    assert row["input_tokens"] == 70
    assert row["attributes"]["gen_ai.usage.input_tokens"] == "abc"


# ---- input / output --------------------------------------------------------------------------------------


def test_input_and_output_from_openinference_values():
    row = one({"input.value": "q", "output.value": "a"})
    assert (row["input"], row["output"]) == ("q", "a")
    assert "input.value" not in row["attributes"]


def test_structured_genai_messages_become_json_text():
    msgs = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    row = one({"gen_ai.operation.name": "chat", "gen_ai.input.messages": msgs})
    assert json.loads(row["input"]) == msgs


def test_indexed_prompt_and_completion_attributes_are_reassembled_into_input_and_output():
    row = one(
        {
            "gen_ai.prompt.1.content": "hello",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "be nice",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hi!",
        }
    )
    assert json.loads(row["input"]) == [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"}]
    assert json.loads(row["output"]) == [{"role": "assistant", "content": "hi!"}]
    assert not any(k.startswith("gen_ai.prompt") for k in row["attributes"])


def test_indexed_prompts_stay_flattened_when_a_higher_priority_input_exists():
    row = one({"input.value": "raw", "gen_ai.prompt.0.content": "x", "gen_ai.prompt.0.role": "user"})
    assert row["input"] == "raw"
    assert row["attributes"]["gen_ai.prompt.0.content"] == "x"


def test_langfuse_input_and_output():
    row = one({"langfuse.observation.input": "in", "langfuse.observation.output": "out"})
    assert (row["input"], row["output"]) == ("in", "out")


# ---- retrieval documents -----------------------------------------------------------------------------------


def test_retrieved_documents_are_renested_in_index_order():
    row = one(
        {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.1.document.id": "d2",
            "retrieval.documents.1.document.content": "two",
            "retrieval.documents.1.document.score": 0.5,
            "retrieval.documents.0.document.id": "d1",
            "retrieval.documents.0.document.content": "one",
            "retrieval.documents.0.document.score": "0.9",
            "retrieval.documents.0.document.metadata": '{"src": "kb"}',
        }
    )
    assert row["attributes"]["retrieval.documents"] == [
        {"id": "d1", "content": "one", "score": 0.9, "metadata": '{"src": "kb"}'},
        {"id": "d2", "content": "two", "score": 0.5},
    ]
    assert not any(k.startswith("retrieval.documents.") for k in row["attributes"])


def test_reranker_output_documents_are_renested():
    row = one(
        {
            "openinference.span.kind": "RERANKER",
            "reranker.output_documents.0.document.id": "d9",
            "reranker.output_documents.0.document.score": 3.5,
            "reranker.query": "q",
        }
    )
    assert row["attributes"]["reranker.output_documents"] == [{"id": "d9", "score": 3.5}]
    assert row["attributes"]["reranker.query"] == "q"


# ---- status and errors -------------------------------------------------------------------------------------


def test_status_error_with_error_type_and_message():
    row = one({"error.type": "openai.RateLimitError"}, status={"code": 2, "message": "429 Too Many Requests"})
    assert (row["status"], row["error_type"], row["error_message"]) == ("error", "openai.RateLimitError", "429 Too Many Requests")
    assert "error.type" not in row["attributes"]


def test_error_type_comes_from_the_first_exception_event_without_class_noise():
    events = [
        {"name": "exception", "timeUnixNano": "1", "attributes": [
            {"key": "exception.type", "value": {"stringValue": "<class 'openai.RateLimitError'>"}},
            {"key": "exception.message", "value": {"stringValue": "slow down"}},
        ]},
        {"name": "exception", "attributes": [{"key": "exception.type", "value": {"stringValue": "Other"}}]},
    ]  # fmt: skip
    row = one(status={"code": "STATUS_CODE_ERROR"}, events=events)
    assert (row["error_type"], row["error_message"]) == ("openai.RateLimitError", "slow down")
    assert len(row["attributes"]["otel.events"]) == 2


def test_langfuse_level_error_means_status_error_with_its_status_message():
    row = one({"langfuse.observation.level": "ERROR", "langfuse.observation.status_message": "tool failed"})
    assert (row["status"], row["error_message"]) == ("error", "tool failed")


def test_an_unset_status_is_ok():
    assert one()["status"] == "ok"


# ---- prompt, route, user, session --------------------------------------------------------------------------


def test_prompt_name_and_version():
    row = one({"langfuse.observation.prompt.name": "qa", "langfuse.observation.prompt.version": 3})
    assert (row["prompt_name"], row["prompt_version"]) == ("qa", "3")
    assert one({"llm.prompt_template.version": "v2"})["prompt_version"] == "v2"


def _trace(root_attrs, child_attrs):
    rows, _ = map_request(request(span("root-name", attrs=root_attrs), span("child", span_id=CHILD, parent=ROOT, attrs=child_attrs)))
    return {r["span_id"]: r for r in rows}


@pytest.mark.parametrize("key", ["app.route", "http.route", "langfuse.trace.name", "traceloop.workflow.name"])
def test_route_attribute_on_any_span_is_the_route_of_every_span_of_the_trace(key):
    rows = _trace({}, {key: "checkout"})
    assert {r["route"] for r in rows.values()} == {"checkout"}
    assert key not in rows[CHILD]["attributes"]


def test_app_route_wins_over_http_route_which_stays_in_attributes():
    rows = _trace({"http.route": "/api/chat", "app.route": "support"}, {})
    assert rows[ROOT]["route"] == "support"
    assert rows[ROOT]["attributes"]["http.route"] == "/api/chat"


def test_route_falls_back_to_the_root_span_name():
    rows = _trace({}, {})
    assert {r["route"] for r in rows.values()} == {"root-name"}


def test_route_is_null_when_neither_an_attribute_nor_the_root_is_in_the_payload():
    rows, _ = map_request(request(span("orphan", span_id=CHILD, parent=ROOT)))
    assert rows[0]["route"] is None


@pytest.mark.parametrize(
    "key, column",
    [
        ("user.id", "user_id"),
        ("enduser.id", "user_id"),
        ("langfuse.user.id", "user_id"),
        ("session.id", "session_id"),
        ("gen_ai.conversation.id", "session_id"),
        ("langfuse.session.id", "session_id"),
    ],
)
def test_user_and_session_are_propagated_to_spans_that_have_none(key, column):
    rows = _trace({key: "u-1"}, {})
    assert rows[CHILD][column] == "u-1"


def test_a_span_keeps_its_own_user():
    rows = _trace({"user.id": "root-user"}, {"user.id": "child-user"})
    assert (rows[ROOT]["user_id"], rows[CHILD]["user_id"]) == ("root-user", "child-user")


def test_an_integer_user_id_is_text():
    assert one({"user.id": 42})["user_id"] == "42"


# ---- attribute values -------------------------------------------------------------------------------------


def test_every_anyvalue_kind_is_decoded():
    row = one({"s": "x", "i": 7, "d": 1.5, "b": True, "arr": [1, "a"], "kv": {"k": [True]}, "bytes": b"\x00\x01"})
    a = row["attributes"]
    assert (a["s"], a["i"], a["d"], a["b"], a["arr"], a["kv"], a["bytes"]) == ("x", 7, 1.5, True, [1, "a"], {"k": [True]}, "AAE=")


def test_non_finite_doubles_are_kept_as_text():
    rows, _ = map_request(request(span(attrs=None) | {"attributes": [{"key": "x", "value": {"doubleValue": "NaN"}}]}))
    assert rows[0]["attributes"]["x"] == "NaN"


def test_service_name_and_other_resource_attributes():
    req = request(span(), service="checkout-api")
    req["resourceSpans"][0]["resource"]["attributes"].append({"key": "deployment.environment.name", "value": {"stringValue": "prod"}})
    (row,), _ = map_request(req)
    assert row["service_name"] == "checkout-api"
    assert row["attributes"]["otel.resource"] == {"deployment.environment.name": "prod"}
    assert row["attributes"]["otel.scope.name"] == "test"
