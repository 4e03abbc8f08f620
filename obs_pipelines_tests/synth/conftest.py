"""Shared generated data for the synth tests: generated once per session, so the suite stays fast."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from obs_pipelines.synth.generator import Incident, generate_traces

DAY = datetime(2026, 11, 2)
# 10 daytime hours; one incident per odd hour, quiet even hours in between as controls
INCIDENT_RUN_START = DAY + timedelta(hours=8)
INCIDENT_RUN_HOURS = 16
INCIDENT_RATE = 0.1
INCIDENT_SEED = 11
INCIDENT_WINDOWS: dict[str, tuple[datetime, datetime]] = {
    name: (INCIDENT_RUN_START + timedelta(hours=h), INCIDENT_RUN_START + timedelta(hours=h + 1))
    for name, h in (
        ("latency_spike", 1),
        ("provider_outage", 3),
        ("rate_limit_storm", 5),
        ("cost_overrun", 7),
        ("prompt_regression", 9),
        ("retrieval_miss", 11),
        ("tool_loop", 13),
    )
}
# the drift needs room to drift: 2 hours at the end
INCIDENT_WINDOWS["silent_quality_drift"] = (INCIDENT_RUN_START + timedelta(hours=14), INCIDENT_RUN_START + timedelta(hours=16))


def incidents_plan() -> list[Incident]:
    return [Incident(name, start, end - start) for name, (start, end) in INCIDENT_WINDOWS.items()]


def _collect(traces: Iterator[list[dict]]) -> list[list[dict]]:
    # keeping ~100k dicts alive makes the cyclic GC rescan them over and over; they hold no cycles
    gc.disable()
    try:
        return list(traces)
    finally:
        gc.enable()


@pytest.fixture(scope="session")
def incident_traces() -> list[list[dict]]:
    return _collect(generate_traces(INCIDENT_RUN_START, INCIDENT_RUN_HOURS, INCIDENT_RATE, INCIDENT_SEED, incidents_plan()))


@pytest.fixture(scope="session")
def quiet_traces() -> list[list[dict]]:
    """The same run without incidents."""
    return _collect(generate_traces(INCIDENT_RUN_START, INCIDENT_RUN_HOURS, INCIDENT_RATE, INCIDENT_SEED))


@pytest.fixture(scope="session")
def day_traces() -> list[list[dict]]:
    """A full UTC day of normal traffic."""
    return _collect(generate_traces(DAY, 24, 0.05, 3))


def in_window(traces: list[list[dict]], start: datetime, end: datetime) -> list[list[dict]]:
    return [t for t in traces if start <= t[0]["start_time"] < end]


def window_and_control(traces: list[list[dict]], name: str) -> tuple[list[list[dict]], list[list[dict]]]:
    """Traces of an incident's window, and of the quiet hour before it."""
    start, end = INCIDENT_WINDOWS[name]
    return in_window(traces, start, end), in_window(traces, start - timedelta(hours=1), start)
