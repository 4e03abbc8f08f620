from datetime import datetime, timedelta

import pytest

from obs_pipelines.synth.generator import INCIDENT_NAMES, Incident, parse_incident


def test_parse_incident_reads_name_start_and_duration():
    inc = parse_incident("latency_spike@2026-11-02T10:00+2h")
    assert inc == Incident("latency_spike", datetime(2026, 11, 2, 10), timedelta(hours=2))
    assert inc.end == datetime(2026, 11, 2, 12)
    assert inc.effective_target == "retrieval"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)), ("1h30m", timedelta(minutes=90)), ("90s", timedelta(seconds=90))],
)
def test_parse_incident_accepts_duration_units(text, expected):
    assert parse_incident(f"tool_loop@2026-11-02T10:00+{text}").duration == expected


def test_parse_incident_converts_an_offset_start_to_naive_utc():
    inc = parse_incident("cost_overrun@2026-11-02T11:00+01:00+30m")
    assert inc.start == datetime(2026, 11, 2, 10) and inc.start.tzinfo is None


def test_parse_incident_reads_an_optional_target():
    inc = parse_incident("provider_outage:anthropic@2026-11-02T10:00+45m")
    assert inc.target == "anthropic" and inc.effective_target == "anthropic"


def test_unknown_incident_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown incident 'meteor_strike'") as exc:
        parse_incident("meteor_strike@2026-11-02T10:00+1h")
    assert all(name in str(exc.value) for name in INCIDENT_NAMES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency_spike", "missing '@'"),
        ("latency_spike@2026-11-02T10:00", "missing '\\+DURATION'"),
        ("latency_spike@yesterday+1h", "invalid incident start 'yesterday'"),
        ("latency_spike@2026-11-02T10:00+2 hours", "invalid duration"),
        ("latency_spike@2026-11-02T10:00+0m", "must be positive"),
        ("provider_outage:azure@2026-11-02T10:00+1h", "unknown target 'azure'.*openai"),
    ],
)
def test_malformed_incident_text_gets_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_incident(text)


def test_incident_constructed_directly_is_validated():
    with pytest.raises(ValueError, match="valid incidents"):
        Incident("nope", datetime(2026, 11, 2), timedelta(hours=1))
    with pytest.raises(ValueError, match="positive"):
        Incident("tool_loop", datetime(2026, 11, 2), timedelta(0))


def test_incident_text_round_trips():
    inc = parse_incident("rate_limit_storm:google@2026-11-02T10:00+90m")
    assert parse_incident(str(inc)) == inc
