"""The synthetic app's fixed world: service, routes, models and providers, error shapes per SDK."""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME = "support-assistant"
ENVIRONMENT = "production"
SERVICE_VERSION = "2.14.1"

# route -> (root span name, http.route, share of traffic)
ROUTE_INFO: dict[str, tuple[str, str, float]] = {
    "rag_qa": ("POST /chat/answer", "/chat/answer", 0.55),
    "agent_tools": ("POST /agent/run", "/agent/run", 0.20),
    "summarize": ("POST /docs/summarize", "/docs/summarize", 0.15),
    "classify": ("POST /tickets/classify", "/tickets/classify", 0.10),
}
ROUTES: tuple[str, ...] = tuple(ROUTE_INFO)
# the one route whose framework reports llm.cost.total on its LLM spans
COST_REPORTING_ROUTE = "agent_tools"

# kinds a latency_spike can target (contract `kind` values)
STEP_KINDS: tuple[str, ...] = ("retrieval", "embedding", "reranker", "llm", "tool", "guardrail")

PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "google")


@dataclass(frozen=True)
class Model:
    name: str  # gen_ai.request.model
    response_model: str  # gen_ai.response.model (the dated snapshot the API reports)
    provider: str
    ttft_s: float  # median time to first token
    tokens_per_s: float  # median output speed
    context_window: int
    usd_per_m_input: float
    usd_per_m_cached: float
    usd_per_m_output: float


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", 0.35, 85.0, 128_000, 0.15, 0.075, 0.60),
        Model("gpt-4o", "gpt-4o-2024-08-06", "openai", 0.50, 55.0, 128_000, 2.50, 1.25, 10.0),
        Model(
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20241022",
            "anthropic",
            0.80,
            50.0,
            200_000,
            3.0,
            0.30,
            15.0,
        ),
        Model("gemini-1.5-flash", "gemini-1.5-flash-002", "google", 0.25, 160.0, 1_000_000, 0.075, 0.01875, 0.30),
        Model("text-embedding-3-small", "text-embedding-3-small", "openai", 0.0, 0.0, 8_191, 0.02, 0.02, 0.0),
    )
}
EMBEDDING_MODEL = "text-embedding-3-small"
RERANKER_MODEL = "rerank-english-v3.0"


@dataclass(frozen=True)
class ErrorShape:
    error_type: str  # error.type (the exception class the SDK raises)
    http_status: int | None
    message: str  # status message; may contain {model}, {ms}, {tokens}, {limit}


# provider -> kind of failure -> shape
PROVIDER_ERRORS: dict[str, dict[str, ErrorShape]] = {
    "openai": {
        "rate_limit": ErrorShape(
            "openai.RateLimitError",
            429,
            "Error code: 429 - Rate limit reached for {model} on tokens per min (TPM). Please try again in {ms}ms.",
        ),
        "server": ErrorShape("openai.InternalServerError", 503, "Error code: 503 - The server is overloaded or not ready yet."),
        "timeout": ErrorShape("openai.APITimeoutError", None, "Request timed out."),
    },
    "anthropic": {
        "rate_limit": ErrorShape(
            "anthropic.RateLimitError",
            429,
            "Error code: 429 - rate_limit_error: Number of request tokens has exceeded your per-minute rate limit",
        ),
        "server": ErrorShape("anthropic.InternalServerError", 529, "Error code: 529 - overloaded_error: Overloaded"),
        "timeout": ErrorShape("anthropic.APITimeoutError", None, "Request timed out."),
    },
    "google": {
        "rate_limit": ErrorShape(
            "google.genai.errors.ClientError", 429, "429 RESOURCE_EXHAUSTED. Resource has been exhausted (e.g. check quota)."
        ),
        "server": ErrorShape(
            "google.genai.errors.ServerError", 503, "503 UNAVAILABLE. The model is overloaded. Please try again later."
        ),
        "timeout": ErrorShape("httpx.ReadTimeout", None, "The read operation timed out"),
    },
}
CONTEXT_LENGTH = ErrorShape(
    "context_length_exceeded", 400, "Error code: 400 - prompt is too long: {tokens} tokens > {limit} maximum"
)
TOOL_ERROR = ErrorShape("ToolExecutionError", None, "{tool} failed: {upstream} returned 502 Bad Gateway")
GUARDRAIL_BLOCK = ErrorShape("GuardrailBlocked", None, "Output blocked by guardrail: {reason}")
MAX_ITERATIONS = ErrorShape("MaxIterationsExceeded", None, "Agent stopped after {n} iterations without a final answer")

# client-side timeouts the app configures (seconds)
CHAT_TIMEOUT_S = 30.0
EMBEDDING_TIMEOUT_S = 10.0
