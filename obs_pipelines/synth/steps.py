"""The leaf steps every route is made of: chain steps, chat and embedding calls with retries and failures."""

from __future__ import annotations

import math

from obs_pipelines.synth.catalog import (
    CHAT_TIMEOUT_S,
    CONTEXT_LENGTH,
    COST_REPORTING_ROUTE,
    EMBEDDING_MODEL,
    EMBEDDING_TIMEOUT_S,
    MODELS,
    PROVIDER_ERRORS,
    Model,
)
from obs_pipelines.synth.trace_builder import (
    OUTAGE_P_SERVER,
    OUTAGE_P_TIMEOUT,
    P_RATE_LIMIT,
    P_SERVER_ERROR,
    P_TIMEOUT,
    STORM_P_RATE_LIMIT,
    US_PER_S,
    Failure,
    TraceBuilder,
)

# ---- leaf steps ---------------------------------------------------------------------------------------


def chain_step(tb: TraceBuilder, parent: dict, name: str, t: int, median_s: float, text: str | None = None) -> int:
    row = tb.span(parent, name, "chain", t, {})
    if text is not None:
        row["input"] = text
    row["end_time"] = t + tb.lognormal_us(median_s, 0.5)
    return row["end_time"]


def draw_failure(tb: TraceBuilder, row: dict, m: Model) -> tuple[str | None, str | None]:
    """Which failure (if any) one API call to m's provider meets, and the incident that caused it."""
    fx, rng = tb.fx, tb.rng
    p_rl, p_srv, p_to = P_RATE_LIMIT, P_SERVER_ERROR, P_TIMEOUT
    storm = fx.storm.get(m.provider) if fx.storm else None
    outage = fx.outage.get(m.provider) if fx.outage else None
    if storm:
        p_rl = STORM_P_RATE_LIMIT
    if outage:
        p_srv, p_to = OUTAGE_P_SERVER, OUTAGE_P_TIMEOUT
    u = rng.random()
    if u < p_rl:
        return "rate_limit", storm
    u -= p_rl
    if u < p_srv:
        return "server", outage
    u -= p_srv
    if u < p_to:
        return "timeout", outage
    return None, None


def api_failure(tb: TraceBuilder, row: dict, m: Model, kind: str, t: int, timeout_s: float) -> Failure:
    shape = PROVIDER_ERRORS[m.provider][kind]
    rng = tb.rng
    if kind == "rate_limit":
        end = t + tb.lognormal_us(0.12, 0.5)
        message = shape.message.format(model=m.name, ms=rng.randint(80, 2500))
    elif kind == "server":
        end = t + tb.lognormal_us(0.6, 0.9)
        message = shape.message
    else:
        end = t + int((timeout_s + rng.random() * 0.05) * US_PER_S)
        message = shape.message
    if shape.http_status is not None:
        row["attributes"]["http.response.status_code"] = shape.http_status
    f = Failure(shape, message, end, retryable=kind if kind != "timeout" else None)
    tb.fail(row, f, end)
    return f


def chat_attempt(
    tb: TraceBuilder,
    parent: dict,
    t: int,
    m: Model,
    prompt: tuple[str, str] | None,
    input_tokens: int,
    cached_tokens: int,
    output_tokens: int,
    text_in: str,
    text_out: str,
    *,
    temperature: float,
    max_tokens: int,
    stream: bool,
    finish_reason: str,
    incident: str | None,
    output_incident: str | None = None,
) -> int:
    rng = tb.rng
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.temperature": temperature,
        "gen_ai.request.max_tokens": max_tokens,
    }
    if stream:
        attrs["gen_ai.request.stream"] = True
    row = tb.span(parent, f"chat {m.name}", "llm", t, attrs)
    row["model"] = m.name
    row["provider"] = m.provider
    if prompt is not None:
        row["prompt_name"], row["prompt_version"] = prompt
    row["input"] = text_in
    if incident:
        tb.tag(row, incident)
    slow = tb.slow_factor(row, "llm", m.name)
    if input_tokens > m.context_window:
        end = t + tb.lognormal_us(0.25, 0.3)
        message = CONTEXT_LENGTH.message.format(tokens=input_tokens, limit=m.context_window)
        row["attributes"]["http.response.status_code"] = CONTEXT_LENGTH.http_status
        f = Failure(CONTEXT_LENGTH, message, end)
        tb.fail(row, f, end)
        raise f
    kind, cause = draw_failure(tb, row, m)
    if kind is not None:
        if cause:
            tb.tag(row, cause)
        raise api_failure(tb, row, m, kind, t, CHAT_TIMEOUT_S)
    ttft = m.ttft_s * math.exp(rng.gauss(0.0, 0.3)) + input_tokens * 1.5e-5
    gen = output_tokens / (m.tokens_per_s * math.exp(rng.gauss(0.0, 0.15)))
    duration = (ttft + gen) * slow
    row["model"] = m.response_model
    if m.response_model != m.name:  # (ingest keeps the request model only when it differs)
        attrs["gen_ai.request.model"] = m.name
    row["input_tokens"] = input_tokens
    row["output_tokens"] = output_tokens
    row["cached_input_tokens"] = cached_tokens
    if stream:
        attrs["gen_ai.response.time_to_first_token"] = round(ttft * slow, 4)
    attrs["gen_ai.response.finish_reasons"] = [finish_reason]
    if tb.route == COST_REPORTING_ROUTE:
        row["cost_usd"] = round(
            (
                (input_tokens - cached_tokens) * m.usd_per_m_input
                + cached_tokens * m.usd_per_m_cached
                + output_tokens * m.usd_per_m_output
            )
            / 1e6,
            8,
        )
    row["output"] = text_out
    if output_incident:  # an incident that only changed what came back
        tb.tag(row, output_incident)
    row["end_time"] = t + int(duration * US_PER_S)
    return row["end_time"]


def with_retry(call, tb: TraceBuilder, parent: dict, t: int, m: Model, *args, **kwargs) -> int:
    """The app's retry policy around one API call: 429 up to 2 retries, 5xx 1 retry, none on timeouts."""
    left = {"rate_limit": 2, "server": 1}
    while True:
        try:
            return call(tb, parent, t, m, *args, **kwargs)
        except Failure as f:
            if f.retryable is None or left[f.retryable] == 0:
                raise
            left[f.retryable] -= 1
            backoff = tb.rng.uniform(1.0, 3.0) if f.retryable == "rate_limit" else tb.rng.uniform(0.5, 1.5)
            t = f.end_us + int(backoff * US_PER_S)


def chat(tb: TraceBuilder, parent: dict, t: int, m: Model, *args, **kwargs) -> int:
    return with_retry(chat_attempt, tb, parent, t, m, *args, **kwargs)


def embedding(tb: TraceBuilder, parent: dict, t: int, text: str, tokens: int) -> int:
    return with_retry(embedding_attempt, tb, parent, t, MODELS[EMBEDDING_MODEL], text, tokens)


def embedding_attempt(tb: TraceBuilder, parent: dict, t: int, m: Model, text: str, tokens: int) -> int:
    row = tb.span(
        parent,
        f"embeddings {m.name}",
        "embedding",
        t,
        {"gen_ai.operation.name": "embeddings"},
    )
    row["model"] = m.name
    row["provider"] = m.provider
    row["input"] = text
    slow = tb.slow_factor(row, "embedding", m.name)
    kind, cause = draw_failure(tb, row, m)
    if kind is not None:
        if cause:
            tb.tag(row, cause)
        raise api_failure(tb, row, m, kind, t, EMBEDDING_TIMEOUT_S)
    row["model"] = m.response_model
    if m.response_model != m.name:
        row["attributes"]["gen_ai.request.model"] = m.name
    row["input_tokens"] = tokens
    row["end_time"] = t + int(tb.lognormal_us(0.09, 0.4) * slow)
    return row["end_time"]
