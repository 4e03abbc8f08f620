"""The demo's story: each incident's figure next to the clean baseline, from the hourly rollups."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pandas as pd

from obs_pipelines.demo_story import HourlyRollups, slo_summary, story, touched_hours
from obs_pipelines.monitoring import rollups
from obs_pipelines.pricing import load_prices
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces, parse_incident

H0 = datetime(2026, 11, 2, 10, 0)
HOUR = timedelta(hours=1)


def hour(i: int) -> datetime:
    return H0 + i * HOUR


def row(i: int, dimension: str, value: str | None = None, **columns) -> dict:
    return {"window_start": hour(i), "window_end": hour(i + 1), "dimension": dimension, "dimension_value": value,
            **columns}


def handmade(outage: int, spike: int, loop: int, hours: int) -> HourlyRollups:
    """Flat figures in every hour, and each incident's own figure in its hour."""
    request, step, error = [], [], []
    for i in range(hours):
        request += [
            row(i, "route", "rag_qa", request_count=100, latency_p95_ms=8000.0 if i == spike else 5000.0),
            row(i, "route", "agent_tools", request_count=10, latency_p95_ms=6000.0),
            row(i, "prompt_version", "rag_answer@4", request_count=100, latency_p50_ms=2000.0),
        ]
        step += [
            row(i, "span_kind", span_kind="retrieval", span_count=100,
                latency_p95_ms=2000.0 if i == spike else 300.0),
            row(i, "span_kind", span_kind="tool", span_count=70 if i == loop else 15, latency_p95_ms=500.0),
        ]
        error += [row(i, "provider", "openai", error_count=90 if i == outage else 1, span_count=100)]
    usage = pd.DataFrame(columns=["window_start", "dimension", "dimension_value", "cost_usd"])
    return HourlyRollups(pd.DataFrame(request), pd.DataFrame(step), pd.DataFrame(error), usage)


def test_each_incident_is_told_with_its_figure_against_the_hours_no_incident_touched():
    incidents = [parse_incident(f"provider_outage@{hour(2):%Y-%m-%dT%H:%M}+1h"),
                 parse_incident(f"latency_spike@{hour(3):%Y-%m-%dT%H:%M}+30m"),
                 parse_incident(f"tool_loop@{hour(4):%Y-%m-%dT%H:%M}+1h"),
                 parse_incident(f"silent_quality_drift@{hour(5):%Y-%m-%dT%H:%M}+1h")]
    lines = story(incidents, handmade(outage=2, spike=3, loop=4, hours=7))
    assert lines == [
        "provider_outage openai 11-02 12:00-13:00: error rate of openai calls 90% vs 1.0%",
        "latency_spike retrieval 11-02 13:00-13:30: retrieval step p95 2,000 ms vs 300 ms; "
        "route rag_qa p95 8,000 ms vs 5,000 ms",
        "tool_loop 11-02 14:00-15:00: 7.0 tool calls per agent_tools request vs 1.5",
        "silent_quality_drift rag_qa 11-02 15:00-16:00: invisible to monitoring by design (no errors, same "
        "latency, same cost); it is for the eval phases",
    ]


def test_an_incident_is_counted_in_every_hour_it_touches():
    inc = parse_incident("cost_overrun@2026-11-02T10:30+1h")
    assert touched_hours(inc) == [pd.Timestamp(hour(0)), pd.Timestamp(hour(1))]


def test_story_over_generated_traffic_shows_outage_storm_and_spike_above_their_baseline(store):
    incidents = [parse_incident(f"latency_spike@{hour(1):%Y-%m-%dT%H:%M}+1h"),
                 parse_incident(f"provider_outage:anthropic@{hour(2):%Y-%m-%dT%H:%M}+1h"),
                 parse_incident(f"rate_limit_storm@{hour(3):%Y-%m-%dT%H:%M}+1h")]
    spans = [r for trace in generate_traces(H0, 5, 0.03, 5, incidents) for r in trace]
    db.insert_spans(store.engine, spans)
    frames: dict[str, list[pd.DataFrame]] = {"request": [], "step": [], "error": [], "usage": []}
    for i in range(5):
        for name, frame in rollups.hourly_rollups(store.engine, hour(i), hour(i + 1), load_prices()).items():
            frames[name].append(frame)
    lines = story(incidents, HourlyRollups(**{k: pd.concat(v, ignore_index=True) for k, v in frames.items()}))

    def numbers(line: str) -> list[float]:
        """The figures after the incident's time span (not the 95 of "p95")."""
        return [float(x.replace(",", "")) for x in re.findall(r"(?<![\w.])\d[\d,]*\.?\d*", line.split(": ", 1)[1])]

    spike, outage, storm = lines
    assert spike.startswith("latency_spike retrieval 11-02 11:00-12:00: retrieval step p95 ")
    assert "route rag_qa" in spike
    during, base, route_during, route_base = numbers(spike)
    assert during > 3 * base and route_during > route_base
    assert outage.startswith("provider_outage anthropic 11-02 12:00-13:00: error rate of anthropic calls ")
    during, base = numbers(outage)
    assert during > 50 > 10 > base
    assert storm.startswith("rate_limit_storm openai 11-02 13:00-14:00: ")
    during, base = numbers(storm)
    assert during > 10 * max(base, 1)


def test_slo_summary_counts_judged_hours_and_names_the_broken_ones():
    status = pd.DataFrame([
        {"window_start": hour(i), "slo_name": "overall_error_rate", "metric": "error_rate", "objective": "< 0.10",
         "met": met}
        for i, met in enumerate([True, False, None, True, False])
    ])
    assert slo_summary(status) == [
        "SLO overall_error_rate (error_rate < 0.10): met in 2 of 4 hours; broken at 11-02 11:00, 11-02 14:00"
    ]
