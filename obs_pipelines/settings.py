"""One typed settings object: the trace store URL from the environment, everything else from YAML.

`OBS_PIPELINES_DB_URL`  trace store (default: SQLite file under ./.obs_pipelines/)
`OBS_PIPELINES_CONFIG`  path of the YAML file (phases, landing dir, SLOs, price overrides ...);
                        see config/example.yaml for every key.
Secrets (webhook URLs, judge API keys) are read from env vars only, never from this file.
"""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.ingest.limits import IngestLimits
from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.store.db import default_db_url

DB_URL_ENV = "OBS_PIPELINES_DB_URL"
CONFIG_ENV = "OBS_PIPELINES_CONFIG"

PHASES = ("monitoring", "observability", "online_evals", "offline_evals", "reports")
# Phase name -> the module with its build_defs(settings) and JOBS (the order `obs-pipelines run PHASE` runs
# them in): the composition root builds from it, in-process runs read the jobs' order from it
PHASE_MODULES: dict[str, str] = {
    "monitoring": "obs_pipelines.monitoring.defs",
    "observability": "obs_pipelines.observability.defs",
    "online_evals": "obs_pipelines.online_evals.defs",
    "offline_evals": "obs_pipelines.offline_evals.defs",
    "reports": "obs_pipelines.reports.defs",
}
assert set(PHASE_MODULES) == set(PHASES)


class SLOSpec(BaseModel):
    """One objective, e.g. p95 latency of route rag_qa under 2500 ms for 99 % of hours."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not be ignored

    name: str
    metric: str  # a column of the hourly request rollup: latency_p95_ms, error_rate, ...
    objective: str  # "< 2500", "<= 0.01", "> 0.9"
    target: float = 0.99  # share of windows that must meet the objective
    route: str | None = None
    model: str | None = None


# ---- offline evals (phase 4): regression datasets from production, experiments, the CI gate -------------------
CASE_SOURCES = ("low_score", "error", "negative_feedback", "alert_exemplar", "agent_loop", "empty_retrieval")


class DatasetRules(BaseModel):
    """How one regression dataset is curated from production (docs/offline_evals.md)."""

    model_config = ConfigDict(extra="forbid")

    # why a trace becomes a case (its tags): any of CASE_SOURCES
    sources: list[str] = Field(default_factory=lambda: list(CASE_SOURCES))
    lookback_days: int = Field(default=14, ge=1)  # a version holds the cases of the last N daily partitions
    per_tag: int = Field(default=50, ge=1)  # at most this many cases per tag (balance)
    max_cases: int = Field(default=200, ge=1)  # size cap of a version
    routes: list[str] | None = None  # only traces of these routes (default: every route)
    # low_score: a score that failed its online eval rule's threshold (eval_scores.passed is false); a scorer
    # named here uses its own cut instead (a score at or below it); scorers without a direction (their class
    # sets higher_is_better = None) never select a case
    low_score_max: dict[str, float] = Field(default_factory=dict)
    negative_feedback_max: float = 0.0  # a feedback value at or below this is negative
    correction_names: list[str] = Field(default_factory=lambda: ["correction", "expected_output"])
    loop_min_repeats: int = Field(default=4, ge=2)  # the same tool call this many times in a trace is a loop
    near_duplicate_similarity: float = Field(default=92.0, ge=0, le=100)  # rapidfuzz ratio of normalised inputs
    scrub_pii: bool = True

    @field_validator("low_score_max", mode="before")
    @classmethod
    def _per_scorer_cut(cls, value: object) -> object:
        if isinstance(value, (int, float)):
            raise ValueError("low_score_max is per scorer ({scorer: cut}); without it a case is low_score when "
                             "a score fails its online eval rule's threshold")
        return value

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CASE_SOURCES))
        if unknown:
            raise ValueError(f"unknown case sources {unknown}; valid: {list(CASE_SOURCES)}")
        return value


class OfflineEvalsSettings(BaseModel):
    """Regression datasets, experiments and the CI gate (phase 4)."""

    model_config = ConfigDict(extra="forbid")

    datasets: dict[str, DatasetRules] = Field(default_factory=lambda: {"production": DatasetRules()})
    concurrency: int = Field(default=20, ge=1)  # task calls in flight during `eval run`
    timeout_s: float = Field(default=60.0, gt=0)  # a task call running longer is recorded as a timeout
    main_branch: str = "main"  # the gate's baseline: the experiment of the merge base with this branch
    tolerance: float = Field(default=0.02, ge=0)  # a drop of a mean score up to this is never a regression
    # of the paired bootstrap interval and the sign test: 0.99 so that a task of the same quality fails about
    # one gate in a thousand (a gate that cries wolf gets switched off), while a real drop still fails it
    confidence: float = Field(default=0.99, gt=0, lt=1)
    bootstrap_resamples: int = Field(default=5000, ge=100)
    error_score: float = Field(default=0.0, ge=0, le=1)  # the score of a case whose task raised or timed out
    # a share of the dataset's cases: more cases worse (net of better) than this with the interval below
    # -tolerance, or more cases that lost their score or newly failed than this, fails the gate
    max_regressed_share: float = Field(default=0.05, ge=0, le=1)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # `slo:` or `phasess:` must fail, not be ignored

    db_url: str = Field(default_factory=default_db_url)
    phases: list[str] = Field(default_factory=lambda: list(PHASES))
    landing_dir: str = ".obs_pipelines/landing"
    # minutes after an hour closes before its partition is materialized (late spans still arrive)
    schedule_delay_minutes: int = 10
    partitions_start: str = "2026-01-01-00:00"
    top_n_users: int = 20
    # the late-data sensor rolls up hours that received spans up to this far back; older ones are named in
    # its skip message with the backfill command (a week-old file must not launch a month of runs unasked)
    late_data_lookback_hours: int = 168
    null_model_share_max: float = 0.05
    price_overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    # bounds on what one hostile input file may cost ingest (line size, nesting, gzip size / ratio ...)
    ingest_limits: IngestLimits = Field(default_factory=IngestLimits)
    # Generic defaults so SLO status is tracked from the start; a settings file replaces them. Measured on
    # the generator's traffic (obs_pipelines_tests/monitoring/test_slo_defaults.py): clean hours have p95
    # 7-10.5 s and 2-9 % errors; a provider outage gives p95 ~31 s and ~75 % errors, a rate-limit storm
    # ~65 % errors, a tool loop p95 15-18 s. A slow step of one route (latency_spike) moves no overall
    # figure beyond clean-hour noise: it needs a route objective (see config/example.yaml).
    slos: list[SLOSpec] = Field(
        default_factory=lambda: [
            SLOSpec(name="overall_p95_latency", metric="latency_p95_ms", objective="< 15000", target=0.99),
            SLOSpec(name="overall_error_rate", metric="error_rate", objective="< 0.10", target=0.99),
        ]
    )
    # Landing directory (docs/ingest.md): a file is ingested once unchanged for this many seconds (or
    # when a `<name>.done` marker sits beside it), so a file still being appended to is not read torn.
    landing_quiet_seconds: float = Field(default=30.0, ge=0)
    # After a successful run the file moves to <landing_dir>/processed/ (nothing readable: failed/).
    landing_archive: bool = True
    # A failed ingest run is retried, waiting backoff x 2^(n-1) after the n-th failure, up to this many runs.
    landing_max_attempts: int = Field(default=3, ge=1)
    landing_retry_backoff_seconds: float = Field(default=60.0, ge=0)
    # Alert rules, destinations and delivery policy (obs_pipelines/alerts, docs/alerts.md); no rules: no alerts
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    # phase 2: baselines, retrieval and loop thresholds, extra error rules (config/example.yaml: observability)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    # phase 3: which scorers score which production responses, sampling, thresholds (example.yaml: online_evals)
    online_evals: OnlineEvalsSettings = Field(default_factory=OnlineEvalsSettings)
    # phase 4: regression datasets, experiments, the CI gate (config/example.yaml: offline_evals)
    offline_evals: OfflineEvalsSettings = Field(default_factory=OfflineEvalsSettings)
    # reports (docs/reports.md): where the dashboard and SLA reports are written (a local path, or an fsspec URL
    # such as s3://bucket/reports when its package is installed), and the URL they are served under, if any
    reports_dir: str = ".obs_pipelines/reports"
    reports_base_url: str | None = None

    @field_validator("phases")
    @classmethod
    def _known_phases(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(PHASES))
        if unknown:
            raise ValueError(f"unknown phases {unknown}; valid: {list(PHASES)}")
        return value

    def phase_enabled(self, phase: str) -> bool:
        return phase in self.phases


def load_settings(config_path: str | os.PathLike | None = None) -> Settings:
    """Settings from the YAML file (if any) with the DB URL from the environment winning."""
    path = config_path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    if os.environ.get(DB_URL_ENV):
        data["db_url"] = os.environ[DB_URL_ENV]
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise SettingsError(settings_error_message(exc, path or "settings")) from None


class SettingsError(ValueError):
    """The settings file is invalid; the message names the file, each bad key and what to write instead."""


def settings_error_message(exc: ValidationError, source: str | os.PathLike) -> str:
    """One line per problem, e.g. ``config.yaml: unknown key 'slo' (did you mean 'slos'?)``."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(part) for part in loc)
        if err["type"] == "extra_forbidden":
            valid = sorted(_model_at(Settings, loc[:-1]).model_fields)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
            lines.append(f"{source}: unknown key {where!r} ({hint})")
        else:
            lines.append(f"{source}: {where or 'settings'}: {err['msg']}")
    return "\n".join(lines)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The model class that holds the key at ``loc`` (list indexes and dict keys are skipped)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is not None:
            model = _inner_model(field.annotation) or model
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """``SLOSpec`` from ``list[SLOSpec]``, ``SLOSpec | None``, ``dict[str, SLOSpec]`` ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _inner_model(arg):
            return found
    return None
