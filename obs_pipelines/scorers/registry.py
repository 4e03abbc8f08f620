"""Every scorer by name: ``get(name, **options)``, ``all_scorers()``, and the scorers a settings block
selects. The offline-evals phase uses the same API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from obs_pipelines.scorers import agents, format, judge, rag, reference, safety, semantic
from obs_pipelines.scorers.base import Scorer

FAMILIES: dict[str, tuple[type[Scorer], ...]] = {
    "reference": reference.SCORERS,
    "format": format.SCORERS,
    "safety": safety.SCORERS,
    "rag": rag.SCORERS,
    "agents": agents.SCORERS,
    "semantic": semantic.SCORERS,  # local embedding model: the optional extra obs_pipelines[embeddings]
    "judge": judge.SCORERS,  # LLM-as-judge: null scores until a judge endpoint is bound (settings.online_evals.judge)
}
REGISTRY: dict[str, type[Scorer]] = {cls.name: cls for family in FAMILIES.values() for cls in family}
FAMILY_OF: dict[str, str] = {cls.name: family for family, classes in FAMILIES.items() for cls in classes}

# what production traffic is scored with when the settings name no scorers: every scorer that needs neither
# an expected answer nor per-app options (a schema, a pattern, a list of values, a direction: contains_link's
# "a link is good" holds for some apps only, so it runs where a rule names it)
DEFAULT_SCORERS: tuple[str, ...] = (
    "length_bounds", "word_count_bounds", "language_match",
    "pii_leak", "secret_leak", "prompt_injection", "refusal", "profanity",
    "groundedness", "context_relevance", "empty_context", "question_coverage",
    "loop_score", "tool_error_rate", "step_budget", "tool_args_valid",
)


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str, **options: Any) -> Scorer:
    """A scorer instance by name, with options (unknown names and options raise ValueError)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown scorer {name!r}{hint}; known: {', '.join(names())}") from None
    return cls(**options)


def all_scorers() -> list[Scorer]:
    """One instance of every scorer, default options, in name order."""
    return [get(name) for name in names()]


def build(selected: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Scorer]:
    """Instances of the ``selected`` scorers with their ``options`` (settings: online_evals.scorer_options)."""
    options = options or {}
    return {name: get(name, **dict(options.get(name, {}))) for name in dict.fromkeys(selected)}


__all__ = ["DEFAULT_SCORERS", "FAMILIES", "FAMILY_OF", "REGISTRY", "all_scorers", "build", "get", "names"]
