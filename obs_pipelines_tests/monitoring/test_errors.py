"""Error classification from real SDK error names and messages."""

from __future__ import annotations

import pandas as pd
import pytest

from obs_pipelines.store.errors import ERROR_CLASSES, classify_error, classify_errors
from obs_pipelines.synth.catalog import CONTEXT_LENGTH, GUARDRAIL_BLOCK, PROVIDER_ERRORS, TOOL_ERROR

CASES = [
    ("openai.RateLimitError", "Error code: 429 - Rate limit reached for gpt-4o on tokens per min (TPM).", "llm",
     "rate_limit"),
    ("HTTPStatusError", "429 Too Many Requests", "llm", "rate_limit"),
    ("google.genai.errors.ClientError", "429 RESOURCE_EXHAUSTED. Resource has been exhausted", "llm", "rate_limit"),
    ("anthropic.APIStatusError", "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error'}}", "llm",
     "provider_5xx"),
    ("openai.InternalServerError", "Error code: 500 - The server had an error", "llm", "provider_5xx"),
    ("ServiceUnavailable", "503 Service Unavailable", "llm", "provider_5xx"),
    ("openai.InternalServerError", "Error code: 503 - The server is overloaded or not ready yet.", "llm",
     "provider_5xx"),
    ("openai.APIConnectionError", "Connection error.", "llm", "provider_5xx"),
    ("503", None, "llm", "provider_5xx"),
    ("openai.APITimeoutError", "Request timed out.", "llm", "timeout"),
    ("httpx.ReadTimeout", "The read operation timed out", "embedding", "timeout"),
    ("DeadlineExceeded", "504 Deadline Exceeded", "llm", "timeout"),
    ("openai.BadRequestError",
     "Error code: 400 - This model's maximum context length is 128000 tokens (context_length_exceeded)", "llm",
     "context_length"),
    ("anthropic.BadRequestError", "prompt is too long: 210000 tokens > 200000 maximum", "llm", "context_length"),
    ("openai.BadRequestError", "Error code: 400 - Invalid value for 'temperature'", "llm", "invalid_request"),
    ("openai.UnprocessableEntityError", "Error code: 422", "llm", "invalid_request"),
    ("openai.AuthenticationError", "Error code: 401 - Incorrect API key provided", "llm", "auth"),
    ("anthropic.PermissionDeniedError", "Error code: 403", "llm", "auth"),
    ("ValueError", "could not parse the order id", "tool", "tool_error"),
    ("ToolExecutionError", "lookup failed", "agent", "tool_error"),
    ("GuardrailBlocked", "Output blocked by guardrail: pii", "chain", "guardrail_block"),
    (None, None, "guardrail", "guardrail_block"),
    ("openai.BadRequestError", "finish_reason=content_filter", "llm", "guardrail_block"),
    ("KeyError", "'answer'", "chain", "other"),
    ("ValueError", "used 500 tokens", "llm", "other"),
    (None, None, None, "other"),
]


@pytest.mark.parametrize(("error_type", "message", "kind", "expected"), CASES)
def test_classify_error_recognises_real_world_errors(error_type, message, kind, expected):
    assert classify_error(error_type, message, kind) == expected


# provider capacity failures: an outage, never a rate limit
OUTAGES = [
    ("anthropic.InternalServerError", "Error code: 529 - overloaded_error: Overloaded"),
    ("anthropic.InternalServerError", "Overloaded"),
    ("anthropic.APIStatusError", "{'type': 'error', 'error': {'type': 'overloaded_error', 'message': 'Overloaded'}}"),
    ("OverloadedError", "529 Overloaded"),
    ("openai.InternalServerError", "Error code: 500 - {'error': {'message': 'The server had an error'}}"),
    ("openai.APIStatusError", "Error code: 502 - Bad gateway"),
    ("openai.InternalServerError", "Error code: 503 - The server is overloaded or not ready yet."),
    ("botocore.errorfactory.ServiceUnavailableException",
     "An error occurred (ServiceUnavailableException) when calling the InvokeModel operation: Too many requests, "
     "please wait before trying again."),
    ("ServiceUnavailable", "Service is temporarily unavailable"),
    ("google.api_core.exceptions.ServiceUnavailable", "503 UNAVAILABLE: The service is currently unavailable."),
    ("grpc.RpcError", "StatusCode.UNAVAILABLE: failed to connect to all addresses"),
    ("google.genai.errors.ServerError", "503 UNAVAILABLE. The model is overloaded. Please try again later."),
    ("litellm.RateLimitError", "AnthropicException - status 529: overloaded_error"),
]
RATE_LIMITS = [
    ("openai.RateLimitError", "Error code: 429 - Rate limit reached for gpt-4o"),
    ("anthropic.RateLimitError", "Error code: 429 - rate_limit_error: Number of request tokens has exceeded"),
    ("openai.RateLimitError", "Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}"),
    ("botocore.errorfactory.ThrottlingException",
     "An error occurred (ThrottlingException) when calling the InvokeModel operation: Too many requests"),
    ("google.genai.errors.ClientError", "429 RESOURCE_EXHAUSTED. Resource has been exhausted"),
    ("openai.RateLimitError", "Error code: 429 - The engine is currently overloaded"),
]


@pytest.mark.parametrize(("error_type", "message"), OUTAGES)
def test_provider_capacity_errors_are_an_outage_never_a_rate_limit(error_type, message):
    assert classify_error(error_type, message, "llm") == "provider_5xx"


@pytest.mark.parametrize(("error_type", "message"), RATE_LIMITS)
def test_rate_limits_stay_rate_limits(error_type, message):
    assert classify_error(error_type, message, "llm") == "rate_limit"


def test_http_status_attribute_decides_between_outage_and_rate_limit_on_client_spans():
    assert classify_error("anthropic.APIStatusError", "Overloaded", "llm", status_code=529) == "provider_5xx"
    assert classify_error("APIError", "try again later", "llm", status_code=503) == "provider_5xx"
    assert classify_error("APIError", "try again later", "llm", status_code=429) == "rate_limit"
    assert classify_error("APIError", "try again later", "embedding", status_code="503") == "provider_5xx"
    # a root span's status is the app's own answer, not a provider's
    assert classify_error("KeyError", "'answer'", "chain", status_code=500) == "other"


def test_every_provider_server_shape_of_the_generator_is_an_outage():
    for provider, shapes in PROVIDER_ERRORS.items():
        server = shapes["server"]
        assert classify_error(server.error_type, server.message, "llm",
                              status_code=server.http_status) == "provider_5xx", provider
        assert classify_error(server.error_type, server.message, "llm") == "provider_5xx", provider
        limit = shapes["rate_limit"]
        assert classify_error(limit.error_type, limit.message, "llm", status_code=limit.http_status) == "rate_limit"


def test_classify_errors_is_vectorized_and_keeps_the_index():
    frame = pd.DataFrame(CASES, columns=["error_type", "error_message", "kind", "expected"], index=range(100, 126))
    out = classify_errors(frame)
    assert out.index.equals(frame.index)
    assert out.tolist() == frame["expected"].tolist()
    assert set(out) <= set(ERROR_CLASSES)


def test_every_error_shape_of_the_synthetic_app_gets_its_class():
    shapes = {("openai", k): v for k, v in PROVIDER_ERRORS["openai"].items()}
    assert classify_error(shapes["openai", "rate_limit"].error_type, shapes["openai", "rate_limit"].message,
                          "llm") == "rate_limit"
    assert classify_error(shapes["openai", "server"].error_type, shapes["openai", "server"].message,
                          "llm") == "provider_5xx"
    assert classify_error(shapes["openai", "timeout"].error_type, shapes["openai", "timeout"].message,
                          "llm") == "timeout"
    google = PROVIDER_ERRORS["google"]
    assert classify_error(google["server"].error_type, google["server"].message, "llm") == "provider_5xx"
    assert classify_error(google["rate_limit"].error_type, google["rate_limit"].message, "llm") == "rate_limit"
    assert classify_error(CONTEXT_LENGTH.error_type, CONTEXT_LENGTH.message, "llm") == "context_length"
    assert classify_error(TOOL_ERROR.error_type, TOOL_ERROR.message, "tool") == "tool_error"
    assert classify_error(GUARDRAIL_BLOCK.error_type, GUARDRAIL_BLOCK.message, "guardrail") == "guardrail_block"
