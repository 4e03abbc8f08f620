"""The app's four routes (rag_qa, summarize, classify, agent_tools) and the root span that serves one
request (`build_trace`)."""

from __future__ import annotations

import math
import random
from typing import cast

from obs_pipelines.synth import content as C
from obs_pipelines.synth.catalog import (
    GUARDRAIL_BLOCK,
    MAX_ITERATIONS,
    MODELS,
    RERANKER_MODEL,
    ROUTE_INFO,
    ROUTES,
    TOOL_ERROR,
)
from obs_pipelines.synth.steps import chain_step, chat, embedding
from obs_pipelines.synth.trace_builder import (
    DOC_TOKENS,
    MAX_AGENT_ITERATIONS,
    P_GUARDRAIL_BLOCK,
    P_HUGE_DOCUMENT,
    P_TOOL_ERROR,
    P_UNGROUNDED_BACKGROUND,
    TOOL_LOOP_SHARE,
    Effects,
    Failure,
    TraceBuilder,
    gap,
)

# ---- routes ------------------------------------------------------------------------------------------


def _grounded_answer(tb: TraceBuilder, q: C.Question) -> tuple[str, bool]:
    rng = tb.rng
    if rng.random() < P_UNGROUNDED_BACKGROUND:
        return rng.choice(C.DRIFT_ANSWERS), False
    return rng.choice(C.GROUNDED[q.text]), True


_SAME_TOPIC = {d.id: [o for o in C.DOCS_BY_TOPIC[d.topic] if o is not d] for d in C.DOCS}
# a few fixed shuffles of the off-topic documents per topic: distractors are a window of one of them
_perm_rng = random.Random(20261102)
_OFF_TOPIC = {
    topic: [_perm_rng.sample(pool, len(pool)) for _ in range(16)]
    for topic in C.TOPICS
    for pool in [[d for d in C.DOCS if d.topic != topic]]
}


def _distractors(rng: random.Random, topic: str, n: int) -> list[C.Doc]:
    perms = _OFF_TOPIC[topic]
    perm = perms[int(rng.random() * len(perms))]
    j = int(rng.random() * (len(perm) - n + 1))
    return perm[j : j + n]


def _retrieve(tb: TraceBuilder, root: dict, t: int, q: C.Question) -> tuple[int, list[dict]]:
    rng, fx = tb.rng, tb.fx
    row = tb.span(root, "retrieve_docs", "retrieval", t, {})
    row["input"] = q.text
    k = rng.randint(5, 8)
    docs: list[dict] = []
    if fx.miss:
        tb.tag(row, fx.miss)
        if rng.random() >= 0.4:  # else: nothing above the similarity cut-off
            picks = _distractors(rng, q.topic, k)
            scores = sorted((rng.uniform(0.05, 0.32) for _ in picks), reverse=True)
            docs = [{"id": d.id, "content": d.content, "score": round(s, 4)} for d, s in zip(picks, scores, strict=True)]
    else:
        same = _SAME_TOPIC[q.doc.id]
        n_same = rng.randint(0, 2)
        relevant = [q.doc]
        if n_same and same:
            j = rng.randrange(len(same))
            relevant += (same[j:] + same[:j])[:n_same]
        others = _distractors(rng, q.topic, k - len(relevant))
        top = rng.uniform(0.82, 0.93)
        scores = [top] + sorted((rng.uniform(0.66, top - 0.02) for _ in relevant[1:]), reverse=True)
        floor = scores[-1] - 0.05
        scores += sorted((rng.uniform(0.3, floor) for _ in others), reverse=True)
        docs = [{"id": d.id, "content": d.content, "score": round(s, 4)} for d, s in zip(relevant + others, scores, strict=True)]
    if docs:  # (an empty result leaves no documents attributes behind)
        row["attributes"]["retrieval.documents"] = docs
    row["end_time"] = t + int(tb.lognormal_us(0.14, 0.45) * tb.slow_factor(row, "retrieval"))
    return row["end_time"], docs


def _rerank(tb: TraceBuilder, root: dict, t: int, q: C.Question, docs: list[dict], top_n: int) -> tuple[int, list[dict]]:
    rng = tb.rng
    ranked: list[dict] = []
    row = tb.span(root, "rerank", "reranker", t, {"reranker.top_k": top_n, "reranker.output_documents": ranked})
    row["model"] = RERANKER_MODEL
    row["input"] = q.text
    if tb.fx.miss:
        tb.tag(row, tb.fx.miss)
    out = docs[:top_n]
    for d in out:
        # cross-encoder scores: sharper than the vector scores
        s = d["score"]
        rs = round(min(0.999, max(0.001, (s - 0.45) * 2.2 + 0.5 + rng.gauss(0.0, 0.03))), 4)
        ranked.append({"id": d["id"], "score": rs})
    if not ranked:
        del row["attributes"]["reranker.output_documents"]
    median = 0.11 if docs else 0.01
    row["end_time"] = t + int(tb.lognormal_us(median, 0.35) * tb.slow_factor(row, "reranker"))
    return row["end_time"], out


def _guardrail(tb: TraceBuilder, parent: dict, t: int, text: str) -> tuple[int, bool]:
    rng = tb.rng
    row = tb.span(parent, "output_guardrail", "guardrail", t, {"guardrail.checks": "pii,toxicity,jailbreak"})
    row["input"] = text
    end = t + int(tb.lognormal_us(0.035, 0.4) * tb.slow_factor(row, "guardrail"))
    if rng.random() < P_GUARDRAIL_BLOCK:
        reason = "pii_detected" if rng.random() < 0.7 else "toxicity"
        tb.fail(row, Failure(GUARDRAIL_BLOCK, GUARDRAIL_BLOCK.message.format(reason=reason), end), end)
        return end, False
    row["output"] = "pass"
    row["end_time"] = end
    return end, True


def _route_rag_qa(tb: TraceBuilder, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    q = rng.choice(C.QUESTIONS)
    root["input"] = q.text
    t = chain_step(tb, root, "validate_input", t, 0.004, q.text) + gap(rng)
    t = embedding(tb, root, t, q.text, q.tokens) + gap(rng)
    t, docs = _retrieve(tb, root, t, q)
    t += gap(rng)
    t, top = _rerank(tb, root, t, q, docs, 3)
    t += gap(rng)

    m = MODELS["gpt-4o" if rng.random() < 0.2 else "gpt-4o-mini"]
    version = "3" if rng.random() < 0.1 else "4"
    history = min(turn, 6) * rng.randint(60, 160)
    input_tokens = 1150 + sum(DOC_TOKENS[d["id"]] for d in top) + q.tokens + history
    cost_incident = fx.cost.get("rag_qa") if fx.cost else None
    if cost_incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    cached = 1024 if rng.random() < 0.6 else 0
    output_tokens = max(12, min(1024, int(150 * math.exp(rng.gauss(0.0, 0.5)))))
    incident = cost_incident
    output_incident = None
    grounded = True
    if fx.regression:
        version = "5"
        answer = rng.choice(C.REGRESSED_ANSWERS)
        output_tokens = max(5, int(25 * math.exp(rng.gauss(0.0, 0.4))))
        grounded = False
        incident = fx.regression
    elif not top:  # nothing retrieved (retrieval_miss)
        answer, grounded = rng.choice(C.MISS_ANSWERS), False
        incident = incident or fx.miss
    elif fx.miss:
        answer, grounded = rng.choice(C.MISS_ANSWERS), False
        incident = incident or fx.miss
    elif fx.drift and rng.random() < 0.1 + 0.8 * fx.drift[1]:
        answer, grounded = rng.choice(C.DRIFT_ANSWERS), False
        output_incident = fx.drift[0]
    else:
        answer, grounded = _grounded_answer(tb, q)
    stream = rng.random() < 0.6
    t = chat(
        tb,
        root,
        t,
        m,
        ("rag_answer", version),
        input_tokens,
        cached,
        output_tokens,
        q.text,
        answer,
        temperature=0.2,
        max_tokens=1024,
        stream=stream,
        finish_reason="stop",
        incident=incident,
        output_incident=output_incident,
    ) + gap(rng)
    final = f"{answer} [{top[0]['id']}]" if grounded and top else answer
    row = tb.span(root, "postprocess_answer", "chain", t, {})
    row["input"], row["output"] = answer, final
    t = row["end_time"] = t + tb.lognormal_us(0.002, 0.5)
    t, ok = _guardrail(tb, root, t + gap(rng), final)
    root["output"] = final if ok else C.GUARDRAIL_REPLY
    return t


def _route_summarize(tb: TraceBuilder, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    doc, summary = rng.choice(C.SUMMARIZE_DOCS)
    text_in = f"Summarize: {doc}"
    root["input"] = text_in
    t = chain_step(tb, root, "validate_input", t, 0.006, text_in) + gap(rng)
    m = MODELS["claude-3-5-sonnet-20241022"]
    if rng.random() < P_HUGE_DOCUMENT:
        input_tokens = int(m.context_window * rng.uniform(1.02, 1.8))
    else:
        input_tokens = max(400, min(150_000, int(5500 * math.exp(rng.gauss(0.0, 0.8)))))
    incident = fx.cost.get("summarize") if fx.cost else None
    if incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    cached = 2048 if input_tokens > 2600 and rng.random() < 0.3 else 0
    output_tokens = max(40, min(2048, int(260 * math.exp(rng.gauss(0.0, 0.45)))))
    t = chat(
        tb,
        root,
        t,
        m,
        ("summarize_doc", "2"),
        input_tokens,
        cached,
        output_tokens,
        text_in,
        summary,
        temperature=0.3,
        max_tokens=2048,
        stream=True,
        finish_reason="end_turn",
        incident=incident,
    ) + gap(rng)
    t, ok = _guardrail(tb, root, t, summary)
    root["output"] = summary if ok else C.GUARDRAIL_REPLY
    return t


def _route_classify(tb: TraceBuilder, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    q = rng.choice(C.QUESTIONS)
    root["input"] = q.text
    m = MODELS["gemini-1.5-flash"]
    input_tokens = 310 + q.tokens
    incident = fx.cost.get("classify") if fx.cost else None
    if incident:
        input_tokens = int(input_tokens * rng.uniform(3.0, 5.0))
    label = q.topic if rng.random() < 0.93 else rng.choice(C.TOPICS)
    t = chat(
        tb,
        root,
        t,
        m,
        ("ticket_classifier", "1"),
        input_tokens,
        0,
        rng.randint(1, 4),
        q.text,
        label,
        temperature=0.0,
        max_tokens=5,
        stream=False,
        finish_reason="STOP",
        incident=incident,
    )
    root["output"] = label
    return t


def _tool_args(rng: random.Random, tool: str, slots: dict[str, str]) -> tuple[str, str]:
    """(arguments JSON, result JSON) of one tool call."""
    oid, city, product, email = slots["oid"], slots["city"], slots["product"], slots["email"]
    if tool == "get_order_status":
        carrier = rng.choice(C.CARRIERS)
        status = rng.choice(C.ORDER_STATUSES)
        return f'{{"order_id": "{oid}"}}', f'{{"order_id": "{oid}", "status": "{status}", "carrier": "{carrier}"}}'
    if tool == "get_weather":
        return f'{{"city": "{city}"}}', f'{{"city": "{city}", "forecast": "{rng.choice(C.WEATHER)}"}}'
    if tool == "search_orders":
        return (
            f'{{"query": "{product}", "limit": 5}}',
            f'{{"orders": [{{"order_id": "{oid}", "item": "{product}", "status": "{rng.choice(C.ORDER_STATUSES)}"}}]}}',
        )
    if tool == "lookup_account":
        return f'{{"email": "{email}"}}', f'{{"email": "{email}", "verified": {"true" if rng.random() < 0.8 else "false"}}}'
    return (
        f'{{"order_id": "{oid}", "reason": "damaged"}}',
        f'{{"ticket_id": "T-{rng.randint(100000, 999999)}", "status": "open"}}',
    )


_AGENT_FINALS = {
    "get_order_status": "Your order {oid} is on its way; the carrier shows it {status}.",
    "get_weather": "The forecast for {city} may cause a short delay, but your order {oid} is on its way.",
    "search_orders": "I found your {product} order {oid}.",
    "lookup_account": "Your account {email} is verified.",
    "create_ticket": "I opened a ticket for your damaged order {oid}; our team will contact you within 24 hours.",
}


def _route_agent(tb: TraceBuilder, root: dict, t: int, turn: int) -> int:
    rng, fx = tb.rng, tb.fx
    template, plan = rng.choice(C.AGENT_SCENARIOS)
    slots = {
        "oid": f"A{rng.randint(100000, 999999)}",
        "city": rng.choice(C.CITIES),
        "product": rng.choice(C.PRODUCTS),
        "email": f"{tb.user_id.replace('user_', 'u')}@example.com",
    }
    question = template.format(**slots)
    root["input"] = question
    m = MODELS["gpt-4o"]
    agent = tb.span(
        root,
        "invoke_agent support_agent",
        "agent",
        t,
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support_agent"},
    )
    agent["input"] = question
    cost_incident = fx.cost.get("agent_tools") if fx.cost else None
    growth = rng.uniform(3.0, 5.0) if cost_incident else 1.0
    context = 1800 + 12 + len(question) // 4 + min(turn, 6) * 90
    loop_incident = None
    calls: list[str] = list(plan)
    if fx.loop and rng.random() < TOOL_LOOP_SHARE:
        loop_incident, loop_tool = fx.loop
        tool = loop_tool or plan[0]
        calls = [tool] * rng.randint(6, 14)
    t += gap(rng)
    last_args: dict[str, tuple[str, str]] = {}
    try:
        for i, tool in enumerate(calls):
            if i >= MAX_AGENT_ITERATIONS:
                end = t + gap(rng)
                f = Failure(MAX_ITERATIONS, MAX_ITERATIONS.message.format(n=MAX_AGENT_ITERATIONS), end)
                # only the tool loop makes more calls than that (a plan has at most a few tools)
                tb.tag(agent, cast(str, loop_incident))
                raise f
            args, result = last_args.get(tool) or _tool_args(rng, tool, slots)
            if loop_incident:
                last_args[tool] = (args, result)  # the loop repeats the very same call
            out_tokens = max(18, int(45 * math.exp(rng.gauss(0.0, 0.3))))
            t = chat(
                tb,
                agent,
                t,
                m,
                ("support_agent", "7"),
                int(context * growth),
                (context // 128) * 128 if i > 0 or rng.random() < 0.5 else 0,
                out_tokens,
                question,
                f'{{"tool_calls": [{{"name": "{tool}", "arguments": {args}}}]}}',
                temperature=0.0,
                max_tokens=1024,
                stream=False,
                finish_reason="tool_calls",
                incident=loop_incident or cost_incident,
            ) + gap(rng)
            context += out_tokens
            call_id = f"call_{rng.getrandbits(96):024x}"
            row = tb.span(
                agent,
                f"execute_tool {tool}",
                "tool",
                t,
                {
                    "gen_ai.operation.name": "execute_tool",
                    "tool.name": tool,
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": call_id,
                },
            )
            row["input"] = args
            if loop_incident:
                tb.tag(row, loop_incident)
            median, sigma, upstream = C.TOOL_LATENCY[tool]
            end = t + int(tb.lognormal_us(median, sigma) * tb.slow_factor(row, "tool"))
            if rng.random() < P_TOOL_ERROR:
                # the agent sees the error message as the tool result and carries on
                message = TOOL_ERROR.message.format(tool=tool, upstream=upstream)
                tb.fail(row, Failure(TOOL_ERROR, message, end), end)
                context += 40
            else:
                row["output"] = result
                row["end_time"] = end
                context += 60 + len(result) // 3
            t = end + gap(rng)
        if loop_incident:
            final = "I'm having trouble retrieving that information right now. Please try again later."
        else:
            final = _AGENT_FINALS[plan[-1]].format(status=rng.choice(C.ORDER_STATUSES).replace("_", " "), **slots)
        t = chat(
            tb,
            agent,
            t,
            m,
            ("support_agent", "7"),
            int(context * growth),
            (context // 128) * 128 if rng.random() < 0.7 else 0,
            max(20, int(70 * math.exp(rng.gauss(0.0, 0.4)))),
            question,
            final,
            temperature=0.0,
            max_tokens=1024,
            stream=False,
            finish_reason="stop",
            incident=loop_incident or cost_incident,
        )
    except Failure as f:
        end = f.end_us + gap(rng)
        tb.fail(agent, f, end)
        f.end_us = end
        raise
    agent["output"] = final
    agent["end_time"] = t + gap(rng)
    root["output"] = final
    return agent["end_time"]


_ROUTE_FNS = {
    "rag_qa": _route_rag_qa,
    "summarize": _route_summarize,
    "classify": _route_classify,
    "agent_tools": _route_agent,
}
ROUTE_CUM: list[float] = []
_acc = 0.0
for _r in ROUTES:
    _acc += ROUTE_INFO[_r][2]
    ROUTE_CUM.append(_acc)


def _root_http_status(f: Failure) -> int:
    status = f.shape.http_status
    if status in (400, 429):
        return status
    if f.shape.error_type.endswith(("TimeoutError", "ReadTimeout")):
        return 504
    if status is not None:
        return 502
    return 500


def build_trace(
    rng: random.Random,
    fx: Effects,
    t0: int,
    route: str,
    user_id: str,
    session_id: str,
    turn: int,
    datetimes: bool,
) -> list[dict]:
    tb = TraceBuilder(rng, fx, route, user_id, session_id)
    root_name, http_route, _ = ROUTE_INFO[route]
    root_attrs: dict[str, str | int] = {"http.request.method": "POST", "http.route": http_route}
    root = tb.span(None, root_name, "chain", t0, root_attrs)
    t = t0 + 300 + int(rng.random() * 2000)  # request parsing, auth
    try:
        t = _ROUTE_FNS[route](tb, root, t, turn)
        root_attrs["http.response.status_code"] = 200
        root["end_time"] = t + gap(rng)
    except Failure as f:
        root_attrs["http.response.status_code"] = _root_http_status(f)
        tb.fail(root, f, f.end_us + gap(rng))
    return tb.finish(datetimes)
