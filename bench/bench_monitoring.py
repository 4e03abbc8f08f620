"""Benchmark of the monitoring rollups on PostgreSQL (run by hand).

    .venv/bin/python bench/bench_monitoring.py [--spans 1000000] [--history-days 30]
        [--history-spans-per-hour 20000] [--repeat 3] [--brin] [--skip-baseline]

1. One hourly partition of N spans (default 1,000,000) in a fresh schema: time computing *all* hourly
   rollups (request, step, error, usage) against a baseline measured in the same run: one hand-written
   SQL query computing the trace-level percentiles and counts (overall and by route). The baseline runs
   with the rollups' per-transaction settings (rollups.PG_SESSION_SETTINGS) so both sides are tuned
   alike; its time with the server defaults is printed too. Target ratio <= 2x. Also prints the wall
   clock of the four rollups run concurrently (as the job computes them on PostgreSQL: rollups.hourly_rollups).
   Then the whole monitoring group as Dagster runs it: ``monitoring_hourly_job`` for the partition
   (great-expectations quality checks of the spans, the four hourly rollups, SLO status) with
   ``execute_in_process`` on an ephemeral instance, against the same baseline (target <= 2x), with a
   breakdown of its pieces called directly (quality.check_partition, rollups.write_hourly_rollups, the
   SLO read + computation); the rest of the job's time is Dagster's own (events, metadata, writes of
   quality_checks_hourly). And a floor: the same job on an hour without spans (its fixed cost) plus the
   request rollup alone (a superset of the baseline's figures); when the floor already exceeds 2x the
   baseline, no implementation of the group can meet the target on this machine.
2. The same partition in a store that also holds 30 days of history vs 1 day of history: the rollup
   time must not grow with the store (target within 1.2x). History hours hold fewer spans (whole traces
   of the measured hour, shifted in time, generated server-side from a COPY-loaded sample) so the run
   stays short; the measured hour is the same N spans in both stores. Both stores are VACUUM ANALYZEd
   after loading, as autovacuum would. ``--brin`` adds a BRIN index on spans.start_time to both stores
   (not part of the store schema) to show what it changes. The quality checks of the hour are timed in
   both stores too.

Env: OBS_PIPELINES_BENCH_PG_URL (default postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test).
Spans are generated here with numpy (vectorized, deterministic) and loaded with COPY, so loading does not
dominate the run.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.monitoring import quality, rollups  # noqa: E402
from obs_pipelines.pricing import load_prices  # noqa: E402
from obs_pipelines.store import db  # noqa: E402
from obs_pipelines.store.query import fetch_frame  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"
HOUR = datetime(2026, 11, 2, 10, 0)

ROUTES = np.array(["rag_qa", "support_agent", "summarize", "classify", "search"])
MODELS = np.array(
    [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"), ("claude-3-5-haiku-latest", "anthropic"),
     ("claude-sonnet-4-0", "anthropic"), ("gemini-2.0-flash", "google")]
)
ERROR_TYPES = np.array(
    ["openai.RateLimitError", "openai.InternalServerError", "openai.APITimeoutError",
     "openai.BadRequestError", "ToolExecutionError"]
)
# (name, kind, relative offset in the trace, mean duration ms)
STEPS = [
    ("handle_request", "chain"),
    ("input_guardrail", "guardrail"),
    ("embed_query", "embedding"),
    ("retrieve_docs", "retrieval"),
    ("rerank", "reranker"),
    ("plan", "llm"),
    ("lookup_order", "tool"),
    ("generate_answer", "llm"),
]
SPANS_PER_TRACE = len(STEPS)
COPY_COLUMNS = [
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status",
    "error_type", "error_message", "service_name", "route", "model", "provider", "prompt_name",
    "prompt_version", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd", "user_id",
]


def synth_frame(hour: datetime, n_spans: int, seed: int) -> pd.DataFrame:
    """n_spans spans (n_spans // 8 traces of 8 spans) whose roots start inside `hour`."""
    rng = np.random.default_rng(seed)
    n_traces = max(1, n_spans // SPANS_PER_TRACE)
    # 8 hex of the seed (distinct per generated hour) + 24 hex of a random 62-bit number
    trace_ids = np.char.add(f"{seed % 2**32:08x}", np.char.mod("%024x", rng.integers(0, 2**62, n_traces)))
    root_start = hour + pd.to_timedelta(rng.integers(0, 3_540_000_000, n_traces), unit="us")
    route = rng.choice(ROUTES, n_traces, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    users = np.char.add("user-", rng.zipf(1.3, n_traces).clip(max=50_000).astype(str))
    model_idx = rng.integers(0, len(MODELS), n_traces)

    k = np.arange(SPANS_PER_TRACE)
    durations = np.stack(
        [rng.gamma(2.0, m / 2.0, n_traces) for m in (900, 20, 40, 150, 60, 400, 80, 700)], axis=1
    ).round(3)  # ms
    offsets = np.concatenate([np.zeros((n_traces, 2)), np.cumsum(durations[:, 1:-1], axis=1)], axis=1)
    durations[:, 0] = np.maximum(durations[:, 0], offsets[:, -1] + durations[:, -1] + 5)

    f = pd.DataFrame(
        {
            "trace_id": np.repeat(trace_ids, SPANS_PER_TRACE),
            "step": np.tile(k, n_traces),
        }
    )
    f["span_id"] = np.char.mod("%016x", rng.integers(1, 2**62, len(f), dtype=np.int64))
    root_span = f["span_id"].to_numpy()[:: SPANS_PER_TRACE]
    f["parent_span_id"] = np.where(f["step"] == 0, None, np.repeat(root_span, SPANS_PER_TRACE))
    f["name"] = np.array([s[0] for s in STEPS])[f["step"]]
    f["kind"] = np.array([s[1] for s in STEPS])[f["step"]]
    start = np.repeat(root_start.values, SPANS_PER_TRACE) + pd.to_timedelta(offsets.ravel(), unit="ms").values
    f["start_time"] = pd.to_datetime(start).floor("us")
    f["end_time"] = (f["start_time"] + pd.to_timedelta(durations.ravel(), unit="ms")).dt.floor("us")
    is_llm = f["kind"].eq("llm").to_numpy()
    err = (is_llm | f["kind"].eq("tool").to_numpy()) & (rng.random(len(f)) < 0.03)
    f["status"] = np.where(err, "error", "ok")
    etype = rng.choice(ERROR_TYPES, len(f))
    etype = np.where(f["kind"].eq("tool"), "ToolExecutionError", etype)
    f["error_type"] = np.where(err, etype, None)
    f["error_message"] = np.where(err, "request failed", None)
    f["service_name"] = "support-app"
    f["route"] = np.repeat(route, SPANS_PER_TRACE)
    midx = np.repeat(model_idx, SPANS_PER_TRACE)
    f["model"] = np.where(is_llm, MODELS[midx, 0], None)
    f["provider"] = np.where(is_llm, MODELS[midx, 1], None)
    f["prompt_name"] = np.where(is_llm, f["name"], None)
    f["prompt_version"] = np.where(is_llm, rng.choice(["v1", "v2"], len(f)), None)
    tok = is_llm | f["kind"].eq("embedding").to_numpy()
    inp = rng.integers(200, 6000, len(f))
    f["input_tokens"] = pd.Series(inp, dtype="Int64").where(tok)
    f["output_tokens"] = pd.Series(rng.integers(20, 800, len(f)), dtype="Int64").where(is_llm)
    cached = (inp * rng.choice([0, 0.5], len(f))).astype(np.int64)
    f["cached_input_tokens"] = pd.Series(cached, dtype="Int64").where(tok)
    reported = is_llm & (rng.random(len(f)) < 0.3)
    f["cost_usd"] = np.where(reported, rng.random(len(f)) / 100, np.nan)
    f["user_id"] = np.repeat(users, SPANS_PER_TRACE)
    return f.drop(columns="step")


def copy_frame(engine: sa.Engine, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame[COPY_COLUMNS].to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
    buf.seek(0)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.copy_expert(f"COPY spans ({','.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)
        raw.commit()
    finally:
        raw.close()


def fresh_engine(base_url: str, brin: bool = False) -> tuple[sa.Engine, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = sa.create_engine(url)
    db.create_tables(engine)
    if brin:  # not part of the store schema: --brin shows what such an index would change
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE INDEX ix_spans_start_time_brin ON spans USING brin (start_time)"))
    return engine, schema


def vacuum_analyze(engine: sa.Engine) -> None:
    """What autovacuum does to a store soon after a load: visibility map, hint bits, statistics."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE spans"))
        # and flush the load's dirty pages now, so that the background checkpoint of a just-loaded
        # store (15M rows for 30 days) does not write during the timed queries
        conn.execute(sa.text("CHECKPOINT"))


def drop_schema(base_url: str, schema: str) -> None:
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


BASELINE_SQL = """
WITH t AS (
    SELECT trace_id,
           min(start_time) FILTER (WHERE parent_span_id IS NULL) AS root_start,
           max(end_time) FILTER (WHERE parent_span_id IS NULL) AS root_end,
           min(route) FILTER (WHERE parent_span_id IS NULL) AS route,
           bool_or(status = 'error') AS is_error
    FROM spans WHERE start_time >= :start AND start_time < :end
    GROUP BY trace_id
), r AS (
    SELECT route, extract(epoch FROM root_end - root_start) * 1000 AS latency_ms, is_error
    FROM t WHERE root_start IS NOT NULL
)
SELECT route, count(*), sum(is_error::int),
       percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms),
       max(latency_ms), avg(latency_ms)
FROM r GROUP BY GROUPING SETS ((), (route))
"""


def time_it(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


ROLLUPS = ("request", "step", "error", "usage")


class _Skip(Exception):
    pass


def run_rollup(name: str, engine, start, end, prices) -> pd.DataFrame:
    if name == "usage":
        return rollups.usage_rollup(engine, start, end, prices)
    return getattr(rollups, f"{name}_rollup")(engine, start, end)


def baseline(engine, start, end, session_defaults: bool = False):
    """The hand-written query, run like the rollups (same per-transaction settings) unless asked not to."""
    if session_defaults:
        with engine.connect() as conn:
            return conn.execute(sa.text(BASELINE_SQL), {"start": start, "end": end}).all()
    return rollups.fetch_frame(engine, BASELINE_SQL, {"start": start, "end": end})


def bench_whole_job(engine, start, end, prices, t_base: float, repeat: int) -> None:
    """Time monitoring_hourly_job for the partition (execute_in_process on an ephemeral instance, as a
    run launched by the schedule would do the work), and its pieces called directly: the
    great-expectations quality checks, the four rollups computed and written, the SLO status."""
    import dagster as dg

    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.monitoring.defs import HOURLY_JOB, SLO_COMPLIANCE_HOURS
    from obs_pipelines.monitoring.slo import slo_status
    from obs_pipelines.monitoring.tables import monitoring_metadata, request_rollup_hourly
    from obs_pipelines.settings import Settings

    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(db_url=url, partitions_start=f"{start - timedelta(days=1):%Y-%m-%d-%H:00}")
    job = build_definitions(settings).resolve_job_def(HOURLY_JOB)
    db.create_tables(engine, monitoring_metadata)

    def run_job():
        result = job.execute_in_process(partition_key=f"{start:%Y-%m-%d-%H:00}",
                                        instance=dg.DagsterInstance.ephemeral())
        assert result.success

    def checks():
        return quality.check_partition(engine, start, end, settings.null_model_share_max)

    def write_rollups():
        return rollups.write_hourly_rollups(engine, start, end, prices, settings.top_n_users)

    def slo():
        history = fetch_frame(
            engine, f"SELECT * FROM {request_rollup_hourly.name} WHERE window_start >= :start AND window_start < :end",
            {"start": start - timedelta(hours=SLO_COMPLIANCE_HOURS - 1), "end": end})
        return slo_status(history, [s.model_dump() for s in settings.slos], SLO_COMPLIANCE_HOURS)

    def run_empty_job():  # the same job for an hour without spans: Dagster's and the steps' fixed costs
        result = job.execute_in_process(partition_key=f"{start - timedelta(hours=5):%Y-%m-%d-%H:00}",
                                        instance=dg.DagsterInstance.ephemeral())
        assert result.success

    run_job()  # warm (imports, first great-expectations context)
    run_empty_job()
    results = checks()
    failed = [r.name for r in results if not r.passed]
    t_job = time_it(run_job, repeat)
    t_empty = time_it(run_empty_job, repeat)
    t_request = time_it(lambda: rollups.request_rollup(engine, start, end), repeat)
    t_checks = time_it(checks, repeat)
    t_roll = time_it(write_rollups, repeat)
    t_slo = time_it(slo, repeat)
    print(f"whole monitoring group, {HOURLY_JOB} for {start:%Y-%m-%d-%H:00} (execute_in_process): "
          f"{t_job:.3f}s   ratio vs baseline: {t_job / t_base:.2f}x (target <= 2x)")
    print(f"  breakdown (called directly): quality checks {t_checks:.3f}s ({t_checks / t_base:.2f}x), "
          f"rollups computed + written {t_roll:.3f}s ({t_roll / t_base:.2f}x), slo {t_slo:.3f}s, "
          f"dagster overhead ~{t_job - t_checks - t_roll - t_slo:.3f}s")
    print(f"  quality checks: {len(results)} run, failing: {failed or 'none'}")
    # what no implementation of this group can go below: the job's fixed cost (run on an empty hour) plus
    # the request rollup alone, which computes a superset of the baseline's figures
    floor = t_empty + t_request
    print(f"  floor: {HOURLY_JOB} on an empty hour {t_empty:.3f}s ({t_empty / t_base:.2f}x baseline) + request "
          f"rollup alone {t_request:.3f}s = {floor:.3f}s ({floor / t_base:.2f}x baseline; target 2x "
          f"{'reachable' if floor <= 2 * t_base else 'out of reach'} before steps, errors, usage and checks)")


def load_history(engine, hour_frame: pd.DataFrame, days: int, spans_per_hour: int) -> None:
    """days * 24 - 1 hours before HOUR, spans_per_hour each: whole traces of the measured hour, shifted in
    time and given new trace ids, generated server-side (COPY of a sample + one INSERT ... SELECT)."""
    hours = days * 24 - 1
    if hours <= 0:
        return
    n_traces = max(1, spans_per_hour // SPANS_PER_TRACE)
    sample_ids = hour_frame["trace_id"].drop_duplicates().iloc[:n_traces]
    sample = hour_frame[hour_frame["trace_id"].isin(set(sample_ids))]
    cols = ",".join(COPY_COLUMNS)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE UNLOGGED TABLE history_sample (LIKE spans)"))
    buf = io.StringIO()
    sample[COPY_COLUMNS].to_csv(buf, index=False, header=False, na_rep="\\N",
                                date_format="%Y-%m-%d %H:%M:%S.%f")
    buf.seek(0)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.copy_expert(f"COPY history_sample ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)
        shifted = ",".join(
            "overlay(s.trace_id placing lpad(to_hex(h + 4096), 8, '0') from 1 for 8)" if c == "trace_id"
            else f"s.{c} - make_interval(hours => h)" if c in ("start_time", "end_time")
            else f"s.{c}"
            for c in COPY_COLUMNS
        )
        # oldest hours first, like data arriving over time
        cur.execute(f"INSERT INTO spans ({cols}) SELECT {shifted} FROM generate_series(%s, 1, -1) AS h "
                    "CROSS JOIN history_sample s", (hours,))
        cur.execute("DROP TABLE history_sample")
        raw.commit()
    finally:
        raw.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--history-days", type=int, default=30)
    ap.add_argument("--history-spans-per-hour", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--brin", action="store_true",
                    help="part 2 only: add a BRIN index on spans.start_time to both stores")
    ap.add_argument("--skip-baseline", action="store_true", help="run part 2 only")
    args = ap.parse_args()
    base_url = os.environ.get("OBS_PIPELINES_BENCH_PG_URL", DEFAULT_PG_URL)
    prices = load_prices({})
    start, end = HOUR, HOUR + timedelta(hours=1)
    print(f"PostgreSQL: {sa.make_url(base_url).render_as_string(hide_password=True)}; "
          f"rollup session settings: {', '.join(rollups.PG_SESSION_SETTINGS)}")

    print(f"generating {args.spans:,} spans for {HOUR:%Y-%m-%d %H:00} ...", flush=True)
    hour_frame = synth_frame(HOUR, args.spans, seed=1)

    # ---- 1. all hourly rollups vs the hand-written baseline -------------------------------------
    engine, schema = fresh_engine(base_url)
    try:
        if args.skip_baseline:
            raise _Skip
        t0 = time.perf_counter()
        copy_frame(engine, hour_frame)
        vacuum_analyze(engine)
        print(f"loaded {len(hour_frame):,} spans with COPY in {time.perf_counter() - t0:.1f}s")

        baseline(engine, start, end)  # warm the cache for both sides alike
        rows = {name: len(run_rollup(name, engine, start, end, prices)) for name in ROLLUPS}
        t_base = time_it(lambda: baseline(engine, start, end), args.repeat)
        t_base_defaults = time_it(lambda: baseline(engine, start, end, session_defaults=True), args.repeat)
        per = {name: time_it(lambda n=name: run_rollup(n, engine, start, end, prices), args.repeat)
               for name in ROLLUPS}
        t_all = sum(per.values())
        print(f"rows per rollup: {rows}")
        print(f"baseline, one hand-written SQL (trace-level p50/p90/p95/p99, counts, errors, overall + by route):")
        print(f"  with the rollups' session settings: {t_base:.3f}s   with server defaults: {t_base_defaults:.3f}s")
        for name, t in per.items():
            print(f"  {name:<8} rollup: {t:.3f}s  ({t / t_base:.2f}x baseline)")
        print(f"all hourly rollups: {t_all:.3f}s   ratio vs baseline: {t_all / t_base:.2f}x (target <= 2x)")

        def concurrently():  # as rollups.hourly_rollups computes them on PostgreSQL
            with ThreadPoolExecutor(len(ROLLUPS)) as pool:
                list(pool.map(lambda n: run_rollup(n, engine, start, end, prices), ROLLUPS))

        t_conc = time_it(concurrently, args.repeat)
        print(f"all hourly rollups run concurrently (wall clock): {t_conc:.3f}s   "
              f"ratio vs baseline: {t_conc / t_base:.2f}x")

        # ---- the whole monitoring group as Dagster runs it: monitoring_hourly_job ------------------
        bench_whole_job(engine, start, end, prices, t_base, args.repeat)
    except _Skip:
        pass
    finally:
        engine.dispose()
        drop_schema(base_url, schema)

    # ---- 2. 30 days of history vs 1 day ---------------------------------------------------------
    results, checks = {}, {}
    for days in (1, args.history_days):
        engine, schema = fresh_engine(base_url, brin=args.brin)
        try:
            t0 = time.perf_counter()
            load_history(engine, hour_frame, days, args.history_spans_per_hour)
            copy_frame(engine, hour_frame)
            vacuum_analyze(engine)
            with engine.begin() as conn:
                total = conn.execute(sa.text("SELECT count(*) FROM spans")).scalar_one()
            print(f"store with {days} day(s): {total:,} spans (loaded in {time.perf_counter() - t0:.1f}s)")
            for name in ROLLUPS:  # warm
                run_rollup(name, engine, start, end, prices)
            results[days] = time_it(
                lambda: [run_rollup(n, engine, start, end, prices) for n in ROLLUPS], args.repeat)
            print(f"  all hourly rollups for {HOUR:%Y-%m-%d %H:00}: {results[days]:.3f}s")
            quality.check_partition(engine, start, end)  # warm
            checks[days] = time_it(lambda: quality.check_partition(engine, start, end), args.repeat)
            print(f"  quality checks for {HOUR:%Y-%m-%d %H:00}: {checks[days]:.3f}s")
        finally:
            engine.dispose()
            drop_schema(base_url, schema)
    ratio = results[args.history_days] / results[1]
    brin = " (with a BRIN index on start_time)" if args.brin else ""
    print(f"{args.history_days} days vs 1 day{brin}: {ratio:.2f}x (target <= 1.2x)")
    print(f"  quality checks, {args.history_days} days vs 1 day: {checks[args.history_days] / checks[1]:.2f}x; "
          f"rollups + checks: {(results[args.history_days] + checks[args.history_days]) / (results[1] + checks[1]):.2f}x")


if __name__ == "__main__":
    main()
