from datetime import datetime, timedelta
from statistics import median

from obs_pipelines.synth.catalog import PROVIDER_ERRORS
from obs_pipelines.synth.generator import Incident, generate_traces

from .conftest import INCIDENT_WINDOWS, window_and_control
from .helpers import grounding


def _rows(traces, **match):
    return [r for t in traces for r in t if all(r[k] == v for k, v in match.items())]


def _secs(r) -> float:
    return (r["end_time"] - r["start_time"]).total_seconds()


def _error_rate(rows) -> float:
    return sum(r["status"] == "error" for r in rows) / len(rows)


def _answers_grounding(traces) -> float:
    """Mean groundedness of rag_qa answers against what retrieval returned."""
    scores = []
    for t in traces:
        if t[0]["route"] != "rag_qa":
            continue
        retrieval = [r for r in t if r["kind"] == "retrieval"]
        llm = [r for r in t if r["kind"] == "llm" and r["status"] == "ok"]
        if retrieval and llm:
            scores.append(grounding(llm[-1]["output"], retrieval[0]["attributes"].get("retrieval.documents", [])))
    return sum(scores) / len(scores)


def test_incident_tags_appear_only_in_their_windows(incident_traces):
    seen = set()
    for t in incident_traces:
        for r in t:
            tag = r["attributes"].get("synth.incident")
            if tag:
                for name in tag.split(","):
                    start, end = INCIDENT_WINDOWS[name]
                    assert start <= t[0]["start_time"] < end
                    seen.add(name)
                assert name in t[0]["attributes"]["synth.incident"]  # the root carries the tag too
    assert seen == set(INCIDENT_WINDOWS)


def test_latency_spike_slows_retrieval_5_to_10x(incident_traces):
    hit, control = window_and_control(incident_traces, "latency_spike")
    slow = median(_secs(r) for r in _rows(hit, kind="retrieval"))
    base = median(_secs(r) for r in _rows(control, kind="retrieval"))
    assert 5 <= slow / base <= 10
    # the other steps keep their latency
    assert 0.7 < median(_secs(r) for r in _rows(hit, kind="llm")) / median(_secs(r) for r in _rows(control, kind="llm")) < 1.3


def test_latency_spike_targeting_a_model_slows_only_that_model():
    start = datetime(2026, 11, 2, 12)
    inc = Incident("latency_spike", start + timedelta(minutes=30), timedelta(minutes=30), target="gpt-4o-mini")
    traces = list(generate_traces(start, 1, 0.3, 5, [inc]))
    before = [t for t in traces if t[0]["start_time"] < inc.start]
    during = [t for t in traces if t[0]["start_time"] >= inc.start]

    def per_token(ts, model):
        return median(_secs(r) / r["output_tokens"] for r in _rows(ts, model=model, status="ok"))

    assert per_token(during, "gpt-4o-mini-2024-07-18") > 4 * per_token(before, "gpt-4o-mini-2024-07-18")
    assert per_token(during, "gpt-4o-2024-08-06") < 1.5 * per_token(before, "gpt-4o-2024-08-06")
    assert 0.7 < median(_secs(r) for r in _rows(during, kind="retrieval")) / median(
        _secs(r) for r in _rows(before, kind="retrieval")
    ) < 1.4


def test_provider_outage_fails_the_providers_calls_with_5xx_and_timeouts(incident_traces):
    hit, control = window_and_control(incident_traces, "provider_outage")
    openai_calls = [r for t in hit for r in t if r["provider"] == "openai"]
    errors = {r["error_type"] for r in openai_calls if r["status"] == "error"}
    assert {"openai.InternalServerError", "openai.APITimeoutError"} <= errors
    assert _error_rate(openai_calls) > 0.5
    assert _error_rate([r for t in control for r in t if r["provider"] == "openai"]) < 0.05
    # other providers are unaffected
    assert _error_rate([r for t in hit for r in t if r["provider"] == "anthropic"]) < 0.1
    timeouts = [r for r in openai_calls if r["error_type"] == "openai.APITimeoutError"]
    assert min(_secs(r) for r in timeouts) >= 10
    assert all(r["attributes"]["http.response.status_code"] == 503 for r in openai_calls if r["error_type"] == "openai.InternalServerError")
    assert _error_rate([t[0] for t in hit if t[0]["route"] == "rag_qa"]) > 0.3


def test_rate_limit_storm_raises_429s_from_the_provider_and_retries(incident_traces):
    hit, control = window_and_control(incident_traces, "rate_limit_storm")
    limited = [
        r
        for t in hit
        for r in t
        if r["error_type"] == PROVIDER_ERRORS["openai"]["rate_limit"].error_type and r["kind"] in ("llm", "embedding")
    ]
    assert limited and all(r["provider"] == "openai" and r["attributes"]["http.response.status_code"] == 429 for r in limited)
    openai_calls = [r for t in hit for r in t if r["provider"] == "openai"]
    assert len(limited) / len(openai_calls) > 0.4
    base = [r for t in control for r in t if r["provider"] == "openai"]
    assert sum(r["error_type"] == "openai.RateLimitError" for r in base) / len(base) < 0.02
    # the app retries: some traces hold a 429 followed by a successful call to the same model
    retried = [t for t in hit if t[0]["status"] == "ok" and any(r["error_type"] == "openai.RateLimitError" for r in t)]
    assert retried


def test_cost_overrun_multiplies_one_routes_input_tokens(incident_traces):
    hit, control = window_and_control(incident_traces, "cost_overrun")

    def tokens(ts, route):
        return median(r["input_tokens"] for r in _rows(ts, kind="llm", route=route, status="ok"))

    assert 3 <= tokens(hit, "rag_qa") / tokens(control, "rag_qa") <= 5
    # the other routes stay put (summarize inputs are long-tailed and few: a wider band)
    assert 0.6 < tokens(hit, "summarize") / tokens(control, "summarize") < 1.6
    assert 0.8 < tokens(hit, "agent_tools") / tokens(control, "agent_tools") < 1.25


def test_prompt_regression_ships_a_new_prompt_version_with_ungrounded_answers(incident_traces):
    hit, control = window_and_control(incident_traces, "prompt_regression")
    versions_hit = {r["prompt_version"] for r in _rows(hit, prompt_name="rag_answer")}
    versions_before = {r["prompt_version"] for r in _rows(control, prompt_name="rag_answer")}
    assert versions_hit == {"5"} and "5" not in versions_before
    assert _answers_grounding(hit) < 0.15 < 0.6 < _answers_grounding(control)
    assert median(r["output_tokens"] for r in _rows(hit, prompt_name="rag_answer", status="ok")) < 60
    assert _error_rate([t[0] for t in hit]) < 0.05  # no errors: only the answers got worse


def test_retrieval_miss_returns_empty_or_low_scoring_documents(incident_traces):
    hit, control = window_and_control(incident_traces, "retrieval_miss")
    docs_hit = [r["attributes"].get("retrieval.documents", []) for r in _rows(hit, kind="retrieval")]
    docs_ctl = [r["attributes"].get("retrieval.documents", []) for r in _rows(control, kind="retrieval")]
    assert any(d == [] for d in docs_hit)
    assert max(d[0]["score"] for d in docs_hit if d) < 0.4 < min(d[0]["score"] for d in docs_ctl)
    assert _answers_grounding(hit) < 0.15 < 0.6 < _answers_grounding(control)


def test_tool_loop_repeats_the_same_tool_call(incident_traces):
    hit, control = window_and_control(incident_traces, "tool_loop")

    def max_repeat(trace):
        calls: dict[tuple, int] = {}
        for r in trace:
            if r["kind"] == "tool":
                key = (r["attributes"]["gen_ai.tool.name"], r["input"])
                calls[key] = calls.get(key, 0) + 1
        return max(calls.values(), default=0)

    agents_hit = [t for t in hit if t[0]["route"] == "agent_tools"]
    looping = [t for t in agents_hit if max_repeat(t) >= 6]
    assert len(looping) > 0.5 * len(agents_hit)
    assert all(max_repeat(t) <= 2 for t in control if t[0]["route"] == "agent_tools")
    # loops that hit the iteration cap fail the request
    assert any(t[0]["error_type"] == "MaxIterationsExceeded" for t in looping)
    # every repeated call still has its own call id
    assert all(
        len({r["attributes"]["gen_ai.tool.call.id"] for r in t if r["kind"] == "tool"}) == sum(r["kind"] == "tool" for r in t)
        for t in looping
    )


def test_silent_quality_drift_erodes_grounding_without_errors_or_latency_change(incident_traces):
    start, end = INCIDENT_WINDOWS["silent_quality_drift"]
    _, control = window_and_control(incident_traces, "silent_quality_drift")
    control = [t for t in control if t[0]["start_time"] < start - timedelta(minutes=0)]
    span = (end - start) / 4
    first = [t for t in incident_traces if start <= t[0]["start_time"] < start + span]
    last = [t for t in incident_traces if end - span <= t[0]["start_time"] < end]
    # worse and worse: the last quarter is clearly less grounded than the first
    assert _answers_grounding(last) < _answers_grounding(first) - 0.2
    assert _answers_grounding(last) < _answers_grounding(control) - 0.3
    # nothing else moves: no errors, same prompt version, same latency
    rag = lambda ts: [t for t in ts if t[0]["route"] == "rag_qa"]  # noqa: E731
    window = [t for t in incident_traces if start <= t[0]["start_time"] < end]
    assert _error_rate([t[0] for t in rag(window)]) < 0.04
    assert not [r for t in window for r in t if r["status"] == "error" and "synth.incident" in r["attributes"]]
    assert {r["prompt_version"] for r in _rows(last, prompt_name="rag_answer")} <= {"3", "4"}
    assert 0.8 < median(_secs(t[0]) for t in rag(last)) / median(_secs(t[0]) for t in rag(control)) < 1.25
