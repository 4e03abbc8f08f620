"""Realistic traces of an LLM support assistant, with injectable incidents.

``generate_traces`` yields each trace as the span rows of the raw ``spans`` contract (what a correct
ingest produces from the OTLP that ``trace_to_otlp`` writes for it); ``write_otlp_jsonl`` writes one
OTLP/JSON ExportTraceServiceRequest per line.

The app ("support-assistant") serves four routes:

- ``rag_qa``     POST /chat/answer: validate_input -> embeddings -> retrieve_docs -> rerank -> chat -> postprocess_answer
                 -> output_guardrail
- ``agent_tools`` POST /agent/run: invoke_agent -> (chat plan -> execute_tool)* -> chat final
- ``summarize``  POST /docs/summarize: validate_input -> chat (streamed, long input) -> output_guardrail
- ``classify``   POST /tickets/classify: chat (small model)

Randomness: one master stream drives arrivals, routes and users (so sessions do not depend on incidents);
each trace draws from its own stream seeded from the master, so an incident changes only the traces
that start inside its window and the rest of the output stays byte-identical.
"""

from __future__ import annotations

import gc
import math
import mmap
import os
import random
import uuid
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path

from obs_pipelines.forking import fork_context, ordered_map, reset_worker_signals
from obs_pipelines.synth import content as C
from obs_pipelines.synth.catalog import (
    CHAT_TIMEOUT_S,
    CONTEXT_LENGTH,
    COST_REPORTING_ROUTE,
    EMBEDDING_MODEL,
    EMBEDDING_TIMEOUT_S,
    GUARDRAIL_BLOCK,
    MAX_ITERATIONS,
    MODELS,
    PROVIDER_ERRORS,
    RERANKER_MODEL,
    ROUTE_INFO,
    ROUTES,
    SERVICE_NAME,
    TOOL_ERROR,
    ErrorShape,
    Model,
)
from obs_pipelines.synth.incidents import INCIDENT_NAMES, Incident, parse_duration, parse_incident
from obs_pipelines.synth.otlp import encode_trace, trace_to_otlp

__all__ = [
    "INCIDENT_NAMES",
    "GenerateSummary",
    "Incident",
    "diurnal_factor",
    "encode_trace",
    "generate_traces",
    "parse_duration",
    "parse_incident",
    "trace_to_otlp",
    "write_otlp_jsonl",
]

_EPOCH = datetime(1970, 1, 1)
_US = 1_000_000

# ---- background behaviour (per call / per trace probabilities) ----------------------------------
P_RATE_LIMIT = 0.01  # retried, so few requests fail from it
P_SERVER_ERROR = 0.004
P_TIMEOUT = 0.0015
P_TOOL_ERROR = 0.02
P_GUARDRAIL_BLOCK = 0.008
P_HUGE_DOCUMENT = 0.004  # summarize inputs beyond the context window
P_UNGROUNDED_BACKGROUND = 0.03
# ---- incident strengths ---------------------------------------------------------------------------
OUTAGE_P_SERVER, OUTAGE_P_TIMEOUT = 0.65, 0.2
STORM_P_RATE_LIMIT = 0.6
TOOL_LOOP_SHARE = 0.75
MAX_AGENT_ITERATIONS = 10

# ---- traffic ----------------------------------------------------------------------------------------
DIURNAL_AMPLITUDE = 0.6
DIURNAL_PEAK_HOUR_UTC = 15.0  # US morning / EU afternoon
N_USERS = 20_000
ZIPF_S, ZIPF_Q = 1.05, 5.0
SESSION_IDLE_S = 30 * 60
SESSION_MAX_S = 2 * 3600


def diurnal_factor(t: datetime | float) -> float:
    """Traffic multiplier at a UTC time (datetime or epoch seconds); its mean over a day is 1."""
    secs = (t - _EPOCH).total_seconds() if isinstance(t, datetime) else t
    hour = (secs % 86400) / 3600.0
    return 1.0 + DIURNAL_AMPLITUDE * math.cos(2 * math.pi * (hour - DIURNAL_PEAK_HOUR_UTC) / 24.0)


@dataclass(frozen=True)
class GenerateSummary:
    traces: int
    spans: int
    path: Path
    workers: int = 1  # processes that built and encoded the traces (1: in-process)


# =====================================================================================================
# per-trace incident effects
# =====================================================================================================


class _Effects:
    """What the incidents active at a trace's start change; one shared empty instance when none are."""

    __slots__ = ("slow", "outage", "storm", "cost", "regression", "miss", "loop", "drift", "any")

    def __init__(self) -> None:
        self.slow: dict[str, str] = {}  # step kind or model name -> incident name
        self.outage: dict[str, str] = {}  # provider -> incident name
        self.storm: dict[str, str] = {}  # provider -> incident name
        self.cost: dict[str, str] = {}  # route -> incident name
        self.regression: str | None = None
        self.miss: str | None = None
        self.loop: tuple[str, str | None] | None = None  # (incident name, tool or None)
        self.drift: tuple[str, float] | None = None  # (incident name, progress 0..1)
        self.any = False


_NO_EFFECTS = _Effects()


class _ActiveIncident:
    __slots__ = ("inc", "start_us", "end_us")

    def __init__(self, inc: Incident) -> None:
        self.inc = inc
        self.start_us = _to_us(inc.start)
        self.end_us = _to_us(inc.end)


def _effects_at(active: list[_ActiveIncident], t_us: int) -> _Effects:
    fx = None
    for a in active:
        if not (a.start_us <= t_us < a.end_us):
            continue
        if fx is None:
            fx = _Effects()
            fx.any = True
        inc = a.inc
        name, target = inc.name, inc.effective_target
        if name == "latency_spike":
            fx.slow[_REQUEST_MODEL.get(target, target)] = name
        elif name == "provider_outage":
            fx.outage[target] = name
        elif name == "rate_limit_storm":
            fx.storm[target] = name
        elif name == "cost_overrun":
            fx.cost[target] = name
        elif name == "prompt_regression":
            fx.regression = name
        elif name == "retrieval_miss":
            fx.miss = name
        elif name == "tool_loop":
            fx.loop = (name, target)
        elif name == "silent_quality_drift":
            fx.drift = (name, (t_us - a.start_us) / (a.end_us - a.start_us))
    return fx or _NO_EFFECTS


# =====================================================================================================
# trace building
# =====================================================================================================


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return (dt - _EPOCH) // timedelta(microseconds=1)


class _Failure(Exception):
    """An exception travelling up the app's call stack (each span it leaves records it)."""

    def __init__(self, shape: ErrorShape, message: str, end_us: int, retryable: str | None = None):
        super().__init__(message)
        self.shape = shape
        self.message = message
        self.end_us = end_us
        self.retryable = retryable  # "rate_limit" / "server" for the retry loop


class _Tb:
    """Builds one trace: rows in creation order, times as int microseconds until ``finish``."""

    __slots__ = ("rng", "fx", "trace_id", "route", "user_id", "session_id", "rows", "tagged", "template")

    def __init__(self, rng: random.Random, fx: _Effects, route: str, user_id: str, session_id: str):
        self.rng = rng
        self.fx = fx
        self.trace_id = f"{rng.getrandbits(128) or 1:032x}"
        self.route = route
        self.user_id = user_id
        self.session_id = session_id
        self.rows: list[dict] = []
        self.tagged: list[str] = []
        self.template = {
            "trace_id": self.trace_id,
            "span_id": None,
            "parent_span_id": None,
            "name": None,
            "kind": None,
            "start_time": None,
            "end_time": None,
            "status": "ok",
            "error_type": None,
            "error_message": None,
            "service_name": SERVICE_NAME,
            "route": route,
            "model": None,
            "provider": None,
            "prompt_name": None,
            "prompt_version": None,
            "input_tokens": None,
            "output_tokens": None,
            "cached_input_tokens": None,
            "cost_usd": None,
            "user_id": user_id,
            "session_id": session_id,
            "input": None,
            "output": None,
            "attributes": None,
        }

    def span(self, parent: dict | None, name: str, kind: str, start_us: int, attributes: dict) -> dict:
        row = self.template.copy()
        row["span_id"] = f"{self.rng.getrandbits(64) or 1:016x}"
        row["parent_span_id"] = parent["span_id"] if parent is not None else None
        row["name"] = name
        row["kind"] = kind
        row["start_time"] = row["end_time"] = start_us
        row["attributes"] = attributes
        self.rows.append(row)
        return row

    def tag(self, row: dict, incident: str) -> None:
        attrs = row["attributes"]
        prev = attrs.get("synth.incident")
        if prev is None:
            attrs["synth.incident"] = incident
        elif incident not in prev.split(","):
            attrs["synth.incident"] = f"{prev},{incident}"
        if incident not in self.tagged:
            self.tagged.append(incident)

    def slow_factor(self, row: dict, *keys: str) -> float:
        """5-10x when a latency_spike targets this step kind / model (and tags the span)."""
        slow = self.fx.slow
        if slow:
            for k in keys:
                name = slow.get(k)
                if name is not None:
                    self.tag(row, name)
                    return self.rng.uniform(5.0, 10.0)
        return 1.0

    def lognormal_us(self, median_s: float, sigma: float) -> int:
        return int(median_s * math.exp(self.rng.gauss(0.0, sigma)) * _US)

    @staticmethod
    def fail(row: dict, f: _Failure, end_us: int) -> None:
        row["end_time"] = end_us
        row["status"] = "error"
        row["error_type"] = f.shape.error_type
        row["error_message"] = f.message

    def finish(self, datetimes: bool = True) -> list[dict]:
        rows = self.rows
        if self.tagged:
            root_attrs = rows[0]["attributes"]
            have = root_attrs.get("synth.incident")
            names = [n for n in self.tagged if not have or n not in have.split(",")]
            if names:
                root_attrs["synth.incident"] = ",".join(([have] if have else []) + names)
        if not datetimes:  # the writer's path: encode_trace reads int microseconds as well
            return rows
        epoch, td = _EPOCH, timedelta
        for r in rows:
            r["start_time"] = epoch + td(0, 0, r["start_time"])
            r["end_time"] = epoch + td(0, 0, r["end_time"])
        return rows


_DOC_TOKENS = {d.id: d.tokens for d in C.DOCS}
_REQUEST_MODEL = {m.response_model: m.name for m in MODELS.values()}


def _gap(rng: random.Random) -> int:
    """In-process time between two steps (microseconds)."""
    return 200 + int(rng.random() * 1500)


# ---- leaf steps ---------------------------------------------------------------------------------------


def _chain_step(tb: _Tb, parent: dict, name: str, t: int, median_s: float, text: str | None = None) -> int:
    row = tb.span(parent, name, "chain", t, {})
    if text is not None:
        row["input"] = text
    row["end_time"] = t + tb.lognormal_us(median_s, 0.5)
    return row["end_time"]


def _draw_failure(tb: _Tb, row: dict, m: Model) -> tuple[str | None, str | None]:
    """Which failure (if any) one API call to m's provider meets, and the incident that caused it."""
    fx, rng = tb.fx, tb.rng
    p_rl, p_srv, p_to = P_RATE_LIMIT, P_SERVER_ERROR, P_TIMEOUT
    storm = fx.storm.get(m.provider) if fx.storm else None
    outage = fx.outage.get(m.provider) if fx.outage else None
    if storm:
        p_rl = STORM_P_RATE_LIMIT
    if outage:
        p_srv, p_to = OUTAGE_P_SERVER, OUTAGE_P_TIMEOUT
    u = rng.random()
    if u < p_rl:
        return "rate_limit", storm
    u -= p_rl
    if u < p_srv:
        return "server", outage
    u -= p_srv
    if u < p_to:
        return "timeout", outage
    return None, None


def _api_failure(tb: _Tb, row: dict, m: Model, kind: str, t: int, timeout_s: float) -> _Failure:
    shape = PROVIDER_ERRORS[m.provider][kind]
    rng = tb.rng
    if kind == "rate_limit":
        end = t + tb.lognormal_us(0.12, 0.5)
        message = shape.message.format(model=m.name, ms=rng.randint(80, 2500))
    elif kind == "server":
        end = t + tb.lognormal_us(0.6, 0.9)
        message = shape.message
    else:
        end = t + int((timeout_s + rng.random() * 0.05) * _US)
        message = shape.message
    if shape.http_status is not None:
        row["attributes"]["http.response.status_code"] = shape.http_status
    f = _Failure(shape, message, end, retryable=kind if kind != "timeout" else None)
    tb.fail(row, f, end)
    return f


def _chat_attempt(
    tb: _Tb,
    parent: dict,
    t: int,
    m: Model,
    prompt: tuple[str, str] | None,
    input_tokens: int,
    cached_tokens: int,
    output_tokens: int,
    text_in: str,
    text_out: str,
    *,
    temperature: float,
    max_tokens: int,
    stream: bool,
    finish_reason: str,
    incident: str | None,
    output_incident: str | None = None,
) -> int:
    rng = tb.rng
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.max_tokens": max_tokens,
    }
    if stream:
        attrs["gen_ai.request.stream"] = True
    row = tb.span(parent, f"chat {m.name}", "llm", t, attrs)
    row["model"] = m.name
    row["provider"] = m.provider
    if prompt is not None:
        row["prompt_name"], row["prompt_version"] = prompt
    row["input"] = text_in
    if incident:
        tb.tag(row, incident)
    slow = tb.slow_factor(row, "llm", m.name)
    if input_tokens > m.context_window:
        end = t + tb.lognormal_us(0.25, 0.3)
        message = CONTEXT_LENGTH.message.format(tokens=input_tokens, limit=m.context_window)
        row["attributes"]["http.response.status_code"] = CONTEXT_LENGTH.http_status
        f = _Failure(CONTEXT_LENGTH, message, end)
        tb.fail(row, f, end)
        raise f
    kind, cause = _draw_failure(tb, row, m)
    if kind is not None:
        if cause:
            tb.tag(row, cause)
        raise _api_failure(tb, row, m, kind, t, CHAT_TIMEOUT_S)
    ttft = m.ttft_s * math.exp(rng.gauss(0.0, 0.3)) + input_tokens * 1.5e-5
    gen = output_tokens / (m.tokens_per_s * math.exp(rng.gauss(0.0, 0.15)))
    duration = (ttft + gen) * slow
    row["model"] = m.response_model
    if m.response_model != m.name:  # (ingest keeps the request model only when it differs)
        attrs["gen_ai.request.model"] = m.name
    row["input_tokens"] = input_tokens
    row["output_tokens"] = output_tokens
    row["cached_input_tokens"] = cached_tokens
    if stream:
        attrs["gen_ai.response.time_to_first_token"] = round(ttft * slow, 4)
    attrs["gen_ai.response.finish_reasons"] = [finish_reason]
    if tb.route == COST_REPORTING_ROUTE:
        row["cost_usd"] = round(
            (
                (input_tokens - cached_tokens) * m.usd_per_m_input
                + cached_tokens * m.usd_per_m_cached
                + output_tokens * m.usd_per_m_output
            )
            / 1e6,
            8,
        )
    row["output"] = text_out
    if output_incident:  # an incident that only changed what came back
        tb.tag(row, output_incident)
    row["end_time"] = t + int(duration * _US)
    return row["end_time"]


def _with_retry(call, tb: _Tb, parent: dict, t: int, m: Model, *args, **kwargs) -> int:
    """The app's retry policy around one API call: 429 up to 2 retries, 5xx 1 retry, none on timeouts."""
    left = {"rate_limit": 2, "server": 1}
    while True:
        try:
            return call(tb, parent, t, m, *args, **kwargs)
        except _Failure as f:
            if f.retryable is None or left[f.retryable] == 0:
                raise
            left[f.retryable] -= 1
            backoff = tb.rng.uniform(1.0, 3.0) if f.retryable == "rate_limit" else tb.rng.uniform(0.5, 1.5)
            t = f.end_us + int(backoff * _US)


def _chat(tb: _Tb, parent: dict, t: int, m: Model, *args, **kwargs) -> int:
    return _with_retry(_chat_attempt, tb, parent, t, m, *args, **kwargs)


def _embedding(tb: _Tb, parent: dict, t: int, text: str, tokens: int) -> int:
    return _with_retry(_embedding_attempt, tb, parent, t, MODELS[EMBEDDING_MODEL], text, tokens)


def _embedding_attempt(tb: _Tb, parent: dict, t: int, m: Model, text: str, tokens: int) -> int:
    row = tb.span(
        parent,
        f"embeddings {m.name}",
        "embedding",
        t,
        {"gen_ai.operation.name": "embeddings"},
    )
    row["model"] = m.name
    row["provider"] = m.provider
    row["input"] = text
    slow = tb.slow_factor(row, "embedding", m.name)
    kind, cause = _draw_failure(tb, row, m)
    if kind is not None:
        if cause:
            tb.tag(row, cause)
        raise _api_failure(tb, row, m, kind, t, EMBEDDING_TIMEOUT_S)
    row["model"] = m.response_model
    if m.response_model != m.name:
        row["attributes"]["gen_ai.request.model"] = m.name
    row["input_tokens"] = tokens
    row["end_time"] = t + int(tb.lognormal_us(0.09, 0.4) * slow)
    return row["end_time"]


# ---- routes ------------------------------------------------------------------------------------------


def _grounded_answer(tb: _Tb, q: C.Question) -> tuple[str, bool]:
    rng = tb.rng
    if rng.random() < P_UNGROUNDED_BACKGROUND:
        return rng.choice(C.DRIFT_ANSWERS), False
    return rng.choice(C.GROUNDED[q.text]), True


_SAME_TOPIC = {d.id: [o for o in C.DOCS_BY_TOPIC[d.topic] if o is not d] for d in C.DOCS}
# a few fixed shuffles of the off-topic documents per topic: distractors are a window of one of them
_perm_rng = random.Random(20261102)
_OFF_TOPIC = {
    topic: [_perm_rng.sample(pool, len(pool)) for _ in range(16)]
    for topic in C.TOPICS
    for pool in [[d for d in C.DOCS if d.topic != topic]]
}


def _distractors(rng: random.Random, topic: str, n: int) -> list[C.Doc]:
    perms = _OFF_TOPIC[topic]
    perm = perms[int(rng.random() * len(perms))]
    j = int(rng.random() * (len(perm) - n + 1))
    return perm[j : j + n]


def _retrieve(tb: _Tb, root: dict, t: int, q: C.Question) -> tuple[int, list[dict]]:
    rng, fx = tb.rng, tb.fx
    row = tb.span(root, "retrieve_docs", "retrieval", t, {})
    row["input"] = q.text
    k = rng.randint(5, 8)
    docs: list[dict] = []
    if fx.miss:
        tb.tag(row, fx.miss)
        if rng.random() >= 0.4:  # else: nothing above the similarity cut-off
            picks = _distractors(rng, q.topic, k)
            scores = sorted((rng.uniform(0.05, 0.32) for _ in picks), reverse=True)
            docs = [{"id": d.id, "content": d.content, "score": round(s, 4)} for d, s in zip(picks, scores)]
    else:
        same = _SAME_TOPIC[q.doc.id]
        n_same = rng.randint(0, 2)
        relevant = [q.doc]
        if n_same and same:
            j = rng.randrange(len(same))
            relevant += (same[j:] + same[:j])[:n_same]
        others = _distractors(rng, q.topic, k - len(relevant))
        top = rng.uniform(0.82, 0.93)
        scores = [top] + sorted((rng.uniform(0.66, top - 0.02) for _ in relevant[1:]), reverse=True)
        floor = scores[-1] - 0.05
        scores += sorted((rng.uniform(0.3, floor) for _ in others), reverse=True)
        docs = [{"id": d.id, "content": d.content, "score": round(s, 4)} for d, s in zip(relevant + others, scores)]
    if docs:  # (an empty result leaves no documents attributes behind)
        row["attributes"]["retrieval.documents"] = docs
    row["end_time"] = t + int(tb.lognormal_us(0.14, 0.45) * tb.slow_factor(row, "retrieval"))
    return row["end_time"], docs


def _rerank(tb: _Tb, root: dict, t: int, q: C.Question, docs: list[dict], top_n: int) -> tuple[int, list[dict]]:
    rng = tb.rng
    ranked: list[dict] = []
    row = tb.span(root, "rerank", "reranker", t, {"reranker.top_k": top_n, "reranker.output_documents": ranked})
    row["model"] = RERANKER_MODEL
    row["input"] = q.text
    if tb.fx.miss:
        tb.tag(row, tb.fx.miss)
    out = docs[:top_n]
    for d in out:
        # cross-encoder scores: sharper than the vector scores
        s = d["score"]
        rs = round(min(0.999, max(0.001, (s - 0.45) * 2.2 + 0.5 + rng.gauss(0.0, 0.03))), 4)
        ranked.append({"id": d["id"], "score": rs})
    if not ranked:
        del row["attributes"]["reranker.output_documents"]
    median = 0.11 if docs else 0.01
    row["end_time"] = t + int(tb.lognormal_us(median, 0.35) * tb.slow_factor(row, "reranker"))
    return row["end_time"], out


def _guardrail(tb: _Tb, parent: dict, t: int, text: str) -> tuple[int, bool]:
    rng = tb.rng
    row = tb.span(parent, "output_guardrail", "guardrail", t, {"guardrail.checks": "pii,toxicity,jailbreak"})
    row["input"] = text
    end = t + int(tb.lognormal_us(0.035, 0.4) * tb.slow_factor(row, "guardrail"))
    if rng.random() < P_GUARDRAIL_BLOCK:
        reason = "pii_detected" if rng.random() < 0.7 else "toxicity"
        tb.fail(row, _Failure(GUARDRAIL_BLOCK, GUARDRAIL_BLOCK.message.format(reason=reason), end), end)
        return end, False
    row["output"] = "pass"
    row["end_time"] = end
    return end, True


def _route_rag_qa(tb: _Tb, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    q = rng.choice(C.QUESTIONS)
    root["input"] = q.text
    t = _chain_step(tb, root, "validate_input", t, 0.004, q.text) + _gap(rng)
    t = _embedding(tb, root, t, q.text, q.tokens) + _gap(rng)
    t, docs = _retrieve(tb, root, t, q)
    t += _gap(rng)
    t, top = _rerank(tb, root, t, q, docs, 3)
    t += _gap(rng)

    m = MODELS["gpt-4o" if rng.random() < 0.2 else "gpt-4o-mini"]
    version = "3" if rng.random() < 0.1 else "4"
    history = min(turn, 6) * rng.randint(60, 160)
    input_tokens = 1150 + sum(_DOC_TOKENS[d["id"]] for d in top) + q.tokens + history
    cost_incident = fx.cost.get("rag_qa") if fx.cost else None
    if cost_incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    cached = 1024 if rng.random() < 0.6 else 0
    output_tokens = max(12, min(1024, int(150 * math.exp(rng.gauss(0.0, 0.5)))))
    incident = cost_incident
    output_incident = None
    grounded = True
    if fx.regression:
        version = "5"
        answer = rng.choice(C.REGRESSED_ANSWERS)
        output_tokens = max(5, int(25 * math.exp(rng.gauss(0.0, 0.4))))
        grounded = False
        incident = fx.regression
    elif not top:  # nothing retrieved (retrieval_miss)
        answer, grounded = rng.choice(C.MISS_ANSWERS), False
        incident = incident or fx.miss
    elif fx.miss:
        answer, grounded = rng.choice(C.MISS_ANSWERS), False
        incident = incident or fx.miss
    elif fx.drift and rng.random() < 0.1 + 0.8 * fx.drift[1]:
        answer, grounded = rng.choice(C.DRIFT_ANSWERS), False
        output_incident = fx.drift[0]
    else:
        answer, grounded = _grounded_answer(tb, q)
    stream = rng.random() < 0.6
    t = _chat(
        tb,
        root,
        t,
        m,
        ("rag_answer", version),
        input_tokens,
        cached,
        output_tokens,
        q.text,
        answer,
        temperature=0.2,
        max_tokens=1024,
        stream=stream,
        finish_reason="stop",
        incident=incident,
        output_incident=output_incident,
    ) + _gap(rng)
    final = f"{answer} [{top[0]['id']}]" if grounded and top else answer
    row = tb.span(root, "postprocess_answer", "chain", t, {})
    row["input"], row["output"] = answer, final
    t = row["end_time"] = t + tb.lognormal_us(0.002, 0.5)
    t, ok = _guardrail(tb, root, t + _gap(rng), final)
    root["output"] = final if ok else C.GUARDRAIL_REPLY
    return t


def _route_summarize(tb: _Tb, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    doc, summary = rng.choice(C.SUMMARIZE_DOCS)
    text_in = f"Summarize: {doc}"
    root["input"] = text_in
    t = _chain_step(tb, root, "validate_input", t, 0.006, text_in) + _gap(rng)
    m = MODELS["claude-3-5-sonnet-20241022"]
    if rng.random() < P_HUGE_DOCUMENT:
        input_tokens = int(m.context_window * rng.uniform(1.02, 1.8))
    else:
        input_tokens = max(400, min(150_000, int(5500 * math.exp(rng.gauss(0.0, 0.8)))))
    incident = fx.cost.get("summarize") if fx.cost else None
    if incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    cached = 2048 if input_tokens > 2600 and rng.random() < 0.3 else 0
    output_tokens = max(40, min(2048, int(260 * math.exp(rng.gauss(0.0, 0.45)))))
    t = _chat(
        tb,
        root,
        t,
        m,
        ("summarize_doc", "2"),
        input_tokens,
        cached,
        output_tokens,
        text_in,
        summary,
        temperature=0.3,
        max_tokens=2048,
        stream=True,
        finish_reason="end_turn",
        incident=incident,
    ) + _gap(rng)
    t, ok = _guardrail(tb, root, t, summary)
    root["output"] = summary if ok else C.GUARDRAIL_REPLY
    return t


def _route_classify(tb: _Tb, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    q = rng.choice(C.QUESTIONS)
    root["input"] = q.text
    m = MODELS["gemini-1.5-flash"]
    input_tokens = 310 + q.tokens
    incident = fx.cost.get("classify") if fx.cost else None
    if incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    label = q.topic if rng.random() < 0.93 else rng.choice(C.TOPICS)
    t = _chat(
        tb,
        root,
        t,
        m,
        ("ticket_classifier", "1"),
        input_tokens,
        0,
        rng.randint(1, 4),
        q.text,
        label,
        temperature=0.0,
        max_tokens=5,
        stream=False,
        finish_reason="STOP",
        incident=incident,
    )
    root["output"] = label
    return t


def _tool_args(rng: random.Random, tool: str, slots: dict[str, str]) -> tuple[str, str]:
    """(arguments JSON, result JSON) of one tool call."""
    oid, city, product, email = slots["oid"], slots["city"], slots["product"], slots["email"]
    if tool == "get_order_status":
        carrier = rng.choice(C.CARRIERS)
        status = rng.choice(C.ORDER_STATUSES)
        return f'{{"order_id": "{oid}"}}', f'{{"order_id": "{oid}", "status": "{status}", "carrier": "{carrier}"}}'
    if tool == "get_weather":
        return f'{{"city": "{city}"}}', f'{{"city": "{city}", "forecast": "{rng.choice(C.WEATHER)}"}}'
    if tool == "search_orders":
        return (
            f'{{"query": "{product}", "limit": 5}}',
            f'{{"orders": [{{"order_id": "{oid}", "item": "{product}", "status": "{rng.choice(C.ORDER_STATUSES)}"}}]}}',
        )
    if tool == "lookup_account":
        return f'{{"email": "{email}"}}', f'{{"email": "{email}", "verified": {"true" if rng.random() < 0.8 else "false"}}}'
    return (
        f'{{"order_id": "{oid}", "reason": "damaged"}}',
        f'{{"ticket_id": "T-{rng.randint(100000, 999999)}", "status": "open"}}',
    )


_AGENT_FINALS = {
    "get_order_status": "Your order {oid} is on its way; the carrier shows it {status}.",
    "get_weather": "The forecast for {city} may cause a short delay, but your order {oid} is on its way.",
    "search_orders": "I found your {product} order {oid}.",
    "lookup_account": "Your account {email} is verified.",
    "create_ticket": "I opened a ticket for your damaged order {oid}; our team will contact you within 24 hours.",
}


def _route_agent(tb: _Tb, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    template, plan = rng.choice(C.AGENT_SCENARIOS)
    slots = {
        "oid": f"A{rng.randint(100000, 999999)}",
        "city": rng.choice(C.CITIES),
        "product": rng.choice(C.PRODUCTS),
        "email": f"{tb.user_id.replace('user_', 'u')}@example.com",
    }
    question = template.format(**slots)
    root["input"] = question
    m = MODELS["gpt-4o"]
    agent = tb.span(
        root,
        "invoke_agent support_agent",
        "agent",
        t,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support_agent"},
    )
    agent["input"] = question
    cost_incident = fx.cost.get("agent_tools") if fx.cost else None
    growth = rng.uniform(3.0, 5.0) if cost_incident else 1.0
    context = 1800 + 12 + len(question) // 4 + min(turn, 6) * 90
    loop_incident = None
    calls: list[str] = list(plan)
    if fx.loop and rng.random() < TOOL_LOOP_SHARE:
        loop_incident, loop_tool = fx.loop
        tool = loop_tool or plan[0]
        calls = [tool] * rng.randint(6, 14)
    t += _gap(rng)
    last_args: dict[str, tuple[str, str]] = {}
    try:
        for i, tool in enumerate(calls):
            if i >= MAX_AGENT_ITERATIONS:
                end = t + _gap(rng)
                f = _Failure(MAX_ITERATIONS, MAX_ITERATIONS.message.format(n=MAX_AGENT_ITERATIONS), end)
                tb.tag(agent, loop_incident)
                raise f
            args, result = last_args.get(tool) or _tool_args(rng, tool, slots)
            if loop_incident:
                last_args[tool] = (args, result)  # the loop repeats the very same call
            out_tokens = max(18, int(45 * math.exp(rng.gauss(0.0, 0.3))))
            t = _chat(
                tb,
                agent,
                t,
                m,
                ("support_agent", "7"),
                int(context * growth),
                (context // 128) * 128 if i > 0 or rng.random() < 0.5 else 0,
                out_tokens,
                question,
                f'{{"tool_calls": [{{"name": "{tool}", "arguments": {args}}}]}}',
                temperature=0.0,
                max_tokens=1024,
                stream=False,
                finish_reason="tool_calls",
                incident=loop_incident or cost_incident,
            ) + _gap(rng)
            context += out_tokens
            call_id = f"call_{rng.getrandbits(96):024x}"
            row = tb.span(
                agent,
                f"execute_tool {tool}",
                "tool",
                t,
                {
                    "gen_ai.operation.name": "execute_tool",
                    "tool.name": tool,
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": call_id,
                },
            )
            row["input"] = args
            if loop_incident:
                tb.tag(row, loop_incident)
            median, sigma, upstream = C.TOOL_LATENCY[tool]
            end = t + int(tb.lognormal_us(median, sigma) * tb.slow_factor(row, "tool"))
            if rng.random() < P_TOOL_ERROR:
                # the agent sees the error message as the tool result and carries on
                message = TOOL_ERROR.message.format(tool=tool, upstream=upstream)
                tb.fail(row, _Failure(TOOL_ERROR, message, end), end)
                context += 40
            else:
                row["output"] = result
                row["end_time"] = end
                context += 60 + len(result) // 3
            t = end + _gap(rng)
        if loop_incident:
            final = "I'm having trouble retrieving that information right now. Please try again later."
        else:
            final = _AGENT_FINALS[plan[-1]].format(status=rng.choice(C.ORDER_STATUSES).replace("_", " "), **slots)
        t = _chat(
            tb,
            agent,
            t,
            m,
            ("support_agent", "7"),
            int(context * growth),
            (context // 128) * 128 if rng.random() < 0.7 else 0,
            max(20, int(70 * math.exp(rng.gauss(0.0, 0.4)))),
            question,
            final,
            temperature=0.0,
            max_tokens=1024,
            stream=False,
            finish_reason="stop",
            incident=loop_incident or cost_incident,
        )
    except _Failure as f:
        end = f.end_us + _gap(rng)
        tb.fail(agent, f, end)
        f.end_us = end
        raise
    agent["output"] = final
    agent["end_time"] = t + _gap(rng)
    root["output"] = final
    return agent["end_time"]


_ROUTE_FNS = {
    "rag_qa": _route_rag_qa,
    "summarize": _route_summarize,
    "classify": _route_classify,
    "agent_tools": _route_agent,
}
_ROUTE_CUM: list[float] = []
_acc = 0.0
for _r in ROUTES:
    _acc += ROUTE_INFO[_r][2]
    _ROUTE_CUM.append(_acc)


def _root_http_status(f: _Failure) -> int:
    status = f.shape.http_status
    if status in (400, 429):
        return status
    if f.shape.error_type.endswith(("TimeoutError", "ReadTimeout")):
        return 504
    if status is not None:
        return 502
    return 500


def _build_trace(
    rng: random.Random,
    fx: _Effects,
    t0: int,
    route: str,
    user_id: str,
    session_id: str,
    turn: int,
    datetimes: bool,
) -> list[dict]:
    tb = _Tb(rng, fx, route, user_id, session_id)
    root_name, http_route, _ = ROUTE_INFO[route]
    root_attrs = {"http.request.method": "POST", "http.route": http_route}
    root = tb.span(None, root_name, "chain", t0, root_attrs)
    t = t0 + 300 + int(rng.random() * 2000)  # request parsing, auth
    try:
        t = _ROUTE_FNS[route](tb, root, t, turn)
        root_attrs["http.response.status_code"] = 200
        root["end_time"] = t + _gap(rng)
    except _Failure as f:
        root_attrs["http.response.status_code"] = _root_http_status(f)
        tb.fail(root, f, f.end_us + _gap(rng))
    return tb.finish(datetimes)


# =====================================================================================================
# traffic
# =====================================================================================================


class _Users:
    """A Zipf-Mandelbrot population (a few heavy users dominate) with 30-minute idle sessions."""

    def __init__(self, seed: int):
        prng = random.Random(f"synth-users-{seed}")
        self.ids = [f"user_{prng.getrandbits(40):010x}" for _ in range(N_USERS)]
        cum, acc = [], 0.0
        for k in range(1, N_USERS + 1):
            acc += 1.0 / (k + ZIPF_Q) ** ZIPF_S
            cum.append(acc)
        self.cum = cum
        self.total = acc
        # user index -> [session id, last request us, turns so far, session start us]
        self.sessions: dict[int, list] = {}

    def pick(self, rng: random.Random, t_us: int) -> tuple[str, str, int]:
        i = bisect(self.cum, rng.random() * self.total)
        if i >= N_USERS:
            i = N_USERS - 1
        s = self.sessions.get(i)
        if s is None or t_us - s[1] > SESSION_IDLE_S * _US or t_us - s[3] > SESSION_MAX_S * _US:
            b = rng.getrandbits(128)
            s = [str(uuid.UUID(int=b, version=4)), t_us, 0, t_us]
            self.sessions[i] = s
        else:
            s[1] = t_us
            s[2] += 1
        return self.ids[i], s[0], s[2]


def generate_traces(
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident] = (),
) -> Iterator[list[dict]]:
    """Yield traces (lists of `spans` contract rows) in start-time order over ``[start, start + hours)``.

    ``rate`` is the mean number of traces per second; arrivals are Poisson with a diurnal rate
    ``rate * diurnal_factor(t)`` (peak at 15:00 UTC, trough at 03:00 UTC). Same arguments -> same rows.
    """
    return _generate(start, hours, rate, seed, incidents, datetimes=True)


def _generate(
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident],
    datetimes: bool,
) -> Iterator[list[dict]]:
    active = [_ActiveIncident(i) for i in incidents]
    trace_rng = random.Random()
    for trace_seed, t_us, route, user_id, session_id, turn in _arrivals(start, hours, rate, seed):
        trace_rng.seed(trace_seed)
        fx = _effects_at(active, t_us) if active else _NO_EFFECTS
        yield _build_trace(trace_rng, fx, t_us, route, user_id, session_id, turn, datetimes)


# (trace_seed, start us, route, user_id, session_id, turn): all a trace needs from the master stream
Arrival = tuple[int, int, str, str, str, int]


def _arrivals(start: datetime, hours: float, rate: float, seed: int) -> Iterator[Arrival]:
    """The master stream, in start-time order: cheap, sequential, and independent of incidents."""
    if rate < 0 or hours < 0:
        raise ValueError("rate and hours must be >= 0")
    if rate == 0 or hours == 0:
        return
    t0 = _to_us(start)
    t_end = t0 + int(hours * 3600 * _US)
    master = random.Random(seed)
    users = _Users(seed)
    lam_max = rate * (1.0 + DIURNAL_AMPLITUDE)
    t_s = t0 / _US
    end_s = t_end / _US
    expo, rnd, bits = master.expovariate, master.random, master.getrandbits
    routes = ROUTES
    cum = _ROUTE_CUM
    amp, peak = DIURNAL_AMPLITUDE, DIURNAL_PEAK_HOUR_UTC
    two_pi_24 = 2 * math.pi / 24.0
    cos = math.cos
    pick = users.pick
    while True:
        t_s += expo(lam_max)
        if t_s >= end_s:
            return
        # thinning: accept with probability rate(t) / lam_max
        hour = (t_s % 86400) / 3600.0
        accept = rnd() * (1.0 + amp) < 1.0 + amp * cos(two_pi_24 * (hour - peak))
        trace_seed = bits(64)
        if not accept:
            continue
        t_us = int(t_s * _US)
        route = routes[bisect(cum, rnd() * cum[-1])]
        user_id, session_id, turn = pick(master, t_us)
        yield trace_seed, t_us, route, user_id, session_id, turn


# =====================================================================================================
# the OTLP/JSON writer
# =====================================================================================================

BATCH_TRACES = 1000  # traces per worker task (~7 MB of output)
PARALLEL_MIN_TRACES = 4 * BATCH_TRACES  # expected traces below this: in-process (forking does not pay)


def _encode_batch(active: list[_ActiveIncident], batch: list[Arrival]) -> tuple[bytes, int]:
    """The OTLP/JSON lines (each ending in a newline) of a batch of arrivals, and their span count.

    The one code path for the serial and the parallel writer, so both write the same bytes.
    """
    rng = random.Random()
    lines: list[bytes] = []
    n_spans = 0
    for trace_seed, t_us, route, user_id, session_id, turn in batch:
        rng.seed(trace_seed)
        fx = _effects_at(active, t_us) if active else _NO_EFFECTS
        rows = _build_trace(rng, fx, t_us, route, user_id, session_id, turn, False)
        n_spans += len(rows)
        lines.append(encode_trace(rows))
    lines.append(b"")
    return b"\n".join(lines), n_spans


SLOT_BYTES = 32 * 2**20  # a batch's output travels through shared memory when it fits (it almost always does)
_worker_active: list[_ActiveIncident] = []
_worker_slots: mmap.mmap | None = None


def _worker_init(active: list[_ActiveIncident], slots: mmap.mmap) -> None:
    global _worker_active, _worker_slots
    reset_worker_signals()
    # the parent's heap came along with the fork: keep full collections from traversing it again and again
    gc.freeze()
    _worker_active, _worker_slots = active, slots


def _worker_encode(task: tuple[int, list[Arrival]]) -> tuple[int, int, bytes | None]:
    """(bytes written to the task's slot, spans, the bytes themselves only when they did not fit)."""
    slot, batch = task
    data, n_spans = _encode_batch(_worker_active, batch)
    if len(data) > SLOT_BYTES:
        return len(data), n_spans, data
    start = slot * SLOT_BYTES
    _worker_slots[start : start + len(data)] = data  # saves pickling and piping ~all of the output
    return len(data), n_spans, None


def _batches(arrivals: Iterator[Arrival], size: int) -> Iterator[list[Arrival]]:
    while batch := list(islice(arrivals, size)):
        yield batch


def write_otlp_jsonl(
    path: str | Path,
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident] = (),
    workers: int | None = None,
) -> GenerateSummary:
    """Write one OTLP/JSON ExportTraceServiceRequest per line (one trace per line).

    ``workers`` processes (default: the CPU count; 1 = in-process) build and encode batches of traces
    while this process runs the master stream and writes the batches in order; the bytes are the same for
    any number of workers. Small outputs, or a caller with threads running (fork is unsafe), stay in-process.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    active = [_ActiveIncident(i) for i in incidents]
    arrivals = _arrivals(start, hours, rate, seed)
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    ctx = fork_context() if workers > 1 and rate * hours * 3600 >= PARALLEL_MIN_TRACES else None
    n_traces = n_spans = 0
    with path.open("wb") as fh:
        if ctx is None:
            workers = 1
            for batch in _batches(arrivals, 512):
                data, spans = _encode_batch(active, batch)
                fh.write(data)
                n_traces += len(batch)
                n_spans += spans
        else:
            in_flight = 2 * workers
            # ordered_map hands a result over only after submitting the next task, so the slot of the
            # result being written must differ from those of the tasks in flight: one slot more than them
            n_slots = in_flight + 1
            tasks = ((k % n_slots, batch) for k, batch in enumerate(_batches(arrivals, BATCH_TRACES)))
            with mmap.mmap(-1, n_slots * SLOT_BYTES) as slots, memoryview(slots) as view, ctx.Pool(
                workers, initializer=_worker_init, initargs=(active, slots)
            ) as pool:
                for (slot, batch), (size, spans, data) in ordered_map(pool, _worker_encode, tasks, in_flight):
                    fh.write(view[slot * SLOT_BYTES : slot * SLOT_BYTES + size] if data is None else data)
                    n_traces += len(batch)
                    n_spans += spans
    return GenerateSummary(traces=n_traces, spans=n_spans, path=path, workers=workers)
