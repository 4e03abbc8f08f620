"""Generated production traffic for the online evals tests, straight into the store (no OTLP round trip)."""

from __future__ import annotations

from datetime import datetime

from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces
from obs_pipelines.synth.incidents import parse_incident


def load_traffic(engine, start: datetime, hours: float, rate: float = 0.02, seed: int = 7,
                 incidents: tuple[str, ...] = ()) -> int:
    """Insert generated traces of [start, start + hours) into the store; the number of traces."""
    db.create_tables(engine)
    traces = list(generate_traces(start, hours, rate, seed, [parse_incident(i) for i in incidents]))
    db.insert_spans(engine, [row for trace in traces for row in trace])
    return len(traces)
