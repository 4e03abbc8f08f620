"""One trace under construction: its span rows, the incident effects active when it starts, the failures
that travel up its call stack, and the background rates of errors and odd inputs."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import cast

from obs_pipelines.synth import content as C
from obs_pipelines.synth.catalog import (
    MODELS,
    SERVICE_NAME,
    ErrorShape,
)
from obs_pipelines.synth.incidents import Incident

EPOCH = datetime(1970, 1, 1)
US_PER_S = 1_000_000

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


# =====================================================================================================
# per-trace incident effects
# =====================================================================================================


class Effects:
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


NO_EFFECTS = Effects()


class ActiveIncident:
    __slots__ = ("inc", "start_us", "end_us")

    def __init__(self, inc: Incident) -> None:
        self.inc = inc
        self.start_us = to_us(inc.start)
        self.end_us = to_us(inc.end)


def effects_at(active: list[ActiveIncident], t_us: int) -> Effects:
    fx = None
    for a in active:
        if not (a.start_us <= t_us < a.end_us):
            continue
        if fx is None:
            fx = Effects()
            fx.any = True
        inc = a.inc
        name, target = inc.name, inc.effective_target
        key = cast(str, target)  # only tool_loop may have no target; the keyed effects below always have one
        if name == "latency_spike":
            fx.slow[REQUEST_MODEL.get(key, key)] = name
        elif name == "provider_outage":
            fx.outage[key] = name
        elif name == "rate_limit_storm":
            fx.storm[key] = name
        elif name == "cost_overrun":
            fx.cost[key] = name
        elif name == "prompt_regression":
            fx.regression = name
        elif name == "retrieval_miss":
            fx.miss = name
        elif name == "tool_loop":
            fx.loop = (name, target)
        elif name == "silent_quality_drift":
            fx.drift = (name, (t_us - a.start_us) / (a.end_us - a.start_us))
    return fx or NO_EFFECTS


# =====================================================================================================
# trace building
# =====================================================================================================


def to_us(dt: datetime) -> int:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return (dt - EPOCH) // timedelta(microseconds=1)


class Failure(Exception):
    """An exception travelling up the app's call stack (each span it leaves records it)."""

    def __init__(self, shape: ErrorShape, message: str, end_us: int, retryable: str | None = None):
        super().__init__(message)
        self.shape = shape
        self.message = message
        self.end_us = end_us
        self.retryable = retryable  # "rate_limit" / "server" for the retry loop


class TraceBuilder:
    """Builds one trace: rows in creation order, times as int microseconds until ``finish``."""

    __slots__ = ("rng", "fx", "trace_id", "route", "user_id", "session_id", "rows", "tagged", "template")

    def __init__(self, rng: random.Random, fx: Effects, route: str, user_id: str, session_id: str):
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
        return int(median_s * math.exp(self.rng.gauss(0.0, sigma)) * US_PER_S)

    @staticmethod
    def fail(row: dict, f: Failure, end_us: int) -> None:
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
        epoch, td = EPOCH, timedelta
        for r in rows:
            r["start_time"] = epoch + td(0, 0, r["start_time"])
            r["end_time"] = epoch + td(0, 0, r["end_time"])
        return rows


DOC_TOKENS = {d.id: d.tokens for d in C.DOCS}
REQUEST_MODEL = {m.response_model: m.name for m in MODELS.values()}


def gap(rng: random.Random) -> int:
    """In-process time between two steps (microseconds)."""
    return 200 + int(rng.random() * 1500)
