"""The online evals block of the settings (``online_evals:`` in the YAML; config/example.yaml documents it):
which scorers score which production responses, how many of them, and the threshold a score must reach.

A response is a span: the request's root span (kind ``root`` in the rules) or any span of a kind named in a
rule (``llm`` for every model call). A rule matches a response by kind, route, model and prompt version; its
``sample_rate`` keeps a deterministic share of traces (by a hash of the trace id, so a trace is scored by
all its rules or none, and a re-run picks the same traces).
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROOT = "root"  # rule kind of the request's root span (whatever its span kind)


def _default_scorers() -> list[str]:
    from obs_pipelines.scorers.registry import DEFAULT_SCORERS

    return list(DEFAULT_SCORERS)


class EvalRule(BaseModel):
    """Scorers for the responses this rule matches (a missing filter matches everything)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    scorers: list[str] = Field(default_factory=_default_scorers)
    span_kinds: list[str] = Field(default_factory=lambda: [ROOT])  # root, llm, agent, chain ...
    routes: list[str] | None = None
    models: list[str] | None = None
    prompt_versions: list[str] | None = None
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # passed = score >= threshold
    thresholds: dict[str, float] = Field(default_factory=dict)  # per scorer, overrides `threshold`

    @field_validator("scorers")
    @classmethod
    def _known_scorers(cls, value: list[str]) -> list[str]:
        from obs_pipelines.scorers.registry import get

        for name in value:
            get(name)  # raises with the closest known name
        return value

    @model_validator(mode="after")
    def _thresholds_of_selected_scorers(self) -> "EvalRule":
        unknown = sorted(set(self.thresholds) - set(self.scorers))
        if unknown:
            raise ValueError(f"rule {self.name}: thresholds for scorers the rule does not run: {unknown}")
        return self

    def threshold_of(self, scorer: str) -> float:
        return self.thresholds.get(scorer, self.threshold)

    def matches(self, kind: str, route: str | None, model: str | None, prompt_version: str | None) -> bool:
        return (kind in self.span_kinds
                and (self.routes is None or route in self.routes)
                and (self.models is None or model in self.models)
                and (self.prompt_versions is None or prompt_version in self.prompt_versions))


JUDGE_KEY_ENV = "OBS_PIPELINES_JUDGE_API_KEY"
JUDGE_URL_ENV = "OBS_PIPELINES_JUDGE_BASE_URL"


class JudgeSettings(BaseModel):
    """The LLM judge behind the judge_* scorers: any OpenAI-compatible chat endpoint. The key is read from the
    environment variable named by ``api_key_env`` only; the base URL from here or OBS_PIPELINES_JUDGE_BASE_URL.
    Every request parameter is a setting: an endpoint that refuses one (``temperature`` on some reasoning
    models, ``response_format`` on many local servers) is configured around by setting it to null."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None  # e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1
    model: str = "gpt-4o-mini"
    provider: str | None = None  # for the price lookup (genai-prices' provider id, e.g. openai); None: by model
    api_key_env: str = JUDGE_KEY_ENV
    timeout_s: float = Field(default=30.0, gt=0)  # deadline of each attempt: connect, headers and whole body
    max_retries: int = Field(default=3, ge=0)  # on 408 / 429 / 5xx / timeouts, with exponential backoff
    backoff_s: float = Field(default=0.5, ge=0)
    concurrency: int = Field(default=16, ge=1)  # judge calls in flight
    temperature: float | None = Field(default=0.0, ge=0)  # None: not sent
    response_format: dict[str, Any] | None = None  # e.g. {type: json_object}; None: not sent
    extra_params: dict[str, Any] = Field(default_factory=dict)  # merged into the request (max_tokens, seed ...)
    use_tool: bool = False  # ask for the verdict as a call of the function select_choice (OpenAI tools)
    scrub_pii: bool = True  # replace PII by typed placeholders before the prompt leaves the process
    max_answer_bytes: int = Field(default=1_000_000, ge=1024)  # larger answer bodies are refused (too_large)
    max_stored_chars: int = Field(default=20000, ge=100)  # of prompt and raw answer kept in judge_calls
    usd_per_m_input: float | None = None  # hand-set prices for judge_calls.cost_usd; unset: the price table
    usd_per_m_output: float | None = None

    @field_validator("extra_params")
    @classmethod
    def _not_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        from obs_pipelines.scorers.judge_client import RESERVED_PARAMS

        reserved = sorted(RESERVED_PARAMS & set(value))
        if reserved:
            raise ValueError(f"judge.extra_params may not set {reserved}: the client sets them")
        return value

    def client(self, prices=None):
        """A JudgeClient, or None when no base URL is set (judge scorers then give null scores). ``prices``: the
        price table for the judge's cost (default: genai-prices' bundled data); hand-set prices win."""
        import os

        from obs_pipelines.pricing import load_prices
        from obs_pipelines.scorers.judge_client import JudgeClient

        url = self.base_url or os.environ.get(JUDGE_URL_ENV)
        if not url:
            return None
        return JudgeClient(url, self.model, os.environ.get(self.api_key_env), timeout_s=self.timeout_s,
                           max_retries=self.max_retries, backoff_s=self.backoff_s, concurrency=self.concurrency,
                           temperature=self.temperature, response_format=self.response_format,
                           extra_params=self.extra_params, use_tool=self.use_tool,
                           max_answer_bytes=self.max_answer_bytes, max_stored_chars=self.max_stored_chars,
                           scrub_pii=self.scrub_pii, provider=self.provider, usd_per_m_input=self.usd_per_m_input,
                           usd_per_m_output=self.usd_per_m_output,
                           prices=prices if prices is not None else load_prices())


class ClusterSettings(BaseModel):
    """The daily clusters of failing inputs (failure_clusters_daily, online_evals/clusters.py)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    negative_feedback_max: float = 0.0   # feedback at or below this value makes a request failing
    min_failures: int = Field(default=10, ge=2)  # fewer failing requests in a day: no clusters
    max_clusters: int = Field(default=8, ge=1)
    min_cluster_size: int = Field(default=3, ge=1)

    def options(self):
        from obs_pipelines.online_evals.clusters import ClusterOptions

        return ClusterOptions(min_failures=self.min_failures, max_clusters=self.max_clusters,
                              min_cluster_size=self.min_cluster_size)


class OnlineEvalsSettings(BaseModel):
    """Rules (first match per scorer wins), per-scorer options, and a bound on the text a scorer reads."""

    model_config = ConfigDict(extra="forbid")

    rules: list[EvalRule] = Field(default_factory=lambda: [EvalRule(name="responses")])
    # options of a scorer wherever a rule runs it, e.g. {word_count_bounds: {max_words: 250}}; an option change
    # changes the scorer's version, so the next run re-scores exactly that scorer's rows
    scorer_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # longer inputs / outputs are cut before scoring; each cut is recorded in the score's details (text_cut)
    max_text_chars: int = Field(default=20000, ge=100)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    clusters: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("scorer_options")
    @classmethod
    def _valid_options(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from obs_pipelines.scorers.registry import get

        for name, options in value.items():
            get(name, **options)  # unknown scorer or option: ValueError naming it
        return value


def sampled(trace_id: str, rate: float) -> bool:
    """Deterministic sampling by trace id: the same traces are kept on every run and by every rule."""
    if rate >= 1.0:
        return True
    return zlib.crc32(str(trace_id).encode()) / 2**32 < rate
