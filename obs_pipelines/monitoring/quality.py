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
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db
from obs_pipelines.store.query import COPY_NULL, copy_query, fetch_frame, window_has_spans, window_params
from obs_pipelines.store.schema import spans
from obs_pipelines.store.span_checks import (
    BLOCKING_CHECKS,
    ERROR,
    REQUIRED_COLUMNS,
    SPAN_ID_PATTERN,
    STATUSES,
    TOKEN_COLUMNS,
    TRACE_ID_PATTERN,
    WARN,
)

MAX_EXAMPLES = 5
QUALITY_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status", "model",
    "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd",
)
PARENT_FLAG = "_parent_exists"
# this gate's warnings, beside the span contract's blocking checks (store/span_checks.py, which ingest's
# quarantine applies to every row): (name, what it verifies)
_WARNINGS = (
    ("parent_exists", "the parent span of every non-root span exists in its trace"),
    ("llm_model_present", "the share of llm spans without model stays under the threshold"),
)
# Every check run_quality_checks reports: (name, severity, what it verifies). The Dagster asset checks
# are declared from this list, so it must name exactly what _checks() builds (a test holds them equal).
CHECK_CATALOG: tuple[tuple[str, str, str], ...] = (
    *((c.name, ERROR, c.description) for c in BLOCKING_CHECKS),
    *((name, WARN, text) for name, text in _WARNINGS),
)
KEY_COLUMNS = ["trace_id", "span_id"]
_LOW_CARDINALITY = ("kind", "status")


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
    expectations: tuple[Any, ...] = ()


# Every check without great-expectations: (name, severity, description, columns, its expectations built
# from ``gx.expectations``). An hour with no spans is answered from this table alone, so a backfill over
# empty hours never imports or runs great-expectations. The blocking ones are the span contract's
# (store/span_checks.py: names, descriptions, columns, id patterns), each expressed here as expectations.
_HEX32, _HEX16 = f"^{TRACE_ID_PATTERN}$", f"^{SPAN_ID_PATTERN}$"
_EXPECTATIONS: dict[str, Any] = {
    "trace_id_well_formed": lambda E: (E.ExpectColumnValuesToMatchRegex(column="trace_id", regex=_HEX32),),
    "span_id_well_formed": lambda E: (E.ExpectColumnValuesToMatchRegex(column="span_id", regex=_HEX16),),
    "parent_span_id_well_formed":
        lambda E: (E.ExpectColumnValuesToMatchRegex(column="parent_span_id", regex=_HEX16),),
    "span_key_unique": lambda E: (E.ExpectCompoundColumnsToBeUnique(column_list=["trace_id", "span_id"]),),
    "end_not_before_start": lambda E: (E.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="end_time", column_B="start_time", or_equal=True, ignore_row_if="either_value_is_missing"),),
    **{f"{col}_non_negative": lambda E, col=col: (E.ExpectColumnValuesToBeBetween(column=col, min_value=0),)
       for col in TOKEN_COLUMNS},
    "cost_non_negative": lambda E: (E.ExpectColumnValuesToBeBetween(column="cost_usd", min_value=0),),
    "status_valid": lambda E: (E.ExpectColumnValuesToNotBeNull(column="status"),
                               E.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES))),
}


def _check_table(null_model_share_max: float) -> list[tuple[str, str, str, tuple[str, ...], Any]]:
    """Every check but ``required_columns`` (answered from the frame's columns)."""
    table = [(c.name, ERROR, c.description, c.columns, _EXPECTATIONS[c.name])
             for c in BLOCKING_CHECKS if c.name != "required_columns"]
    table += [
        ("parent_exists", WARN, "the parent span of every non-root span exists in its trace", (PARENT_FLAG,),
         lambda E: (E.ExpectColumnValuesToBeInSet(column=PARENT_FLAG, value_set=[True]),)),
        ("llm_model_present", WARN, f"at most {null_model_share_max:.1%} of llm spans have no model", ("model", "kind"),
         lambda E: (E.ExpectColumnValuesToNotBeNull(column="model", mostly=1.0 - null_model_share_max,
                                                    row_condition='kind=="llm"', condition_parser="pandas"),)),
    ]
    return table


def _checks(gx: Any, frame: pd.DataFrame, null_model_share_max: float) -> list[_Check]:
    """The checks with their great-expectations expectations (``gx`` is the imported module; ``frame``
    is not read)."""
    return [_Check(name, severity, text, columns, make(gx.expectations))
            for name, severity, text, columns, make in _check_table(null_model_share_max)]


def _empty_window_results(null_model_share_max: float) -> list[QualityCheckResult]:
    """What the checks give on a window without spans: every check passes on 0 rows (as great-expectations
    answers for an empty frame), without importing it."""
    return [QualityCheckResult("required_columns", True, ERROR, 0,
                               f"columns {', '.join(REQUIRED_COLUMNS)} are present", [], 0)] + [
        QualityCheckResult(name, True, severity, 0, text, [], 0, None)
        for name, severity, text, _columns, _make in _check_table(null_model_share_max)]


def parent_exists(frame: pd.DataFrame, external_parent_keys: Iterable[tuple[str, str]] = ()) -> pd.Series:
    """True where the span is a root or its (trace_id, parent_span_id) is a span of the frame or one of
    ``external_parent_keys`` (parents stored outside the partition).

    Vectorized on integer keys: trace ids and span ids are factorized (span and parent ids together, so
    equal ids get equal codes) and each (trace, span) pair becomes one int64, looked up with a sort-based
    ``isin``; no per-row strings are built."""
    external = list(external_parent_keys)
    n, n_ext = len(frame), len(external)
    has_parent = frame["parent_span_id"].notna().to_numpy()
    ext_trace = pd.Series([t for t, _ in external], dtype=object)
    ext_span = pd.Series([s for _, s in external], dtype=object)
    trace = pd.concat([frame["trace_id"].astype(object), ext_trace], ignore_index=True)
    ids = pd.concat([frame["span_id"].astype(object), ext_span, frame["parent_span_id"].astype(object)],
                    ignore_index=True)
    t_codes, _ = pd.factorize(trace, use_na_sentinel=True)
    s_codes, s_uniques = pd.factorize(ids, use_na_sentinel=True)
    width = np.int64(len(s_uniques) + 1)
    t_codes = t_codes.astype(np.int64) + 1  # -1 (missing) -> 0
    s_codes = s_codes.astype(np.int64) + 1
    own = t_codes * width + s_codes[: n + n_ext]
    wanted = t_codes[:n] * width + s_codes[n + n_ext:]
    found = np.isin(wanted, own)
    return pd.Series(~has_parent | found, index=frame.index, dtype=bool)


def _skip_batch_fingerprint() -> None:
    """GE hashes every row of a pandas batch (``pandas_data_fingerprint``, a batch marker it only records)
    unless the frame holds more than ``HASH_THRESHOLD`` bytes; on a 1M-span partition that hash costs as
    much as all the expectations together. Our contexts are ephemeral and no batch is ever stored or
    compared, so the marker is never read: turn it off for every frame."""
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0


def _gx_context(gx: Any) -> Any:
    import tqdm
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GE creates tqdm bars even when they are disabled, and tqdm starts a monitor thread for them: a
    # stray thread makes this process unsafe to fork (parallel ingest in the same process falls back)
    tqdm.tqdm.monitor_interval = 0
    _skip_batch_fingerprint()
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
    parent_flag = None
    if "trace_id" in frame and "span_id" in frame and "parent_span_id" in frame:
        parent_flag = parent_exists(frame, external_parent_keys)
    return _validate(frame, null_model_share_max, parent_flag)


def _validate(frame: pd.DataFrame, null_model_share_max: float, parent_flag: pd.Series | None,
              ) -> list[QualityCheckResult]:
    """The checks of ``frame``, ``parent_flag`` (aligned on the frame's rows) telling which parents exist."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    results = [QualityCheckResult(
        name="required_columns", passed=not missing, severity=ERROR, failing_count=len(missing),
        description=f"columns {', '.join(REQUIRED_COLUMNS)} are present",
        examples=[{"column": c} for c in missing], row_count=len(frame),
    )]
    # only the columns the expectations read (plus the keys that name failing rows): every column of
    # the frame handed to great-expectations is fingerprinted and copied along the way
    all_checks = _checks(gx, frame, null_model_share_max)
    used = {col for c in all_checks for col in c.columns} | set(KEY_COLUMNS)
    frame = frame[[c for c in frame.columns if c in used]].reset_index(drop=True)
    if parent_flag is not None:
        frame[PARENT_FLAG] = parent_flag.to_numpy(dtype=bool)
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in ("start_time", "end_time"):
        if col in frame:
            if not pd.api.types.is_datetime64_any_dtype(frame[col]):
                frame[col] = pd.to_datetime(frame[col], format="ISO8601")
    for col in _LOW_CARDINALITY:  # few distinct values: as categories they hash and compare cheaply
        if col in frame and len(frame) >= 10_000:
            frame[col] = frame[col].astype("category")

    checks = [c for c in all_checks if all(col in frame for col in c.columns)]
    if frame.empty:
        return results + [
            QualityCheckResult(c.name, True, c.severity, 0, c.description, [], 0, None) for c in checks
        ]
    # Pass 1, the whole frame in BOOLEAN_ONLY: every check's verdict, without the lists of failing values
    # and rows (with mostly = 1, a passing check has no failing row). Pass 2, in SUMMARY (counts and
    # example rows): the checks that failed, on the columns they read, and llm_model_present, whose
    # count and share are reported even when it passes, on the llm spans only (it reads no other row).
    detailed = {c.name for c in checks if c.name == "llm_model_present"}
    by_check = _run_suite(gx, frame, [c for c in checks if c.name not in detailed], "BOOLEAN_ONLY")
    failed = {name for name, res in by_check.items() if not all(r.success for r in res)}
    if failed:
        again = [c for c in checks if c.name in failed]
        cols = {col for c in again for col in c.columns} | set(KEY_COLUMNS)
        by_check.update(_run_suite(gx, frame[[c for c in frame.columns if c in cols]], again, "SUMMARY"))
    for check in (c for c in checks if c.name in detailed):
        cols = [c for c in frame.columns if c in {*check.columns, *KEY_COLUMNS}]
        llm = frame.loc[(frame["kind"] == "llm").to_numpy(dtype=bool), cols]
        # (no llm span: the whole frame, where the row condition leaves great-expectations an empty domain)
        target = llm.reset_index(drop=True) if len(llm) else frame[cols]
        by_check.update(_run_suite(gx, target, [check], "SUMMARY"))

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


# One ephemeral great-expectations context per process, its pandas batch definition and the suites built so
# far: creating them costs as much as validating a typical hour (10,000 spans), and nothing of them depends on
# the frame (it is a batch parameter). Validations take turns on the context (it is not thread-safe).
_GX_LOCK = threading.Lock()
_GX_STATE: dict[str, Any] = {}


def _batch_definition(gx: Any) -> Any:
    if "batch_definition" not in _GX_STATE:
        asset = _gx_context(gx).data_sources.add_pandas("partition").add_dataframe_asset("spans")
        _GX_STATE["batch_definition"] = asset.add_batch_definition_whole_dataframe("all")
    return _GX_STATE["batch_definition"]


def _suite(gx: Any, checks: list[_Check]) -> Any:
    """The suite of ``checks`` (each expectation tagged with its check), built once per set of expectations."""
    key = tuple((c.name, tuple(e.json() for e in c.expectations)) for c in checks)
    suites = _GX_STATE.setdefault("suites", {})
    if key not in suites:
        suite = gx.ExpectationSuite(name="spans_partition")
        for check in checks:
            for exp in check.expectations:
                exp.meta = {**(exp.meta or {}), "check": check.name}
                suite.add_expectation(exp)
        suites[key] = suite
    return suites[key]


def _run_suite(gx: Any, frame: pd.DataFrame, checks: list[_Check], result_format: str) -> dict[str, list[Any]]:
    """Validate ``checks`` on ``frame`` in one great-expectations run; the results by check name."""
    from great_expectations.validator.v1_validator import Validator

    fmt: dict[str, Any] = {"result_format": result_format, "partial_unexpected_count": MAX_EXAMPLES}
    index_cols = [c for c in KEY_COLUMNS if c in frame.columns]
    if index_cols:
        fmt["unexpected_index_column_names"] = index_cols
    with _GX_LOCK:
        # one validator over the batch (Batch.validate would load, and fingerprint, the frame a second time)
        validation = Validator(batch_definition=_batch_definition(gx), batch_parameters={"dataframe": frame},
                               result_format=fmt).validate_expectation_suite(_suite(gx, checks))
    by_check: dict[str, list[Any]] = {c.name: [] for c in checks}
    for res in validation.results:
        by_check[res.expectation_config.meta["check"]].append(res)
    return by_check


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def find_external_parents(engine: Engine, frame: pd.DataFrame, chunk: int = 500,
                          own_parent_exists: pd.Series | None = None) -> set[tuple[str, str]]:
    """(trace_id, span_id) of parents referenced by ``frame`` that are stored outside it (e.g. a root
    that started in the previous hour). Only the missing parents are looked up, by primary key.
    ``own_parent_exists``: :func:`parent_exists` of the frame when the caller has it already."""
    if frame.empty:
        return set()
    if own_parent_exists is None:
        own_parent_exists = parent_exists(frame)
    missing = frame[~own_parent_exists.to_numpy(dtype=bool)]
    if missing.empty:
        return set()
    wanted = set(zip(missing["trace_id"], missing["parent_span_id"], strict=True))
    traces = sorted({t for t, _ in wanted})
    found: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for i in range(0, len(traces), chunk):
            q = sa.select(spans.c.trace_id, spans.c.span_id).where(spans.c.trace_id.in_(traces[i:i + chunk]))
            found.update((t, s) for t, s in conn.execute(q).all() if (t, s) in wanted)
    return found


_NUMERIC_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd")
_TIME_COLUMNS = ("start_time", "end_time")
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def _fetch_partition(engine: Engine, start: datetime, end: datetime) -> tuple[pd.DataFrame, pd.Series]:
    """The quality columns of the spans starting in [start, end), and for each span whether it is a root
    or its parent is among those spans (:func:`parent_exists` of the frame).

    On PostgreSQL the database computes the parent flag (a hash join of the window with itself) and the
    rows are streamed with ``COPY (SELECT ...) TO STDOUT`` as CSV, parsed by Arrow's multi-threaded CSV
    reader while the server is still producing it, instead of being built into Python objects row by
    row: the fetch then costs what the server takes to write the CSV (``store.query.copy_query``, the store's
    one COPY reader). Same session settings as the rollups (the window is read with a bitmap heap scan, so the
    cost does not grow with the store)."""

    params = window_params(start, end)
    if not db.is_postgres(engine):
        sql = (f"SELECT {', '.join(QUALITY_COLUMNS)} FROM spans "
               "WHERE start_time >= :start AND start_time < :end")
        frame = fetch_frame(engine, sql, params)
        return frame, parent_exists(frame)
    window = "{t}.start_time >= :start AND {t}.start_time < :end"
    # times as integer microseconds since 2000-01-01 (PostgreSQL's own representation), parsed as
    # numbers instead of as timestamp text
    cols = [f"(date_part('epoch', w.{c} - TIMESTAMP '2000-01-01') * 1000000)::bigint AS {c}" if c in _TIME_COLUMNS
            else f"w.{c}" for c in QUALITY_COLUMNS]
    select = (f"SELECT {', '.join(cols)}, "
              f"(w.parent_span_id IS NULL OR p.span_id IS NOT NULL) AS {PARENT_FLAG} "
              "FROM spans w LEFT JOIN spans p ON p.trace_id = w.trace_id AND p.span_id = w.parent_span_id "
              f"AND {window.format(t='p')} WHERE {window.format(t='w')}")
    frame = copy_query(engine, select, params, _arrow_table).to_pandas()
    for col in _TIME_COLUMNS:
        micros = frame[col].to_numpy(dtype="float64")
        missing = np.isnan(micros)
        times = _PG_EPOCH + np.where(missing, 0, micros).astype(np.int64).astype("timedelta64[us]")
        times[missing] = np.datetime64("NaT")
        frame[col] = times
    return frame, frame.pop(PARENT_FLAG).astype(bool)


def _arrow_table(source: Any) -> Any:
    """The COPY's CSV parsed by Arrow's multi-threaded reader as it arrives. The quality columns get fixed
    types, so a column that is all NULL in this window is still typed; only an unquoted NULL marker is NULL
    (the server quotes a text that reads like it)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c: pa.float64() for c in (*_NUMERIC_COLUMNS, *_TIME_COLUMNS)}
    types |= {c: pa.string() for c in QUALITY_COLUMNS if c not in types}
    types[PARENT_FLAG] = pa.bool_()
    convert = pacsv.ConvertOptions(column_types=types, null_values=[COPY_NULL], strings_can_be_null=True,
                                   quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"])
    return pacsv.read_csv(source, convert_options=convert)


def check_partition(
    engine: Engine, start: datetime, end: datetime, null_model_share_max: float = 0.05
) -> list[QualityCheckResult]:
    """Read the spans starting in [start, end) and run every check (parents looked up in the store). A
    window without spans (one primary-index probe) passes every check without reading or validating."""
    if not window_has_spans(engine, start, end):
        return _empty_window_results(null_model_share_max)
    frame, own = _fetch_partition(engine, start, end)
    external = find_external_parents(engine, frame, own_parent_exists=own)
    flag = own.to_numpy(dtype=bool).copy()
    if external:  # the spans whose parent is outside the window: is it stored elsewhere?
        missing = np.flatnonzero(~flag)
        sub = frame.iloc[missing]
        flag[missing] = [key in external for key in zip(sub["trace_id"], sub["parent_span_id"], strict=True)]
    return _validate(frame, null_model_share_max, pd.Series(flag, index=frame.index))


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
