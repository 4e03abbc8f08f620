"""What a scorer is: a small object with a name, a version, the fields it needs and one documented formula,
returning a `Score` in [0, 1] (or null with the reason it does not apply) — the shape autoevals uses.

Scorers never import dagster and never reach the network; the online phase runs them over production
traces and the offline phase over regression cases, through the same `Example`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

# the fields an example may carry; a scorer lists the ones it needs in `requires`
FIELDS = ("input", "output", "expected", "context", "tool_calls", "metadata")


@dataclass(frozen=True)
class Example:
    """One response to score: the request's input, the model's output, the expected output when known, the
    retrieved context documents, the agent's tool calls (name, arguments, status) and free metadata."""

    input: str | None = None
    output: str | None = None
    expected: Any = None
    context: Sequence[str] = ()
    tool_calls: Sequence[Mapping[str, Any]] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A scorer's verdict: ``value`` in [0, 1] (1 = best), or None with ``reason`` when it does not apply."""

    name: str
    value: float | None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is not None and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"score {self.name}: {self.value} is outside [0, 1]")

    @classmethod
    def trusted(cls, name: str, value: float) -> "Score":
        """A score whose value the caller knows is a float in [0, 1], made without the frozen dataclass's
        per-field setattr and range check: the hot path of the reference scorers, called by the million in a
        backfill (the same object as ``Score(name, value)``)."""
        score = object.__new__(cls)
        score.__dict__.update(name=name, value=value, reason=None, details={})
        return score


class Scorer:
    """Base of every scorer: subclasses set ``name``, ``version``, ``requires`` and implement ``score``.

    Calling a scorer checks its required fields first: a missing field gives a null score with the reason,
    never an exception, so one odd trace cannot stop a batch.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    requires: ClassVar[tuple[str, ...]] = ("output",)
    description: ClassVar[str] = ""
    # the scorer's options and their defaults; an instance takes any of them as keyword arguments
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ValueError(f"scorer {self.name}: unknown options {unknown}; valid: {sorted(self.defaults)}")
        self.config: dict[str, Any] = {**self.defaults, **config}

    @property
    def fingerprint(self) -> str:
        """What a stored score was computed with: the code ``version`` plus a hash of the options, so a
        changed option or a new version invalidates exactly this scorer's scores."""
        if not self.config:
            return str(self.version)
        blob = json.dumps(self.config, sort_keys=True, default=str).encode()
        return f"{self.version}-{hashlib.sha1(blob).hexdigest()[:8]}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.fingerprint})"

    def __call__(self, example: Example) -> Score:
        for name in self.requires:
            if getattr(example, name) is None:  # an empty context is data (the empty-retrieval scorer)
                return Score(self.name, None, reason=f"no {name}")
        return self.score(example)

    # the reference scorers' common case (output and expected both given), without the loop above: they are
    # called by the million in backfills and must stay as fast as autoevals
    def _call_output_expected(self, example: Example) -> Score:
        if example.output is None or example.expected is None:
            return Score(self.name, None, reason="no output" if example.output is None else "no expected")
        return self.score(example)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__call__ is Scorer.__call__ and tuple(cls.requires) == ("output", "expected"):
            cls.__call__ = Scorer._call_output_expected

    def score(self, example: Example) -> Score:  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self, value: float | None, reason: str | None = None, **details: Any) -> Score:
        """A Score named after this scorer (values clamped into [0, 1] against float noise)."""
        if value is not None:
            value = float(value)
            if not 0.0 <= value <= 1.0:
                value = min(1.0, max(0.0, value))
        return Score(self.name, value, reason, details)
