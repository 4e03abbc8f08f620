"""Small traces written straight into the `spans` contract for the cause and exemplar tests: a request is a
root span of a route with steps under it, each with the figures a case needs (durations, tokens, cost,
status, retrieved documents). Ids are counted, so a case reads the same on every run."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pandas as pd

from obs_pipelines.alerts.evaluate import RuleResult
from obs_pipelines.alerts.rules import parse_rule
from obs_pipelines.store import db

HOUR = timedelta(hours=1)
BREACH = datetime(2026, 3, 10, 14, 0)  # the breached hour of every case; the baseline is the days before
_ids = itertools.count(1)


def _id(width: int) -> str:
    return f"{next(_ids):0{width}x}"


class Traffic:
    """Span rows of several requests (``rows``), built one request at a time."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def request(self, route: str, at: datetime, steps: list[dict], user: str = "u1", status: str = "ok") -> str:
        """A root span of ``route`` at ``at`` with ``steps`` run one after the other under it. A step:
        name, kind, ms, and any contract column (model, provider, prompt_version, input_tokens, cost_usd,
        status, error_type, error_message, attributes, input ...). Returns the trace id."""
        trace, root = _id(32), _id(16)
        t = at + timedelta(milliseconds=5)
        for step in steps:
            step = dict(step)
            ms = step.pop("ms", 10.0)
            self.rows.append({"trace_id": trace, "span_id": _id(16), "parent_span_id": step.pop("parent", root),
                              "start_time": t, "end_time": t + timedelta(milliseconds=ms), "route": route,
                              "user_id": user, "status": step.pop("status", "ok"), **step})
            t += timedelta(milliseconds=ms)
        self.rows.append({"trace_id": trace, "span_id": root, "parent_span_id": None, "name": route, "kind": "chain",
                          "start_time": at, "end_time": t + timedelta(milliseconds=5), "route": route,
                          "user_id": user, "status": status})
        return trace


def spread(hour: datetime, n: int):
    """``n`` request times spread over the hour."""
    return [hour + timedelta(seconds=int(3000 * i / max(n, 1)) + 30) for i in range(n)]


def days_before(hour: datetime, days: int) -> list[datetime]:
    return [hour - timedelta(days=d) for d in range(1, days + 1)]


def llm(model: str = "gpt-4o-mini", provider: str = "openai", prompt_version: str = "v1", input_tokens: int = 1000,
        output_tokens: int = 100, cost_usd: float | None = None, ms: float = 500.0, **extra) -> dict:
    return {"name": "generate", "kind": "llm", "model": model, "provider": provider, "prompt_version": prompt_version,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": cost_usd, "ms": ms, **extra}


def retrieval(name: str = "search_kb", scores: list[float] | None = None, ms: float = 100.0) -> dict:
    docs = [{"id": f"doc-{i}", "content": f"article {i}", "score": s} for i, s in enumerate(scores or [])]
    return {"name": name, "kind": "retrieval", "ms": ms, "attributes": {"retrieval.documents": docs}}


def rule(**fields):
    return parse_rule({"name": "case_rule", **fields})


def breach(group: dict, hour: datetime = BREACH) -> RuleResult:
    return RuleResult(rule="case_rule", window_start=hour, window_end=hour + HOUR, group=group, value=1.0,
                      threshold=0.5, samples=100.0, judged=True, passed=False)


def cost_case(store) -> None:
    t = Traffic()
    # route support: 10 calls an hour of prompt v1 (1000 input tokens, $0.001); in the breached hour half the
    # calls run prompt v2, which triples the input tokens ($0.003): the route's cost doubles ($0.01 -> $0.02)
    for hour in days_before(BREACH, 3):
        for at in spread(hour, 10):
            t.request("support", at, [llm(prompt_version="v1", cost_usd=0.001)])
    for i, at in enumerate(spread(BREACH, 10)):
        v2 = i % 2 == 1
        t.request("support", at, [llm(prompt_version="v2" if v2 else "v1", input_tokens=3000 if v2 else 1000,
                                      cost_usd=0.003 if v2 else 0.001)])
    # another route whose own prompt v9 got dearer in the same hour: never part of support's cause
    for hour in [*days_before(BREACH, 3), BREACH]:
        for at in spread(hour, 10):
            t.request("search", at, [llm(prompt_version="v9", cost_usd=0.01 if hour == BREACH else 0.001)])
    db.insert_spans(store.engine, t.rows)


def write_scores(store, rows: list[tuple]) -> None:
    """eval_scores rows: (hour, trace_id, route, model, prompt_version, score)."""
    from obs_pipelines.online_evals.score_store import insert_scores

    frame = pd.DataFrame([{"window_start": h, "window_end": h + pd.Timedelta(hours=1), "trace_id": tr,
                           "span_id": f"{i:016x}", "span_kind": "root", "route": route, "model": model,
                           "prompt_version": pv, "scorer": "groundedness", "scorer_version": "1", "score": s}
                          for i, (h, tr, route, model, pv, s) in enumerate(rows)])
    insert_scores(store.engine, frame)  # eval_scores is a view over the compact tables


def write_paths(store, rows: list[tuple]) -> None:
    """agent_paths rows: (hour, trace_id, route, tool_calls, loop evidence or None)."""
    from obs_pipelines.observability.tables import agent_paths

    with store.engine.begin() as conn:
        conn.execute(agent_paths.insert(), [
            {"window_start": h, "window_end": h + pd.Timedelta(hours=1), "trace_id": tr, "route": route,
             "tool_calls": n, "loop_detected": evidence is not None,
             "loop_evidence": json.dumps(evidence) if evidence else None} for h, tr, route, n, evidence in rows])
