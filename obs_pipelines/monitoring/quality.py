"""Data-quality checks of an hourly partition of spans, run with great-expectations 1.x.

One ephemeral GX context per call (great-expectations is imported lazily, here only), a pandas data
source over the partition's spans frame, one expectation suite validated in a single pass. Each check maps
to one or more expectations and reports a :class:`QualityCheckResult`:

=============================  ========  ==============================================================
check                          severity  expectation(s)
=============================  ========  ==============================================================
required_columns               ERROR     the contract's key columns are present
trace_id_well_formed           ERROR     trace_id is 32 lowercase hex characters
span_id_well_formed            ERROR     span_id is 16 lowercase hex characters
parent_span_id_well_formed     ERROR     parent_span_id, when set, is 16 lowercase hex characters
span_key_unique                ERROR     (trace_id, span_id) unique
end_not_before_start           ERROR     end_time >= start_time
input_tokens_non_negative      ERROR     input_tokens >= 0
output_tokens_non_negative     ERROR     output_tokens >= 0
cached_input_tokens_non_neg.   ERROR     cached_input_tokens >= 0
cost_non_negative              ERROR     cost_usd >= 0
status_valid                   ERROR     status not null and in {ok, error}
parent_exists                  WARN      the parent span exists in the trace (boolean column computed with
                                         pandas; parents outside the partition can be supplied)
llm_model_present              WARN      share of llm spans without model <= null_model_share_max
=============================  ========  ==============================================================

ERROR checks block (the partition's rollups should not be trusted); WARN checks inform. A parent can
legitimately start in the previous hour, so :func:`check_partition` looks the missing parents up in the
store before calling a span an orphan.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db
from obs_pipelines.store.schema import spans

ERROR = "ERROR"
WARN = "WARN"
MAX_EXAMPLES = 5
REQUIRED_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status")
QUALITY_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status", "model",
    "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd",
)
PARENT_FLAG = "_parent_exists"
# Every check run_quality_checks reports: (name, severity, what it verifies). The Dagster asset checks
# are declared from this list, so it must name exactly what _checks() builds (a test holds them equal).
CHECK_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("required_columns", ERROR, "the contract's key columns are present"),
    ("trace_id_well_formed", ERROR, "trace_id is 32 lowercase hex characters"),
    ("span_id_well_formed", ERROR, "span_id is 16 lowercase hex characters"),
    ("parent_span_id_well_formed", ERROR, "parent_span_id, when set, is 16 lowercase hex characters"),
    ("span_key_unique", ERROR, "(trace_id, span_id) is unique"),
    ("end_not_before_start", ERROR, "end_time >= start_time"),
    ("input_tokens_non_negative", ERROR, "input_tokens >= 0"),
    ("output_tokens_non_negative", ERROR, "output_tokens >= 0"),
    ("cached_input_tokens_non_negative", ERROR, "cached_input_tokens >= 0"),
    ("cost_non_negative", ERROR, "cost_usd >= 0"),
    ("status_valid", ERROR, "status is set and is 'ok' or 'error'"),
    ("parent_exists", WARN, "the parent span of every non-root span exists in its trace"),
    ("llm_model_present", WARN, "the share of llm spans without model stays under the threshold"),
)
KEY_COLUMNS = ["trace_id", "span_id"]


@dataclass
class QualityCheckResult:
    name: str
    passed: bool
    severity: str  # ERROR (blocking) or WARN
    failing_count: int
    description: str
    examples: list[dict] = field(default_factory=list)  # a few failing rows: trace_id / span_id (+ value)
    row_count: int = 0
    observed: float | None = None  # e.g. the share of llm spans without model

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR and not self.passed

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Check:
    name: str
    severity: str
    description: str
    columns: tuple[str, ...]
    expectations: tuple[Any, ...]


def _checks(gx: Any, frame: pd.DataFrame, null_model_share_max: float) -> list[_Check]:
    E = gx.expectations
    hex32, hex16 = r"^[0-9a-f]{32}$", r"^[0-9a-f]{16}$"
    checks = [
        _Check("trace_id_well_formed", ERROR, "trace_id is 32 lowercase hex characters", ("trace_id",),
               (E.ExpectColumnValuesToMatchRegex(column="trace_id", regex=hex32),)),
        _Check("span_id_well_formed", ERROR, "span_id is 16 lowercase hex characters", ("span_id",),
               (E.ExpectColumnValuesToMatchRegex(column="span_id", regex=hex16),)),
        _Check("parent_span_id_well_formed", ERROR, "parent_span_id, when set, is 16 lowercase hex characters",
               ("parent_span_id",), (E.ExpectColumnValuesToMatchRegex(column="parent_span_id", regex=hex16),)),
        _Check("span_key_unique", ERROR, "(trace_id, span_id) is unique", ("trace_id", "span_id"),
               (E.ExpectCompoundColumnsToBeUnique(column_list=["trace_id", "span_id"]),)),
        _Check("end_not_before_start", ERROR, "end_time >= start_time", ("start_time", "end_time"),
               (E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end_time", column_B="start_time", or_equal=True,
                                                           ignore_row_if="either_value_is_missing"),)),
    ]
    for col in ("input_tokens", "output_tokens", "cached_input_tokens"):
        checks.append(_Check(f"{col}_non_negative", ERROR, f"{col} >= 0", (col,),
                             (E.ExpectColumnValuesToBeBetween(column=col, min_value=0),)))
    checks += [
        _Check("cost_non_negative", ERROR, "cost_usd >= 0", ("cost_usd",),
               (E.ExpectColumnValuesToBeBetween(column="cost_usd", min_value=0),)),
        _Check("status_valid", ERROR, "status is set and is 'ok' or 'error'", ("status",),
               (E.ExpectColumnValuesToNotBeNull(column="status"),
                E.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "error"]))),
        _Check("parent_exists", WARN, "the parent span of every non-root span exists in its trace",
               (PARENT_FLAG,), (E.ExpectColumnValuesToBeInSet(column=PARENT_FLAG, value_set=[True]),)),
        _Check("llm_model_present", WARN,
               f"at most {null_model_share_max:.1%} of llm spans have no model", ("model", "kind"),
               (E.ExpectColumnValuesToNotBeNull(column="model", mostly=1.0 - null_model_share_max,
                                                row_condition='kind=="llm"', condition_parser="pandas"),)),
    ]
    return checks


def parent_exists(frame: pd.DataFrame, external_parent_keys: Iterable[tuple[str, str]] = ()) -> pd.Series:
    """True where the span is a root or its (trace_id, parent_span_id) is a span of the frame or one of
    ``external_parent_keys`` (parents stored outside the partition)."""
    has_parent = frame["parent_span_id"].notna()
    own = set(_keys(frame["trace_id"], frame["span_id"]))
    own.update(f"{t}/{s}" for t, s in external_parent_keys)
    parent_keys = _keys(frame["trace_id"], frame["parent_span_id"])
    return (~has_parent | parent_keys.isin(own)).astype(bool)


def _keys(trace: pd.Series, span: pd.Series) -> pd.Series:
    return trace.astype(str) + "/" + span.astype(str)


def _gx_context(gx: Any) -> Any:
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def run_quality_checks(
    frame: pd.DataFrame,
    null_model_share_max: float = 0.05,
    external_parent_keys: Iterable[tuple[str, str]] = (),
) -> list[QualityCheckResult]:
    """Run every check on a partition's spans frame (the spans contract's columns)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    frame = frame.reset_index(drop=True).copy()
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    results = [QualityCheckResult(
        name="required_columns", passed=not missing, severity=ERROR, failing_count=len(missing),
        description=f"columns {', '.join(REQUIRED_COLUMNS)} are present",
        examples=[{"column": c} for c in missing], row_count=len(frame),
    )]
    if "trace_id" in frame and "span_id" in frame and "parent_span_id" in frame:
        frame[PARENT_FLAG] = parent_exists(frame, external_parent_keys)
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in ("start_time", "end_time"):
        if col in frame:
            if not pd.api.types.is_datetime64_any_dtype(frame[col]):
                frame[col] = pd.to_datetime(frame[col], format="ISO8601")

    checks = [c for c in _checks(gx, frame, null_model_share_max) if all(col in frame for col in c.columns)]
    if frame.empty:
        return results + [
            QualityCheckResult(c.name, True, c.severity, 0, c.description, [], 0, None) for c in checks
        ]
    context = _gx_context(gx)
    asset = context.data_sources.add_pandas("partition").add_dataframe_asset("spans")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name="spans_partition")
    for check in checks:
        for exp in check.expectations:
            exp.meta = {**(exp.meta or {}), "check": check.name}
            suite.add_expectation(exp)
    index_cols = [c for c in KEY_COLUMNS if c in frame.columns]
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
    if index_cols:
        result_format["unexpected_index_column_names"] = index_cols
    validation = batch.validate(suite, result_format=result_format)

    by_check: dict[str, list[Any]] = {c.name: [] for c in checks}
    for res in validation.results:
        by_check[res.expectation_config.meta["check"]].append(res)
    for check in checks:
        passed, failing, examples, observed = True, 0, [], None
        for res in by_check[check.name]:
            if res.exception_info and res.exception_info.get("raised_exception"):
                raise RuntimeError(f"quality check {check.name} could not run: "
                                   f"{res.exception_info.get('exception_message')}")
            passed &= bool(res.success)
            r = res.result or {}
            failing += int(r.get("unexpected_count") or 0)
            if check.name == "llm_model_present":
                observed = (r.get("unexpected_percent") or 0.0) / 100.0
            for item in r.get("partial_unexpected_index_list") or []:
                if len(examples) < MAX_EXAMPLES:
                    examples.append({k: _plain(v) for k, v in item.items()})
        results.append(QualityCheckResult(check.name, passed, check.severity, failing, check.description,
                                          examples, len(frame), observed))
    return results


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def find_external_parents(engine: Engine, frame: pd.DataFrame, chunk: int = 500) -> set[tuple[str, str]]:
    """(trace_id, span_id) of parents referenced by ``frame`` that are stored outside it (e.g. a root
    that started in the previous hour). Only the missing parents are looked up, by primary key."""
    if frame.empty:
        return set()
    missing = frame[~parent_exists(frame)]
    if missing.empty:
        return set()
    wanted = set(zip(missing["trace_id"], missing["parent_span_id"]))
    traces = sorted({t for t, _ in wanted})
    found: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for i in range(0, len(traces), chunk):
            q = sa.select(spans.c.trace_id, spans.c.span_id).where(spans.c.trace_id.in_(traces[i:i + chunk]))
            found.update((t, s) for t, s in conn.execute(q).all() if (t, s) in wanted)
    return found


def check_partition(
    engine: Engine, start: datetime, end: datetime, null_model_share_max: float = 0.05
) -> list[QualityCheckResult]:
    """Read the spans starting in [start, end) and run every check (parents looked up in the store)."""
    from obs_pipelines.monitoring.rollups import fetch_frame

    sql = (f"SELECT {', '.join(QUALITY_COLUMNS)} FROM spans "
           "WHERE start_time >= :start AND start_time < :end")
    frame = fetch_frame(engine, sql, {"start": db.to_naive_utc(start), "end": db.to_naive_utc(end)})
    return run_quality_checks(frame, null_model_share_max, find_external_parents(engine, frame))


def results_frame(results: Iterable[QualityCheckResult], start: datetime, end: datetime) -> pd.DataFrame:
    """The results as rows of ``quality_checks_hourly``."""
    now = db.utcnow()
    rows = [{
        "window_start": db.to_naive_utc(start), "window_end": db.to_naive_utc(end), "check_name": r.name,
        "severity": r.severity, "passed": bool(r.passed), "failing_count": int(r.failing_count),
        "row_count": int(r.row_count), "examples": json.dumps(r.examples, default=str),
        "description": r.description, "computed_at": now,
    } for r in results]
    return pd.DataFrame(rows)


def summarize(results: Iterable[QualityCheckResult]) -> Mapping[str, Any]:
    """Counts for metadata: checks run, failed, blocking failures."""
    results = list(results)
    return {
        "checks": len(results),
        "failed": sum(not r.passed for r in results),
        "blocking_failures": [r.name for r in results if r.blocking],
        "warnings": [r.name for r in results if not r.passed and r.severity == WARN],
    }


__all__ = [
    "CHECK_CATALOG",
    "ERROR",
    "QualityCheckResult",
    "REQUIRED_COLUMNS",
    "WARN",
    "check_partition",
    "find_external_parents",
    "parent_exists",
    "results_frame",
    "run_quality_checks",
    "summarize",
]
