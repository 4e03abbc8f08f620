"""The support bot's traffic as OTLP/JSON requests (one ExportTraceServiceRequest per trace).

Three routes, each instrumented the way a different team would:

- ``kb_answer`` (OpenInference): a chain root named ``kb_answer`` (no route attribute: the route is the root's
  name), a RETRIEVER ``article_search`` over help-center articles, an LLM ``compose_answer`` on Cohere that
  reports its own cost (``llm.cost.total``);
- ``/triage`` (OTel GenAI): an HTTP server root with ``http.route``, an ``invoke_agent`` span of the triage agent,
  ``chat`` calls to Mistral, ``execute_tool`` spans (``lookup_order``, ``check_refund``, ``set_priority``) and an
  OpenInference RETRIEVER ``similar_tickets``;
- ``reply_draft`` (OTel GenAI): a workflow root with ``app.route``, one ``chat`` call to Google; its cost comes from
  the price table (no cost attribute).

Magnitudes at ``scale`` 1 are about the project generator's (a retrieval of ~0.2 s, a model call of seconds,
~1-2 k input tokens); ``scale`` multiplies every duration and token count.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from obs_pipelines_tests.second_app import vocabulary as v

HOUR = timedelta(hours=1)
SERVICE = "helpdesk-bot"
ROUTE_MIX = (("kb_answer", 0.45), ("/triage", 0.30), ("reply_draft", 0.25))
# USD per million tokens (input, output) the kb route reports itself
KB_PRICE = (2.5, 10.0)

# failure mode -> (what happens during its hour, the group where its cause lives)
FAILURE_MODES: dict[str, tuple[str, dict]] = {
    "latency_spike": ("the article_search retriever answers ~8x slower",
                      {"span_kind": "retrieval", "span_name": "article_search"}),
    "provider_outage": ("Cohere answers 503 to most compose_answer calls", {"provider": "cohere"}),
    "rate_limits": ("Mistral answers 429 to a third of the triage agent's calls", {"error_class": "rate_limit"}),
    "cost_overrun": ("reply_draft moves to prompt reply-v4, whose system prompt is ~4x longer",
                     {"route": "reply_draft"}),
    "tool_loop": ("the triage agent calls lookup_order again and again with the same arguments",
                  {"route": "/triage"}),
    "wrong_retrieval": ("article_search returns unrelated pages with low scores",
                        {"route": "kb_answer", "span_name": "article_search"}),
    "prompt_regression": ("kb_answer moves to prompt kb-answer-v8, which answers with polite filler",
                          {"route": "kb_answer"}),
    "hallucination": ("kb_answer states policies the retrieved articles do not contain", {"route": "kb_answer"}),
}
# failure modes of one kind of input (not the rollout guide's eight): mode -> (what breaks, the group, the articles
# whose questions it breaks). A help-center change leaves kb_answer inventing the refund and return policies
INPUT_MODES: dict[str, tuple[str, dict, tuple[str, ...]]] = {
    "refund_gap": ("kb_answer invents policies on refund and return questions only", {"route": "kb_answer"},
                   ("hc-203", "hc-204")),
}


@dataclass(frozen=True)
class Profile:
    """How big and how busy the app is."""

    requests_per_hour: int = 50
    scale: float = 1.0  # multiplies durations and token counts
    seed: int = 7


def _ns(t: datetime) -> int:
    return int(t.replace(tzinfo=timezone.utc).timestamp() * 1_000_000) * 1000


def _value(x) -> dict:
    if isinstance(x, bool):
        return {"boolValue": x}
    if isinstance(x, int):
        return {"intValue": str(x)}
    if isinstance(x, float):
        return {"doubleValue": x}
    return {"stringValue": str(x)}


class _Trace:
    """Spans of one trace, built in start order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.trace_id = f"{rng.getrandbits(128):032x}"
        self.spans: list[dict] = []

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64) or 1:016x}"

    def add(self, name: str, span_id: str, parent: str | None, start_ns: int, dur_ms: float, attrs: dict,
            kind: int = 1, error: tuple[str, str] | None = None) -> int:
        span = {"traceId": self.trace_id, "spanId": span_id, "parentSpanId": parent or "", "name": name,
                "kind": kind, "startTimeUnixNano": str(start_ns),
                "endTimeUnixNano": str(start_ns + int(dur_ms * 1e6)),
                "attributes": [{"key": k, "value": _value(x)} for k, x in attrs.items() if x is not None]}
        if error:
            span["status"] = {"code": 2, "message": error[1]}
            span["attributes"].append({"key": "error.type", "value": _value(error[0])})
        else:
            span["status"] = {"code": 1}
        self.spans.append(span)
        return start_ns + int(dur_ms * 1e6)

    def request(self) -> dict:
        return {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": _value(SERVICE)},
                                        {"key": "deployment.environment", "value": _value("prod")}]},
            "scopeSpans": [{"scope": {"name": "helpdesk.instrumentation"}, "spans": self.spans}]}]}


class SupportBot:
    """Generates the support bot's requests for whole hours, with at most one failure mode per hour."""

    def __init__(self, profile: Profile) -> None:
        self.p = profile

    # ---- timing helpers (ms at scale 1, then scaled) -----------------------------------------------------
    def _ms(self, rng: random.Random, median: float, sigma: float = 0.3) -> float:
        return median * math.exp(rng.gauss(0.0, sigma)) * self.p.scale

    def _tokens(self, rng: random.Random, median: float, sigma: float = 0.2) -> int:
        return max(1, int(median * math.exp(rng.gauss(0.0, sigma)) * self.p.scale))

    def _llm_ms(self, rng: random.Random, output_tokens: int) -> float:
        # a model call: time to first token plus ~12 ms a token (output tokens are already scaled)
        return (350 * self.p.scale + 12 * output_tokens) * math.exp(rng.gauss(0.0, 0.2))

    # ---- traffic ---------------------------------------------------------------------------------------
    def requests_in_hour(self, hour_index: int, rng: random.Random) -> int:
        # a day-shaped load (busiest mid-afternoon UTC) with Poisson noise, never below a fifth of the mean
        mean = self.p.requests_per_hour * (1 + 0.3 * math.sin(2 * math.pi * ((hour_index % 24) - 9) / 24))
        n = int(round(rng.gauss(mean, math.sqrt(mean))))
        return max(n, max(1, self.p.requests_per_hour // 5))

    def hour(self, start: datetime, mode: str | None = None) -> list[dict]:
        """The OTLP requests (one per trace) of the hour starting at ``start``; ``mode``: a failure mode of
        FAILURE_MODES active for the whole hour."""
        if mode is not None and mode not in FAILURE_MODES and mode not in INPUT_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; known: {sorted([*FAILURE_MODES, *INPUT_MODES])}")
        # a naive start is UTC (as everywhere in the project), not the machine's local time
        hour_index = int((start if start.tzinfo else start.replace(tzinfo=timezone.utc)).timestamp() // 3600)
        rng = random.Random(f"{self.p.seed}:{hour_index}")  # an hour's traffic does not depend on other hours
        out = []
        for _ in range(self.requests_in_hour(hour_index, rng)):
            at = start + timedelta(seconds=rng.uniform(0, 3599))
            r = rng.random()
            route = next(name for name, cum in _cumulative(ROUTE_MIX) if r < cum)
            build = {"kb_answer": self._kb_answer, "/triage": self._triage, "reply_draft": self._reply}[route]
            out.append(build(rng, at, mode))
        return out

    def hours(self, start: datetime, count: int, incidents: dict[datetime, str] | None = None) -> list[dict]:
        """Every request of ``count`` hours from ``start``; ``incidents`` maps an hour's start to its mode."""
        incidents = incidents or {}
        return [req for h in range(count) for req in self.hour(start + h * HOUR, incidents.get(start + h * HOUR))]

    # ---- kb_answer (OpenInference) -----------------------------------------------------------------------
    def _kb_answer(self, rng: random.Random, at: datetime, mode: str | None) -> dict:
        tr = _Trace(rng)
        question, article = rng.choice(v.QUESTIONS)
        user = f"cust-{rng.randrange(400):04d}"
        root = tr.span_id()
        t0 = _ns(at)
        t = t0 + int(self._ms(rng, 8, 0.2) * 1e6)
        # retrieval: the right article first, a few neighbours after; sometimes nothing (a new topic)
        docs = self._articles(rng, article, mode)
        search_ms = self._ms(rng, 180, 0.35) * (8 if mode == "latency_spike" else 1)
        attrs = {"openinference.span.kind": "RETRIEVER", "input.value": question}
        for i, (doc_id, content, score) in enumerate(docs):
            attrs[f"retrieval.documents.{i}.document.id"] = doc_id
            attrs[f"retrieval.documents.{i}.document.content"] = content
            attrs[f"retrieval.documents.{i}.document.score"] = round(score, 4)
        t = tr.add("article_search", tr.span_id(), root, t, search_ms, attrs)
        # the answer
        version = "kb-answer-v8" if mode == "prompt_regression" else "kb-answer-v7"
        context = "\n\n".join(f"[{d}] {c}" for d, c, _ in docs)
        prompt = f"{v.SYSTEM_PROMPTS[version]}\n\nArticles:\n{context}\n\nQuestion: {question}"
        if mode == "prompt_regression":
            answer = rng.choice(v.REGRESSED_ANSWERS)
        elif mode == "hallucination" or (mode in INPUT_MODES and article in INPUT_MODES[mode][2]):
            answer = rng.choice(v.HALLUCINATED_ANSWERS)
        elif not docs:
            answer = "I could not find a help-center article about this; I have passed your question to an agent."
        else:
            answer = v.GOOD_ANSWERS[docs[0][0]] if docs[0][0] in v.GOOD_ANSWERS else v.GOOD_ANSWERS[article]
        tokens_in = self._tokens(rng, 1400)
        tokens_out = self._tokens(rng, 220)
        error = None
        if mode == "provider_outage" and rng.random() < 0.7:
            error = ("cohere.errors.ServiceUnavailableError", "status_code: 503, body: {'message': 'Service "
                     "temporarily unavailable, please retry'}")
        elif rng.random() < 0.006:
            error = ("httpx.ReadTimeout", "The read operation timed out")
        cost = (tokens_in * KB_PRICE[0] + tokens_out * KB_PRICE[1]) / 1e6
        llm = {"openinference.span.kind": "LLM", "llm.model_name": "command-r-plus", "llm.provider": "cohere",
               "llm.prompt_template.version": version, "input.value": prompt}
        if error:
            dur = self._ms(rng, 400, 0.4) if "503" in error[1] else 30_000 * self.p.scale
        else:
            dur = self._llm_ms(rng, tokens_out)
            llm.update({"output.value": answer, "llm.token_count.prompt": tokens_in,
                        "llm.token_count.completion": tokens_out, "llm.cost.total": round(cost, 8)})
        t = tr.add("compose_answer", tr.span_id(), root, t, dur, llm, kind=3, error=error)
        end = t + int(self._ms(rng, 5, 0.2) * 1e6)
        tr.add("kb_answer", root, None, t0, (end - t0) / 1e6,
               {"openinference.span.kind": "CHAIN", "input.value": question,
                "output.value": None if error else answer, "user.id": user,
                "session.id": f"s-{user}-{at:%Y%m%d}"}, kind=2,
               error=("UpstreamError", "the answer could not be composed") if error else None)
        return tr.request()

    def _articles(self, rng: random.Random, article: str, mode: str | None) -> list[tuple[str, str, float]]:
        if mode == "wrong_retrieval":
            pages = rng.sample(sorted(v.OFF_TOPIC_PAGES), 3)
            return [(p, v.OFF_TOPIC_PAGES[p][1], rng.uniform(0.22, 0.48)) for p in pages]
        if rng.random() < 0.02:
            return []
        others = rng.sample([a for a in v.ARTICLES if a != article], 3)
        top = rng.uniform(0.74, 0.93)
        scores = [top] + sorted((rng.uniform(0.35, top - 0.05) for _ in others), reverse=True)
        return [(a, v.ARTICLES[a][1], s) for a, s in zip([article, *others], scores)]

    # ---- /triage (OTel GenAI agent + an OpenInference retriever) -----------------------------------------
    def _triage(self, rng: random.Random, at: datetime, mode: str | None) -> dict:
        tr = _Trace(rng)
        text, order, priority = rng.choice(v.TICKETS)
        user = f"agent-{rng.randrange(25):02d}"
        root, agent = tr.span_id(), tr.span_id()
        t0 = _ns(at)
        t = t0 + int(self._ms(rng, 10) * 1e6)
        agent_start = t
        failed = False

        def chat(t: int, step: str) -> int:
            nonlocal failed
            tokens_in, tokens_out = self._tokens(rng, 900), self._tokens(rng, 90)
            error = None
            if mode == "rate_limits" and rng.random() < 0.33:
                error = ("mistralai.models.SDKError", 'API error occurred: Status 429 {"message":"Requests rate '
                                                      'limit exceeded"}')
            elif rng.random() < 0.004:
                error = ("mistralai.models.SDKError", "API error occurred: Status 500 internal error")
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "mistral_ai",
                     "gen_ai.request.model": "mistral-large-latest", "traceloop.prompt.key": "triage",
                     "traceloop.prompt.version": "triage-v3",
                     "gen_ai.input.messages": json.dumps([{"role": "system", "content": v.SYSTEM_PROMPTS["triage-v3"]},
                                                          {"role": "user", "content": text}])}
            if error:
                failed = True
                return tr.add("chat mistral-large-latest", tr.span_id(), agent, t, self._ms(rng, 120), attrs, 3, error)
            attrs.update({"gen_ai.response.model": "mistral-large-2411", "gen_ai.usage.input_tokens": tokens_in,
                          "gen_ai.usage.output_tokens": tokens_out,
                          "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": step}])})
            return tr.add("chat mistral-large-latest", tr.span_id(), agent, t, self._llm_ms(rng, tokens_out), attrs, 3)

        def tool(t: int, name: str, args: dict, result: str) -> int:
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                     "gen_ai.tool.call.arguments": json.dumps(args, sort_keys=True), "gen_ai.tool.call.result": result}
            return tr.add(f"execute_tool {name}", tr.span_id(), agent, t, self._ms(rng, 140, 0.4), attrs)

        t = chat(t, "I will look up the order and similar tickets.")
        if order:
            looping = mode == "tool_loop" and rng.random() < 0.6
            # a rare stuck agent exists in clean traffic too
            looping = looping or rng.random() < 0.01
            repeats = rng.randint(5, 8) if looping else 1
            for i in range(repeats):
                t = tool(t, "lookup_order", {"order_id": order}, f'{{"order_id": "{order}", "status": "in_transit"}}')
                if i < repeats - 1:
                    t = chat(t, "The order lookup did not give me the status yet, let me look it up again.")
            if "refund" in text:
                t = tool(t, "check_refund", {"order_id": order}, '{"refund": "issued", "days_ago": 3}')
        # similar past tickets (OpenInference retriever inside the GenAI agent)
        past = rng.sample(sorted(v.PAST_TICKETS), 3)
        attrs = {"openinference.span.kind": "RETRIEVER", "input.value": text}
        for i, pid in enumerate(past):
            attrs[f"retrieval.documents.{i}.document.id"] = pid
            attrs[f"retrieval.documents.{i}.document.content"] = v.PAST_TICKETS[pid]
            attrs[f"retrieval.documents.{i}.document.score"] = round(rng.uniform(0.6, 0.9) - 0.1 * i, 4)
        t = tr.add("similar_tickets", tr.span_id(), agent, t, self._ms(rng, 90, 0.3), attrs)
        t = tool(t, "set_priority", {"priority": priority}, '{"ok": true}')
        decision = v.TRIAGE_DECISIONS[priority]
        t = chat(t, decision)
        tr.add("invoke_agent triage_agent", agent, root, agent_start, (t - agent_start) / 1e6,
               {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage_agent"},
               error=("AgentError", "a model call of the agent failed") if failed else None)
        end = t + int(self._ms(rng, 6) * 1e6)
        tr.add("POST /triage", root, None, t0, (end - t0) / 1e6,
               {"http.route": "/triage", "http.request.method": "POST", "user.id": user,
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": text}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": decision}])}, kind=2,
               error=("AgentError", "a model call of the agent failed") if failed else None)
        return tr.request()

    # ---- reply_draft (OTel GenAI, priced by the price table) ---------------------------------------------
    def _reply(self, rng: random.Random, at: datetime, mode: str | None) -> dict:
        tr = _Trace(rng)
        message, notes = rng.choice(v.REPLY_REQUESTS)
        name = rng.choice(v.NAMES)
        user = f"agent-{rng.randrange(25):02d}"
        root = tr.span_id()
        t0 = _ns(at)
        version = "reply-v4" if mode == "cost_overrun" else "reply-v3"
        # the v4 system prompt carries the tone guide and worked examples: ~4x the input tokens
        tokens_in = self._tokens(rng, 1800 if version == "reply-v3" else 7200)
        tokens_out = self._tokens(rng, 160)
        draft = v.REPLY_DRAFT.format(name=name, notes=notes)
        error = ("google.api_core.exceptions.DeadlineExceeded", "504 Deadline Exceeded") if rng.random() < 0.005 else None
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "google",
                 "gen_ai.request.model": "gemini-2.0-flash", "traceloop.prompt.key": "reply",
                 "traceloop.prompt.version": version,
                 "gen_ai.input.messages": json.dumps([{"role": "system", "content": v.SYSTEM_PROMPTS[version]},
                                                      {"role": "user", "content": f"{message}\nNotes: {notes}"}])}
        t = t0 + int(self._ms(rng, 5) * 1e6)
        if error:
            t = tr.add("chat gemini-2.0-flash", tr.span_id(), root, t, 20_000 * self.p.scale, attrs, 3, error)
        else:
            attrs.update({"gen_ai.response.model": "gemini-2.0-flash", "gen_ai.usage.input_tokens": tokens_in,
                          "gen_ai.usage.output_tokens": tokens_out,
                          "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": draft}])})
            t = tr.add("chat gemini-2.0-flash", tr.span_id(), root, t, self._llm_ms(rng, tokens_out), attrs, 3)
        end = t + int(self._ms(rng, 4) * 1e6)
        tr.add("reply_draft", root, None, t0, (end - t0) / 1e6,
               {"gen_ai.operation.name": "invoke_workflow", "app.route": "reply_draft", "user.id": user,
                "input.value": message, "output.value": None if error else draft}, kind=1,
               error=("WorkflowError", "the draft could not be written") if error else None)
        return tr.request()


def _cumulative(mix):
    total = 0.0
    for name, share in mix:
        total += share
        yield name, total
