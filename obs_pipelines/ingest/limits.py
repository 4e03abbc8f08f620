"""Limits that keep a hostile input file from crashing, hanging or exhausting ingest.

Each breach is a row in `ingest_rejects` whose reason names the limit; the rest of the file (and every
other file of the run) still lands. `Settings.ingest_limits` (YAML key `ingest_limits`) holds them.
No imports from the rest of the package: settings.py imports this module.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import ConfigDict

# orjson refuses documents nested deeper than this (JSONDecodeError "Recursion limit reached")
ORJSON_MAX_DEPTH = 1024
MIB = 2**20


@dataclass(frozen=True)
class IngestLimits:
    # one JSON line, one JSON value of a .json file, one protobuf message read whole
    max_line_bytes: int = 64 * MIB
    # JSON nesting; 1024 is orjson's own limit (free), a lower value is checked on every record (slower)
    max_json_depth: int = ORJSON_MAX_DEPTH
    # decompressed bytes of one gzip file
    max_decompressed_bytes: int = 16 * 2**30
    # decompressed / compressed bytes of a gzip file, checked once past ratio_min_bytes (OTLP/JSON: ~10-30)
    max_compression_ratio: float = 200.0
    ratio_min_bytes: int = 16 * MIB
    # raw payload kept in a reject row; longer ones keep this head plus their size and sha256
    max_reject_payload_bytes: int = 64 * 1024
    # database connection errors (server restart, network blip): attempts and first backoff delay
    db_retry_attempts: int = 6
    db_retry_delay_s: float = 0.5

    # unknown YAML keys are errors, not silently ignored
    __pydantic_config__ = ConfigDict(extra="forbid")

    def __post_init__(self) -> None:
        if not 1 <= self.max_json_depth <= ORJSON_MAX_DEPTH:
            raise ValueError(f"max_json_depth must be within 1..{ORJSON_MAX_DEPTH} (orjson's limit)")
        for name in ("max_line_bytes", "max_decompressed_bytes", "max_reject_payload_bytes", "db_retry_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_compression_ratio <= 1:
            raise ValueError("max_compression_ratio must be above 1")


DEFAULT_LIMITS = IngestLimits()


@contextmanager
def json_recursion_room(levels: int = ORJSON_MAX_DEPTH) -> Iterator[None]:
    """Python's recursion limit (1000 by default) raised so the stdlib's recursive JSON code can go
    `levels` deep from here: the depth limit is then max_json_depth (up to orjson's 1024), not Python's,
    and a reject names that limit. Restored on exit."""
    old = sys.getrecursionlimit()
    frame, here = inspect.currentframe(), 0
    while frame is not None:
        frame, here = frame.f_back, here + 1
    # two interpreter calls per JSON level (value -> container) and some room for the caller's frames
    sys.setrecursionlimit(max(old, here + 2 * levels + 200))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


__all__ = ["DEFAULT_LIMITS", "IngestLimits", "ORJSON_MAX_DEPTH", "json_recursion_room"]
