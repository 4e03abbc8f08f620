"""Error classification from real SDK error names and messages."""

from __future__ import annotations

import pandas as pd
import pytest

from obs_pipelines.monitoring.errors import ERROR_CLASSES, classify_error, classify_errors
from obs_pipelines.synth.catalog import CONTEXT_LENGTH, GUARDRAIL_BLOCK, PROVIDER_ERRORS, TOOL_ERROR

CASES = [
    ("openai.RateLimitError", "Error code: 429 - Rate limit reached for gpt-4o on tokens per min (TPM).", "llm",
     "rate_limit"),
    ("HTTPStatusError", "429 Too Many Requests", "llm", "rate_limit"),
    ("google.genai.errors.ClientError", "429 RESOURCE_EXHAUSTED. Resource has been exhausted", "llm", "rate_limit"),
    ("anthropic.APIStatusError", "Error code: 529 - {'type': 'error', 'error': {'type': 'overloaded_error'}}", "llm",
     "rate_limit"),
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


def test_anthropic_overloaded_is_a_rate_limit_other_overloaded_is_a_5xx():
    assert classify_error("anthropic.InternalServerError", "Overloaded", "llm", provider="anthropic") == "rate_limit"
    assert classify_error("anthropic.InternalServerError", "Overloaded", "llm", provider="openai") == "provider_5xx"


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
