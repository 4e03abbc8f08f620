"""Settings of the observability phase (the ``observability:`` block of the settings YAML; see
config/example.yaml). Plain pydantic, no dagster: the logic modules and the CLI read it too."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ErrorRule(BaseModel):
    """An extra error class: spans whose ``<error_type> | <error_message>`` (lower-cased) matches ``pattern``
    get ``error_class``; rules are tried in order, before the built-in classifier."""

    model_config = ConfigDict(extra="forbid")

    error_class: str
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value


class ObservabilitySettings(BaseModel):
    """Why did it behave that way: baselines, thresholds of the retrieval flags and of the loop detector."""

    model_config = ConfigDict(extra="forbid")

    # attribution compares an hour with the same hour of day over this many previous days
    baseline_days: int = Field(default=7, ge=1, le=60)
    # minutes after an hour closes before the observability job takes it (after monitoring's, at :10)
    schedule_minute: int = Field(default=20, ge=0, le=59)
    # user segments of the cost attribution: the top N users of the hour by cost, the rest '(other)'
    top_n_users: int = Field(default=20, ge=1)
    # a retrieval whose every document scores below this is flagged all_below_threshold
    low_score_threshold: float = 0.5
    # loop detector: the same tool with the same arguments this many times in one request
    loop_min_repeats: int = Field(default=3, ge=2)
    # ... or a cycle of 2-4 steps repeated back to back this many times
    loop_cycle_repeats: int = Field(default=3, ge=2)
    # ... or this many consecutive model outputs each at least this similar (rapidfuzz ratio, 0-100)
    loop_similar_outputs: int = Field(default=3, ge=2)
    output_similarity: float = Field(default=95.0, ge=0, le=100)
    # prompt_version_comparison_daily: versions with fewer calls in the day are marked, not judged ...
    comparison_min_samples: int = Field(default=30, ge=2)
    # ... and a difference counts when its test's p-value is below this (for the family of four tests)
    comparison_alpha: float = Field(default=0.001, gt=0, lt=1)
    # extra error classes by regex, tried before the built-in classifier
    error_rules: list[ErrorRule] = Field(default_factory=list)
