"""Canonical model keys: the request model of a call and the response model of the same model agree."""

from __future__ import annotations

import pandas as pd
import pytest

from obs_pipelines.pricing.models import model_key, model_keys, names_by_key

SAME_MODEL = [
    # (request model as a failed call carries it, response models of successful calls)
    ("gpt-4o", ["gpt-4o-2024-08-06", "gpt-4o-2024-05-13", "GPT-4o ", "openai/gpt-4o"]),
    ("gpt-4o-mini", ["gpt-4o-mini-2024-07-18"]),
    ("claude-3-5-sonnet-latest", ["claude-3-5-sonnet-20241022", "claude-3-5-sonnet-v2@20241022",
                                  "anthropic.claude-3-5-sonnet-20241022-v2:0",
                                  "us.anthropic.claude-3-5-sonnet-20241022-v2:0"]),
    ("claude-sonnet-4-5", ["claude-sonnet-4-5-20250929"]),
    ("claude-opus-4", ["claude-opus-4-20250514", "claude-opus-4-0"]),
    ("gemini-2.5-flash", ["projects/p/locations/europe-central2/publishers/google/models/gemini-2.5-flash",
                          "models/gemini-2.5-flash"]),
    ("gemini-1.5-pro", ["gemini-1.5-pro-002", "gemini-1.5-pro@002"]),
    ("gpt-5-mini", ["gpt-5-mini-2025-08-07"]),
    ("gpt-4", ["gpt-4-0613"]),
    ("mistral-large-latest", ["mistral-large-2411"]),
    ("command-r-plus", ["command-r-plus-08-2024"]),
    ("llama3", ["llama3:latest"]),
    ("acme-internal-chat", ["acme-internal-chat-2025-01-31"]),  # unknown to genai-prices: suffix rules only
]


@pytest.mark.parametrize(("request_model", "response_models"), SAME_MODEL)
def test_request_and_response_model_names_share_a_key(request_model, response_models):
    assert {model_key(request_model)} == {model_key(m) for m in response_models}


def test_different_models_keep_different_keys():
    names = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o1", "claude-3-5-sonnet", "claude-3-5-haiku", "claude-sonnet-4-5",
             "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-preview-05-20", "text-embedding-3-small",
             "llama3:8b", "llama3:70b", "ft:gpt-4o-mini-2024-07-18:acme::abc123", "acme-ft-1", "mystery-llm"]
    keys = [model_key(n) for n in names]
    assert len(set(keys)) == len(names), dict(zip(names, keys))


def test_key_of_a_missing_name_is_missing():
    assert model_key(None) is None
    assert model_key("  ") is None


def test_model_keys_maps_a_column_through_its_distinct_values():
    names = pd.Series(["gpt-4o", None, "gpt-4o-2024-08-06", "gpt-4o"] * 50_000, index=range(7, 200_007))
    keys = model_keys(names)
    assert keys.index.equals(names.index)
    assert keys.iloc[:4].tolist() == ["gpt-4o", None, "gpt-4o", "gpt-4o"]
    assert keys.isna().sum() == 50_000


def test_names_by_key_lists_the_exact_names_sorted():
    assert names_by_key(["gpt-4o-2024-08-06", "gpt-4o", None, "gpt-4o", "claude-3-5-sonnet-20241022"]) == {
        "gpt-4o": "gpt-4o, gpt-4o-2024-08-06", "claude-3-5-sonnet": "claude-3-5-sonnet-20241022"}
