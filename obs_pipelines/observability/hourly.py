"""One hour of the observability tables: read the window once, derive every hourly table from it.

``hourly_tables`` returns a frame per table, shaped like the table (window columns, computed_at, column
order), ready for ``db.replace_windows``; ``daily_tables`` the same for the daily session rollup.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.observability import agents, attribution, errors, prompts, reading, requests, retrieval, sessions
from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.tables import (
    agent_paths,
    cost_attribution_hourly,
    error_causes_hourly,
    latency_attribution_hourly,
    prompt_version_comparison_daily,
    retrieval_log,
    retrieval_rollup_hourly,
    session_rollup_daily,
    traces,
)
from obs_pipelines.pricing import PriceTable
from obs_pipelines.store import db
from obs_pipelines.store.query import run_concurrently
from obs_pipelines.store.schema import MODEL_CALL_KINDS


def shape(frame: pd.DataFrame, table: sa.Table, start: datetime, end: datetime) -> pd.DataFrame:
    """The table's columns in order, with the window and computed_at filled in."""
    out = frame.copy()
    out["window_start"] = db.to_naive_utc(start)
    out["window_end"] = db.to_naive_utc(end)
    out["computed_at"] = db.utcnow()
    cols = [c.name for c in table.columns]
    for col in cols:
        if col not in out:
            out[col] = None
    return out[cols].reset_index(drop=True)


# the spans the hourly tables read one by one (tool paths, retrievals; failed spans of any kind for the error
# causes; on SQLite the llm / embedding calls too, priced in pandas): the rest comes aggregated per trace,
# step or call group from the store
SPAN_KINDS_READ = ("tool", "retrieval")


class Hour:
    """What an hour's tables are made of: its requests, the per-trace aggregates of its spans, the spans of
    ``SPAN_KINDS_READ`` plus the failed ones, the retrievals' texts, the calls (per trace and per cost group)
    and what the attribution and the agent paths read. Every read is independent of the others: on
    PostgreSQL they run concurrently, and the calls are priced and summed in the database."""

    def __init__(self, engine: Engine, start: datetime, end: datetime, settings: ObservabilitySettings,
                 prices: PriceTable) -> None:
        self.engine, self.start, self.end = engine, start, end
        lookahead = end + reading.AGENT_LOOKAHEAD
        baseline = attribution.baseline_windows(start, end, settings.baseline_days)
        tasks = {
            "requests": lambda: reading.requests(engine, start, end),
            "texts": lambda: reading.texts(engine, start, end),
            "agent_later": lambda: reading.spans(engine, end, lookahead, kinds=reading.AGENT_KINDS),
            "agent_texts": lambda: reading.agent_texts(engine, start, lookahead),
            **attribution.latency_inputs(engine, start, end, settings.baseline_days),
        }
        if db.is_postgres(engine):
            reads = run_concurrently(engine, {
                **tasks,
                "aggregates": lambda: reading.trace_aggregates(engine, start, end),
                "spans": lambda: reading.spans(engine, start, end, kinds=SPAN_KINDS_READ, failed=True,
                                               tool_llm_until=lookahead),
                "trace_calls": lambda: reading.trace_calls(engine, start, end, prices),
                "call_groups": lambda: reading.call_groups(engine, [(start, end)], prices),
                "baseline_groups": lambda: reading.call_groups(engine, baseline, prices),
            })
            self.calls = attribution.calls_of_groups(reads["call_groups"][0]) if reads["call_groups"] else None
            self.costs = None
            self.baseline_calls = [attribution.calls_of_groups(g) for g in reads["baseline_groups"]]
        else:  # one light read of the hour stands for four SQL reads; the calls are priced in pandas
            for name in ("steps_now", "routes_now", "wrapping"):
                del tasks[name]
            reads = {name: read() for name, read in tasks.items()}
            reads.update(reading.window_statistics(reading.light_spans(engine, start, end), reads["requests"]))
            reads["spans"] = reading.spans(engine, start, end, kinds=SPAN_KINDS_READ + MODEL_CALL_KINDS,
                                           failed=True)
            self.costs = requests.span_costs(reads["spans"], prices)
            self.calls = attribution.calls_of(reads["spans"], reads["requests"], self.costs)
            self.baseline_calls = [attribution.calls_of(b_calls, b_requests, requests.span_costs(b_calls, prices))
                                   for b_calls, b_requests in reading.window_calls(engine, baseline)]
            reads["trace_calls"] = None  # traces_frame prices the spans' calls itself
        self.requests, self.aggregates = reads.pop("requests"), reads.pop("aggregates")
        self.spans, self.texts = reads.pop("spans"), reads.pop("texts")
        self.routes = self.requests.set_index("trace_id")["route"]
        self.reads = reads  # the attribution's and the agent paths' inputs

    def trace_spans(self, trace_id: str) -> pd.DataFrame:
        """Every span of one request in the window (an exemplar's tree)."""
        return reading.spans(self.engine, self.start, self.end, trace_ids=[trace_id])


def hourly_tables(engine: Engine, start: datetime, end: datetime, settings: ObservabilitySettings,
                  prices: PriceTable) -> tuple[dict[str, pd.DataFrame], Hour]:
    """Every hourly table of [start, end), by table name, and the hour's inputs."""
    hour = Hour(engine, start, end, settings, prices)
    reads = hour.reads
    rules = settings.error_rules
    trace_rows = requests.traces_frame(hour.requests, hour.aggregates, hour.spans, prices, rules,
                                       costs=hour.costs, calls=reads["trace_calls"])
    steps, texts = reading.agent_steps(engine, start, end, hour.requests["trace_id"], window_spans=hour.spans,
                                       later=reads["agent_later"], texts=reads["agent_texts"])
    log = retrieval.retrieval_log(hour.spans, hour.texts, hour.routes, settings.low_score_threshold)
    frames = {
        traces: trace_rows,
        latency_attribution_hourly: attribution.latency_attribution(
            reads["steps_now"], reads["steps_base"], reads["routes_now"], reads["routes_base"], reads["wrapping"]),
        cost_attribution_hourly: attribution.cost_attribution(
            hour.calls if hour.calls is not None else attribution.calls_of_groups(pd.DataFrame()),
            hour.baseline_calls, settings.top_n_users),
        error_causes_hourly: errors.error_causes(hour.spans, hour.routes, rules),
        retrieval_log: log,
        retrieval_rollup_hourly: retrieval.retrieval_rollup(log),
        agent_paths: agents.agent_paths(steps, texts, hour.routes, settings),
    }
    return {t.name: shape(f, t, start, end) for t, f in frames.items()}, hour


def daily_tables(engine: Engine, day_start: datetime, day_end: datetime, settings: ObservabilitySettings,
                 prices: PriceTable) -> dict[str, pd.DataFrame]:
    frames = {
        session_rollup_daily: sessions.session_rollup(engine, day_start, day_end),
        prompt_version_comparison_daily: prompts.prompt_comparison(
            engine, day_start, day_end, prices, settings.comparison_min_samples, settings.comparison_alpha),
    }
    return {t.name: shape(f, t, day_start, day_end) for t, f in frames.items()}
