"""Span sets for the monitoring tests: a hand-built hour with every edge case, and generator traces."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

H = datetime(2026, 11, 2, 10, 0)  # the hour under test
H_END = H + timedelta(hours=1)
PREV = H - timedelta(hours=1)
OVERRIDES = {"acme-ft-1": {"input": 0.30, "output": 1.20, "cached_input": 0.15}}
TOP_N = 3


class TraceBuilder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rows: list[dict] = []

    def trace_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def span(self, trace_id: str, parent: dict | None, name: str, kind: str, start: datetime, ms: float | None,
             **extra) -> dict:
        row = {
            "trace_id": trace_id,
            "span_id": f"{self.rng.getrandbits(64) or 1:016x}",
            "parent_span_id": parent["span_id"] if parent else None,
            "name": name,
            "kind": kind,
            "start_time": start,
            "end_time": start + timedelta(milliseconds=ms) if ms is not None else None,
            "status": "ok",
            "service_name": "support-assistant",
            "route": parent["route"] if parent else None,
            "user_id": parent["user_id"] if parent else None,
        }
        row.update(extra)
        self.rows.append(row)
        return row


MODELS = [
    ("gpt-4o-mini-2024-07-18", "openai"),
    ("claude-3-5-sonnet-20241022", "anthropic"),
    ("gemini-2.5-pro", "google"),  # tiered prices
    ("deepseek-chat", "deepseek"),  # off-peak prices by time of day
    ("acme-ft-1", "openai"),  # priced by the override only
    ("mystery-llm", "acme"),  # unknown: unpriced
]
USERS = [f"user-{i}" for i in range(8)] + [None]


def handmade_spans(seed: int = 11) -> list[dict]:
    """About 80 traces around 10:00-11:00 with the cases the rollups must get right."""
    rng = random.Random(seed)
    b = TraceBuilder(rng)
    for i in range(70):
        tid = b.trace_id()
        start = H + timedelta(seconds=rng.uniform(0, 3590))
        route = rng.choice(["rag_qa", "rag_qa", "agent_tools", "summarize", None])
        user = rng.choice(USERS)
        model, provider = rng.choice(MODELS)
        total = rng.uniform(300, 6000)
        root = b.span(tid, None, f"POST /{route}", "chain", start, total, route=route, user_id=user)
        t = start + timedelta(milliseconds=2)
        b.span(tid, root, "retrieve_docs", "retrieval", t, rng.uniform(20, 400))
        b.span(tid, root, "embeddings", "embedding", t, rng.uniform(5, 60), model="text-embedding-3-small",
               provider="openai", input_tokens=rng.randint(5, 60))
        inp = rng.randint(100, 260_000 if model == "gemini-2.5-pro" else 20_000)
        llm = b.span(
            tid, root, "chat", "llm", t + timedelta(milliseconds=50), rng.uniform(100, total - 60), model=model,
            provider=provider, prompt_name="rag_answer" if route == "rag_qa" else None,
            prompt_version=rng.choice(["3", "4"]) if route == "rag_qa" else None,
            input_tokens=inp, output_tokens=rng.randint(1, 900),
            cached_input_tokens=rng.choice([0, 0, inp // 2]),
            cost_usd=round(rng.uniform(0.001, 0.02), 6) if i % 5 == 0 else None,
            # half the llm spans carry no route: the rollup takes the root's
            route=route if i % 2 else None,
        )
        if i % 9 == 0:  # rate limit that fails the request: llm span -> root
            llm.update(status="error", error_type="openai.RateLimitError",
                       error_message="Error code: 429 - Rate limit reached for gpt-4o-mini")
            root.update(status="error", error_type="openai.RateLimitError", error_message="propagated")
        if i % 7 == 0:
            b.span(tid, root, "execute_tool lookup", "tool", t + timedelta(milliseconds=80), rng.uniform(10, 90),
                   status="error", error_type="ToolExecutionError", error_message="lookup failed: 502 Bad Gateway")
        if i % 11 == 0:
            b.span(tid, root, "output_guardrail", "guardrail", t + timedelta(milliseconds=90), 3.0,
                   status="error", error_type="GuardrailBlocked", error_message="blocked")
        if i % 13 == 0:  # a second model call still running (no end time)
            b.span(tid, root, "chat", "llm", t + timedelta(milliseconds=99), None, model="gpt-4o-mini-2024-07-18",
                   provider="openai", input_tokens=10, output_tokens=0)
        if i == 3:  # an llm span without model
            b.span(tid, root, "chat", "llm", t + timedelta(milliseconds=5), 40.0, input_tokens=50, output_tokens=5)

    # a trace whose root starts in the previous hour, children in this one: a request of the previous hour
    tid = b.trace_id()
    root = b.span(tid, None, "POST /rag_qa", "chain", H - timedelta(milliseconds=300), 900.0, route="rag_qa",
                  user_id="user-1")
    b.span(tid, root, "chat", "llm", H + timedelta(milliseconds=10), 500.0, model="gpt-4o-mini-2024-07-18",
           provider="openai", input_tokens=1000, output_tokens=100)
    # a trace without any root span (root lost): counted where its first span is, min start / max end
    tid = b.trace_id()
    fake_parent = {"span_id": "0123456789abcdef", "route": "agent_tools", "user_id": "user-2"}
    b.span(tid, fake_parent, "invoke_agent", "agent", H + timedelta(minutes=20), 1500.0)
    b.span(tid, fake_parent, "chat", "llm", H + timedelta(minutes=20, seconds=2), 700.0, status="error",
           error_type="openai.InternalServerError", error_message="Error code: 500", model="gpt-4o-mini-2024-07-18",
           provider="openai", input_tokens=300, output_tokens=20)
    # a rootless trace that started in the previous hour: belongs to the previous hour only
    tid = b.trace_id()
    b.span(tid, fake_parent, "invoke_agent", "agent", H - timedelta(seconds=30), 200.0)
    b.span(tid, fake_parent, "execute_tool x", "tool", H + timedelta(seconds=5), 100.0)
    # a trace of this hour with a child starting after the hour: the child is the next hour's step
    tid = b.trace_id()
    root = b.span(tid, None, "POST /summarize", "chain", H_END - timedelta(seconds=1), 3000.0, route="summarize",
                  user_id="user-3")
    b.span(tid, root, "chat", "llm", H_END + timedelta(milliseconds=500), 2000.0, model="claude-3-5-sonnet-20241022",
           provider="anthropic", input_tokens=5000, output_tokens=300)
    # a few requests in the previous hour
    for _ in range(5):
        tid = b.trace_id()
        start = PREV + timedelta(seconds=rng.uniform(0, 3000))
        root = b.span(tid, None, "POST /classify", "chain", start, rng.uniform(100, 900), route="classify",
                      user_id="user-4")
        b.span(tid, root, "chat", "llm", start + timedelta(milliseconds=1), 80.0, model="gpt-4o-mini-2024-07-18",
               provider="openai", input_tokens=200, output_tokens=3)
    return b.rows


@pytest.fixture(scope="session")
def handmade() -> list[dict]:
    return handmade_spans()


def insert(store, rows: list[dict]) -> None:
    from obs_pipelines.store import db

    stored = db.insert_spans(store.engine, rows)
    assert stored == len(rows)
