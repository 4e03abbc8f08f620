"""Canonical model keys: the request model and the response model of one model get the same key.

A failed LLM call carries only the request model (``gpt-4o``), a successful one the response model
(``gpt-4o-2024-08-06``). Rollups "by model" group by :func:`model_key`, so both calls land in one row (the
exact names stay listed beside it).

How a name becomes a key (:func:`model_key`):

1. trimmed and lower-cased; a path prefix is dropped (Vertex ``projects/../models/gemini-2.5-flash``,
   OpenRouter ``openai/gpt-4o``, Gemini ``models/gemini-1.5-pro``), and so is a Bedrock region / vendor
   prefix (``us.anthropic.``);
2. version suffixes are stripped, repeatedly: Bedrock ``-v2:0``, Vertex ``@20241022``, ``-latest``,
   ``-2024-08-06``, ``-20241022``, ``-08-2024``, ``-05-20``, ``-0613`` / ``-2411``, ``-002``;
3. genai-prices' own name matching maps what is left to its model id where it knows the model (aliases the
   suffix rules cannot see: ``claude-3-5-sonnet-v2`` -> ``claude-3-5-sonnet``, ``gpt-4-1106-preview`` ->
   ``gpt-4-turbo``), and that id gets step 2 too (``claude-3-opus-latest`` -> ``claude-3-opus``).

Step 3 runs on the stripped name, so a dated version genai-prices has a price row of its own
(``gpt-4o-2024-05-13``) still shares the key of its alias. OpenAI fine-tunes (``ft:...``) keep their name:
a fine-tune is its own model. Keys are cached per distinct name; :func:`model_keys` maps a column through
its distinct values only (no per-row Python).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

_PATH_PREFIX = re.compile(r"^.*/")
# Bedrock model ids: [region.]vendor.model, e.g. us.anthropic.claude-3-5-sonnet-20241022-v2:0
_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|us-gov|global|ca|jp|au)\.)?"
    r"(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|twelvelabs|stability)\."
)
_VERSION_SUFFIX = re.compile(
    r"(?:-v\d+:\d+"  # Bedrock version tag
    r"|@.*"  # Vertex version (@20241022, @001, @latest)
    r"|:latest"  # Ollama tag
    r"|[-_]latest"
    r"|-\d{4}-\d{2}-\d{2}"  # OpenAI date
    r"|-\d{8}"  # Anthropic date
    r"|-\d{2}-\d{4}"  # Cohere date (08-2024)
    r"|-\d{2}-\d{2}"  # preview dates (gemini-2.5-flash-preview-05-20)
    r"|-\d{3,4}"  # OpenAI / Mistral / DeepSeek snapshots (0613, 2411, 0324), Gemini revisions (002)
    r")$"
)


def _strip_versions(name: str) -> str:
    while True:
        stripped = _VERSION_SUFFIX.sub("", name)
        if stripped == name or not stripped:
            return name
        name = stripped


def _genai_prices_id(name: str) -> str | None:
    # imported here: genai-prices loads its data snapshot on first use, and this module sits on the
    # import path of the Dagster definitions
    from genai_prices import data_snapshot

    try:
        _provider, model = data_snapshot.get_snapshot().find_provider_model(name, None, None, None)
    except LookupError:
        return None
    return str(model.id).lower()


@lru_cache(maxsize=65536)
def model_key(name: str | None) -> str | None:
    """Canonical key of a model name (see the module docstring); None for a missing / blank name."""
    if name is None:
        return None
    key = str(name).strip().lower()
    if not key:
        return None
    if key.startswith("ft:"):
        return key
    key = _BEDROCK_PREFIX.sub("", _PATH_PREFIX.sub("", key)) or key
    key = _strip_versions(key)
    matched = _genai_prices_id(key)
    return _strip_versions(matched) if matched else key


def model_keys(names: pd.Series) -> pd.Series:
    """:func:`model_key` of every value of ``names`` (index preserved; missing names stay missing),
    computed once per distinct name."""
    codes, uniques = pd.factorize(names.astype("object"), use_na_sentinel=True)
    keys = pd.array([model_key(u) for u in uniques] + [None], dtype="object")
    # code -1 (missing) picks the trailing None
    return pd.Series(keys[codes], index=names.index, dtype="object", name=names.name)


def names_by_key(names: Iterable[str | None]) -> dict[str, str]:
    """``{key: "exact, names"}``: the distinct exact names behind each key, sorted, comma-separated."""
    grouped: dict[str, set[str]] = {}
    for name in names:
        key = model_key(name)
        if key is not None:
            grouped.setdefault(key, set()).add(str(name))
    return {key: ", ".join(sorted(group)) for key, group in grouped.items()}


__all__ = ["model_key", "model_keys", "names_by_key"]
