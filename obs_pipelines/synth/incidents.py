"""Injectable incidents: what can go wrong in the synthetic app, when, and (optionally) where.

Text form: ``NAME[:TARGET]@START+DURATION``, e.g. ``latency_spike@2026-11-02T10:00+2h`` or
``provider_outage:anthropic@2026-11-02T10:00+45m``. START is ISO 8601 (UTC if no offset is given);
DURATION is one or more ``<number><s|m|h|d>`` parts (``30m``, ``2h``, ``1d``, ``1h30m``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from obs_pipelines.synth.catalog import MODELS, PROVIDERS, ROUTES, STEP_KINDS
from obs_pipelines.synth.content import TOOL_NAMES

INCIDENT_DESCRIPTIONS: dict[str, str] = {
    "latency_spike": "one step gets 5-10x slower (default: retrieval; target: a step kind or a model)",
    "provider_outage": "one provider's calls fail with 5xx/503 and timeouts (default: openai)",
    "rate_limit_storm": "429s from one provider (default: openai)",
    "cost_overrun": "prompt growth on one route: input tokens x3-5 (default: rag_qa)",
    "prompt_regression": "new rag_answer prompt version with worse, ungrounded answers",
    "retrieval_miss": "empty or irrelevant retrieved documents with low scores; answers ungrounded",
    "tool_loop": "the agent repeats the same tool call many times (target: a tool name)",
    "silent_quality_drift": "rag_qa answers slowly get less grounded and more hedging; no errors, same latency",
}
INCIDENT_NAMES: tuple[str, ...] = tuple(INCIDENT_DESCRIPTIONS)

DEFAULT_TARGETS: dict[str, str | None] = {
    "latency_spike": "retrieval",
    "provider_outage": "openai",
    "rate_limit_storm": "openai",
    "cost_overrun": "rag_qa",
    "prompt_regression": "rag_qa",
    "retrieval_miss": "rag_qa",
    "tool_loop": None,  # whichever tool the agent calls first
    "silent_quality_drift": "rag_qa",
}


def _valid_targets(name: str) -> tuple[str, ...]:
    if name == "latency_spike":
        return STEP_KINDS + tuple(MODELS) + tuple(m.response_model for m in MODELS.values())
    if name in ("provider_outage", "rate_limit_storm"):
        return PROVIDERS
    if name == "cost_overrun":
        return ROUTES
    if name == "tool_loop":
        return TOOL_NAMES
    return ("rag_qa",)


@dataclass(frozen=True)
class Incident:
    """An incident active on traces starting in ``[start, start + duration)``; ``start`` is naive UTC."""

    name: str
    start: datetime
    duration: timedelta
    target: str | None = field(default=None)

    def __post_init__(self) -> None:
        if self.name not in INCIDENT_DESCRIPTIONS:
            raise ValueError(f"unknown incident {self.name!r}; valid incidents: {', '.join(INCIDENT_NAMES)}")
        if self.start.tzinfo is not None:
            object.__setattr__(self, "start", self.start.astimezone(timezone.utc).replace(tzinfo=None))
        if self.duration <= timedelta(0):
            raise ValueError(f"incident {self.name}: duration must be positive, got {self.duration}")
        if self.target is not None and self.target not in _valid_targets(self.name):
            raise ValueError(
                f"incident {self.name}: unknown target {self.target!r}; valid targets: "
                f"{', '.join(_valid_targets(self.name))}"
            )

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    @property
    def effective_target(self) -> str | None:
        return self.target if self.target is not None else DEFAULT_TARGETS[self.name]

    def __str__(self) -> str:
        target = f":{self.target}" if self.target else ""
        return f"{self.name}{target}@{self.start.isoformat(timespec='minutes')}+{_format_duration(self.duration)}"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FORMAT_HINT = "expected NAME[:TARGET]@START+DURATION, e.g. latency_spike@2026-11-02T10:00+2h"


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m``, ``90s``, ``1.5h`` -> timedelta."""
    s = text.strip().lower()
    if not s or _DURATION_PART.sub("", s) != "":
        raise ValueError(f"invalid duration {text!r}: use <number><s|m|h|d> parts, e.g. 30m, 2h, 1d, 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(s))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be positive")
    return timedelta(seconds=seconds)


def _format_duration(d: timedelta) -> str:
    secs = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def parse_incident(text: str) -> Incident:
    """Parse ``NAME[:TARGET]@START+DURATION``; raises ValueError with a readable reason."""
    raw = text.strip()
    if "@" not in raw:
        raise ValueError(f"invalid incident {text!r}: missing '@'; {_FORMAT_HINT}")
    head, _, when = raw.partition("@")
    name, _, target = head.partition(":")
    name = name.strip()
    if name not in INCIDENT_DESCRIPTIONS:
        raise ValueError(f"unknown incident {name!r} in {text!r}; valid incidents: {', '.join(INCIDENT_NAMES)}")
    # the start may itself contain '+' (a UTC offset), so the duration is after the last '+'
    start_text, plus, duration_text = when.rpartition("+")
    if not plus or not start_text:
        raise ValueError(f"invalid incident {text!r}: missing '+DURATION'; {_FORMAT_HINT}")
    try:
        start = datetime.fromisoformat(start_text.strip())
    except ValueError:
        raise ValueError(
            f"invalid incident start {start_text!r} in {text!r}: use ISO 8601, e.g. 2026-11-02T10:00"
        ) from None
    duration = parse_duration(duration_text)
    return Incident(name=name, start=start, duration=duration, target=target.strip() or None)
