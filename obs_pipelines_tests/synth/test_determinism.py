from datetime import datetime

from obs_pipelines.synth.generator import generate_traces, write_otlp_jsonl

from .conftest import INCIDENT_WINDOWS

START = datetime(2026, 11, 2, 12)


def test_same_seed_writes_identical_bytes(tmp_path):
    a = write_otlp_jsonl(tmp_path / "a.jsonl", START, 0.25, 0.5, seed=42)
    b = write_otlp_jsonl(tmp_path / "b.jsonl", START, 0.25, 0.5, seed=42)
    assert a.spans > 0
    assert a.path.read_bytes() == b.path.read_bytes()


def test_different_seed_writes_different_traces(tmp_path):
    a = write_otlp_jsonl(tmp_path / "a.jsonl", START, 0.25, 0.5, seed=1)
    b = write_otlp_jsonl(tmp_path / "b.jsonl", START, 0.25, 0.5, seed=2)
    assert a.path.read_bytes() != b.path.read_bytes()


def test_same_seed_yields_equal_rows():
    assert list(generate_traces(START, 0.2, 0.5, seed=7)) == list(generate_traces(START, 0.2, 0.5, seed=7))


def test_incidents_change_only_traces_starting_in_their_windows(incident_traces, quiet_traces):
    def in_any_window(trace):
        t = trace[0]["start_time"]
        return any(start <= t < end for start, end in INCIDENT_WINDOWS.values())

    # arrivals, routes and users do not depend on incidents: the same traces start at the same times
    assert [t[0]["start_time"] for t in incident_traces] == [t[0]["start_time"] for t in quiet_traces]
    outside = [(a, b) for a, b in zip(incident_traces, quiet_traces, strict=True) if not in_any_window(a)]
    inside = [(a, b) for a, b in zip(incident_traces, quiet_traces, strict=True) if in_any_window(a)]
    assert outside and inside
    assert all(a == b for a, b in outside)
    assert sum(a != b for a, b in inside) > len(inside) // 2
