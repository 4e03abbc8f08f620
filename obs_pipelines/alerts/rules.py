"""Alert rules as typed settings: the `alerts:` block of the settings YAML.

Four kinds, told apart by ``kind``:

- ``threshold``: a column of a rollup table compared with a fixed value, per group (route, model, provider ...);
- ``eval_score``: the mean of a scorer's scores, or the share of its scores below a cut, per group;
- ``burn_rate``: an SLO of the settings burning its error budget too fast over a long AND a short window
  (the SRE workbook's multi-window pairs, e.g. 6 h and 1 h at 6x);
- ``anomaly``: a group's value against its own history (the same hour of the previous days, the trailing hours,
  or both pooled), with a statistical bar AND practical bars, all unit-free (docs/alerts.md, "Rules"):
  the robust z (value - median) / (1.4826 x MAD) beyond ``mad_factor`` (``test: robust_z``), or for a rate with
  its sample counts a binomial tail p-value under ``max_p_value`` against the history's pooled rate
  (``test: binomial``); and the change at least ``min_ratio`` times the median (x1.5 ...) and at least
  ``min_abs_change`` in the metric's own unit (a share, for a rate). A group with fewer than
  ``min_baseline_windows`` usable windows of history is "not enough history": not judged, and said so.

Every rule has a severity, destinations (names of ``alerts.destinations``), a minimum sample size and a
unique name. No dagster import here: the CLI and the tests use the same models.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["info", "warning", "critical"]
Comparison = Literal[">", ">=", "<", "<="]
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a rule name is an asset check name


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key must fail, not be ignored

    name: str
    description: str | None = None
    severity: Severity = "warning"
    # names of alerts.destinations; empty: every destination
    destinations: list[str] = Field(default_factory=list)
    # groups with fewer samples (sample_column) in the window are not judged
    min_samples: int = Field(default=0, ge=0)

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be letters, digits and underscores, not starting with a digit")
        return value

    @model_validator(mode="after")
    def _sql_names(self):
        # table and column names reach SQL text: plain identifiers only
        for key in ("table", "time_column", "scorer_column", "score_column"):
            value = getattr(self, key, None)
            if value is not None and not NAME.match(value):
                raise ValueError(f"{key} {value!r} must be a plain table / column name")
        return self


class _TableRule(_Rule):
    table: str  # an hourly table keyed by window_start (a rollup, an attribution table ...)
    metric: str  # a numeric column of the table, or a ratio of two: "cost_usd / call_count"

    @field_validator("metric")
    @classmethod
    def _column_or_ratio(cls, value: str) -> str:
        parts = [p.strip() for p in value.split("/")]
        if len(parts) > 2 or not all(NAME.match(p) for p in parts):
            raise ValueError("must be a column name or 'column / column'")
        return value
    # rollup tables hold one row per (dimension, dimension_value): group_by names the dimension
    # ("overall", "route", "model", "provider", "error_class", "span_name" ...). Tables with plain columns:
    # the columns to group by.
    group_by: str | list[str] = "overall"
    # a rollup's rows of this dimension only, grouped by the plain columns of group_by (a list), where the
    # dimension's own name stands for its dimension_value: step_rollup_hourly with dimension span_name and
    # group_by [span_kind, span_name]; score_rollup_hourly with dimension route and group_by [scorer, route]
    dimension: str | None = None
    # only rows whose columns equal these values (e.g. {error_class: rate_limit})
    where: dict[str, str] = Field(default_factory=dict)
    sample_column: str | None = None  # e.g. request_count; with min_samples
    # tables with one row per item (agent_paths, traces ...): aggregate the metric per window and group
    # (the sample size is then the number of rows)
    aggregate: Literal["mean", "sum", "max", "count"] | None = None
    # a column holding a JSON object per item, exploded before grouping: {tool: tool_loops} makes each
    # agent_paths row one row per key of its tool_loops, the key in a column ``tool`` (a group_by column) and its
    # value in ``tool_loops`` (the metric): the loop share per route x tool, over the requests calling the tool
    explode: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _explode_one_column(self):
        if len(self.explode) > 1:
            raise ValueError("explode takes one {group column: JSON object column}")
        for key, column in self.explode.items():
            if not (NAME.match(key) and NAME.match(column)):
                raise ValueError("explode names plain columns")
            if not self.aggregate:
                raise ValueError("explode needs aggregate (its rows are items)")
        return self


class ThresholdRule(_TableRule):
    kind: Literal["threshold"]
    comparison: Comparison = ">"  # fires when `metric comparison threshold`
    threshold: float


class AnomalyRule(_TableRule):
    kind: Literal["anomaly"]
    # "both": the same hour of the previous baseline_windows days AND the trailing trailing_hours hours, pooled
    baseline: Literal["same_hour_previous_days", "trailing_hours", "both"] = "same_hour_previous_days"
    baseline_windows: int = Field(default=7, ge=1)  # N days (same_hour_previous_days, both) or N hours
    trailing_hours: int = Field(default=12, ge=1)  # baseline "both": the hours just before
    direction: Literal["up", "down", "both"] = "up"
    # the statistical bar: robust_z (any metric) or binomial (a rate in [0, 1] with its sample counts)
    test: Literal["robust_z", "binomial"] = "robust_z"
    mad_factor: float = Field(default=3.0, gt=0)  # robust_z: fires beyond k x 1.4826 x MAD from the median
    max_p_value: float = Field(default=1e-6, gt=0, lt=1)  # binomial: the window's count this unlikely or less
    # the practical bars: a change of at least this factor of the median (1.5: up to x1.5 or more, down to
    # /1.5 or less; unit-free) ...
    min_ratio: float = Field(default=1.0, ge=1.0)
    min_abs_change: float = Field(default=0.0, ge=0)  # ... and at least this far from the median (metric's unit)
    min_baseline_windows: int = Field(default=3, ge=1)  # baseline windows with data needed to judge

    @model_validator(mode="after")
    def _binomial_needs_counts(self) -> AnomalyRule:
        if self.test == "binomial" and not (self.sample_column or self.aggregate == "mean"):
            raise ValueError("test binomial needs the rate's sample counts: sample_column, or aggregate mean")
        return self


class EvalScoreRule(_Rule):
    kind: Literal["eval_score"]
    scorer: str
    table: str = "eval_scores"  # one row per scored response (online_evals)
    scorer_column: str = "scorer"
    score_column: str = "score"
    time_column: str = "window_start"
    group_by: list[str] = Field(default_factory=list)  # e.g. [route]
    statistic: Literal["mean", "share_below"] = "mean"
    cut: float | None = None  # share_below: scores under this value count as bad
    comparison: Comparison = "<"
    threshold: float

    @model_validator(mode="after")
    def _cut_for_share(self) -> EvalScoreRule:
        if self.statistic == "share_below" and self.cut is None:
            raise ValueError("statistic share_below needs a cut")
        return self


class BurnWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    long_hours: int = Field(ge=1)
    short_hours: int = Field(ge=1)
    factor: float = Field(gt=0)  # burn rate both windows must reach

    @model_validator(mode="after")
    def _short_inside_long(self) -> BurnWindow:
        if self.short_hours > self.long_hours:
            raise ValueError("short_hours must not exceed long_hours")
        return self


class BurnRateRule(_Rule):
    kind: Literal["burn_rate"]
    slo: str  # name of an SLO of the settings (slos:)
    table: str = "slo_status_hourly"
    # SRE workbook pairs scaled to hourly windows: page at 14.4x over 1 h (both windows 1 h), ticket at 6x
    # over 6 h and 1 h
    windows: list[BurnWindow] = Field(default_factory=lambda: [BurnWindow(long_hours=6, short_hours=1, factor=6.0)],
                                      min_length=1)


Rule = Annotated[ThresholdRule | AnomalyRule | EvalScoreRule | BurnRateRule, Field(discriminator="kind")]


class Destination(BaseModel):
    """Where alerts go. URLs and tokens are never written here: ``url_env`` names the environment variable
    that holds the URL (a webhook URL is a secret: Slack's carries its token)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook", "slack", "log"]
    url_env: str | None = None
    # optional bearer token for the generic webhook, also from the environment
    token_env: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _url_for_http(self) -> Destination:
        if self.type in ("webhook", "slack") and not self.url_env:
            raise ValueError(f"a {self.type} destination needs url_env (the env var holding its URL)")
        return self


class AlertSettings(BaseModel):
    """The ``alerts:`` block of the settings file."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict] = Field(default_factory=list)  # validated one by one below, to name the rule at fault
    destinations: dict[str, Destination] = Field(default_factory=lambda: {"log": Destination(type="log")})
    # flapping: a firing alert resolves only after this many consecutive good windows
    resolve_after_windows: int = Field(default=2, ge=1)
    # delivery retries: wait backoff x 2^(n-1) after the n-th failure, give up after max_attempts
    retry_backoff_seconds: float = Field(default=30.0, ge=0)
    max_attempts: int = Field(default=10, ge=1)
    # pipeline health: a rule table's hourly partition still missing this long after its hour closed alerts
    # (hours up to freshness_lookback_hours back; 0 minutes switches the check off)
    freshness_minutes: int = Field(default=30, ge=0)
    freshness_lookback_hours: int = Field(default=6, ge=1)
    # no paging on history: judgements of windows that ended more than this many hours ago are recorded (the
    # alerts table, the UI) but not delivered, unless asked (`alerts evaluate --deliver-history`); null: deliver all
    deliver_max_age_hours: float | None = Field(default=2.0, gt=0)
    # near-real-time path (alerts/realtime.py): the rules on the monitoring rollups judged every
    # realtime_interval_seconds over the trailing windows of spans (minutes); empty list switches it off
    realtime_windows_minutes: list[int] = Field(default_factory=lambda: [5, 15])
    realtime_interval_seconds: int = Field(default=60, ge=10)
    # the Dagster UI, for the link to the partition in each alert
    ui_base_url: str = "http://localhost:3000"

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_are_mappings(cls, value):
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise ValueError("rules must be a list of mappings")
        return value

    @model_validator(mode="after")
    def _check_rules(self) -> AlertSettings:
        parsed = parse_rules(self.rules)
        names = [r.name for r in parsed]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {dupes}")
        for rule in parsed:
            unknown = sorted(set(rule.destinations) - set(self.destinations))
            if unknown:
                raise ValueError(f"rule {rule.name!r}: field 'destinations': unknown destination(s) {unknown}; "
                                 f"defined: {sorted(self.destinations)}")
        return self

    def parsed_rules(self) -> list[ThresholdRule | AnomalyRule | EvalScoreRule | BurnRateRule]:
        return parse_rules(self.rules)


_RULE_ADAPTER = None


def parse_rule(data: dict) -> ThresholdRule | AnomalyRule | EvalScoreRule | BurnRateRule:
    from pydantic import TypeAdapter

    global _RULE_ADAPTER
    if _RULE_ADAPTER is None:
        _RULE_ADAPTER = TypeAdapter(Rule)
    return _RULE_ADAPTER.validate_python(data)


def parse_rules(raw: list[dict]) -> list[ThresholdRule | AnomalyRule | EvalScoreRule | BurnRateRule]:
    """Each rule validated on its own; errors name the rule (by name, else its position) and the field."""
    rules, problems = [], []
    for i, data in enumerate(raw):
        label = f"rule {data.get('name')!r}" if isinstance(data.get("name"), str) else f"rule #{i + 1}"
        try:
            rules.append(parse_rule(data))
        except ValidationError as exc:
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                # the discriminated union puts the kind first: ('threshold', 'metric')
                if loc and loc[0] == data.get("kind"):
                    loc = loc[1:]
                field = ".".join(loc) or "kind"
                msg = err["msg"]
                if err["type"] == "extra_forbidden":
                    msg = "unknown key"
                problems.append(f"{label}: field {field!r}: {msg}")
    if problems:
        raise ValueError("; ".join(problems))
    return rules
