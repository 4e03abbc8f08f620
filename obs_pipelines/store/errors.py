"""Error classes of failed spans, from the exception type, the message and the span kind.

Classes (the first rule of ``_RULES`` that matches wins; see below for rate limits vs outages):

=================  ====================================================================================
guardrail_block    a guardrail span, or GuardrailBlocked / content_filter / content policy wording
tool_error         a tool span, or ToolExecutionError / ToolException wording
context_length     context_length_exceeded, "maximum context length", "prompt is too long" ...
rate_limit         HTTP 429, RateLimitError, rate_limit_exceeded / rate_limit_error, Bedrock
                   ThrottlingException, "too many requests", RESOURCE_EXHAUSTED, quota exhausted
provider_5xx       the provider's capacity failing (an outage): HTTP 5xx except 504 (Anthropic's 529
                   included), InternalServerError, ServiceUnavailable(Exception), Anthropic overloaded_error,
                   gRPC / Vertex UNAVAILABLE, "overloaded", APIConnectionError, bad gateway, connection
                   reset / refused
timeout            APITimeoutError, Timeout, "timed out", deadline exceeded, HTTP 408 / 504
auth               AuthenticationError, PermissionDenied, HTTP 401 / 403, invalid API key
invalid_request    BadRequestError, HTTP 400 / 404 / 413 / 422, invalid_request_error, "invalid"
other              anything else
=================  ====================================================================================

Guardrail and tool spans come first: a tool that timed out is a tool failure, not a provider timeout.
Context-length errors are HTTP 400s, so they are tested before the generic invalid-request rule, and auth
before invalid-request because "invalid api key" is an auth problem.

Rate limit and outage are told apart by the strongest signal first: an HTTP status code (in the message,
as the error type, or the span's ``http.response.status_code`` attribute: column ``status_code``) decides
(429 -> rate_limit, 5xx / 529 -> provider_5xx), then the exception class (RateLimitError vs
InternalServerError / overloaded_error / ServiceUnavailable / UNAVAILABLE), then wording. An overloaded
provider is an outage even when it asks to back off (Anthropic's 529): counting it as rate_limit hid a
whole Anthropic outage ("241 rate_limit + 67 timeout, 0 provider_5xx").

``classify_errors`` is vectorized (``str.contains`` over lower-cased text, no loop over rows);
``classify_error`` is the same rules for one error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ERROR_CLASSES: tuple[str, ...] = (
    "rate_limit",
    "provider_5xx",
    "timeout",
    "context_length",
    "invalid_request",
    "auth",
    "tool_error",
    "guardrail_block",
    "other",
)

# an HTTP status code as SDKs and gateways print it: "Error code: 429", "status 503", "HTTP/1.1 502",
# "status_code=500", or a bare code as the whole error type
_STATUS = r"(?:error code|status[ _]?code|status|http(?:/\d(?:\.\d)?)?|code)\W{0,3}"


def _codes(pattern: str) -> str:
    return rf"(?:{_STATUS}(?:{pattern})\b|^\s*(?:{pattern})\s*(?:\||$))"


# (class, regex over "<error_type> | <error_message> | status <code>" lower-cased, span kinds that imply
# the class); the first rule that matches wins, and a class may have several rules at different ranks
_OUTAGE_CODES = r"50[0-35-9]|5[1-9]\d"  # 5xx but 504 (a gateway timeout is a timeout)
_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "guardrail_block",
        r"guardrail|content[_ ]?filter|content[_ ]?policy|contentpolicy|blocked by (?:the )?(?:safety|moderation)",
        ("guardrail",),
    ),
    ("tool_error", r"tool[_ ]?execution|toolexception|tool[_ ]?error|toolcallerror", ("tool",)),
    (
        "context_length",
        r"context[_ ]length|maximum context|context window|prompt is too long|too many tokens"
        r"|input is too long|max_tokens_exceeded|token limit",
        (),
    ),
    # status codes first: they are what the provider meant
    ("rate_limit", _codes("429"), ()),
    ("provider_5xx", _codes(_OUTAGE_CODES), ()),
    # then exception classes / error codes
    (
        "rate_limit",
        r"ratelimit|rate_limit_(?:exceeded|error)|throttlingexception|resource[_ ]?exhausted",
        (),
    ),
    (
        "provider_5xx",
        r"internal[_ ]?server[_ ]?error|service[_ ]?unavailable|overloaded[_ ]?error|\bunavailable\b",
        (),
    ),
    # then wording
    ("rate_limit", r"rate[_ ]?limit|too many requests|quota|throttl", ()),
    ("timeout", r"time[_ ]?out|timed out|deadline|" + _codes("408|504"), ()),
    (
        "provider_5xx",
        r"server error|overloaded|apiconnectionerror|api connection|connection (?:error|reset|refused|aborted)"
        r"|bad gateway|upstream",
        (),
    ),
    (
        "auth",
        r"authenticat|permission[_ ]?denied|unauthori[sz]ed|forbidden|api[_ ]?key|access denied"
        r"|" + _codes("401|403"),
        (),
    ),
    (
        "invalid_request",
        r"bad[_ ]?request|invalid|unprocessable|validation|not[_ ]?found|" + _codes("400|404|413|422"),
        (),
    ),
)
# kinds whose http.response.status_code is the answer of a provider the span called (a root span's code
# is the app's own answer, e.g. a 500 for a bug: no provider outage)
CLIENT_KINDS: tuple[str, ...] = ("llm", "embedding", "reranker", "retrieval")
# SQL of the HTTP status a span received (OTel's current and deprecated attribute names), the classifier's
# ``status_code`` column, keyed by "is PostgreSQL"; SQLite's json_extract raises on malformed JSON, which an app
# writing spans directly may store
STATUS_CODE_SQL: dict[bool, str] = {
    True: "COALESCE(attributes->>'http.response.status_code', attributes->>'http.status_code')",
    False: """CASE WHEN json_valid(attributes) THEN COALESCE(json_extract(attributes, '$."http.response.status_code"'),
                                                        json_extract(attributes, '$."http.status_code"')) END""",
}


def classify_errors(frame: pd.DataFrame) -> pd.Series:
    """Error class per row of ``frame`` (columns ``error_type``, ``error_message``, ``kind``, optionally
    ``status_code``: the span's HTTP status, used on client kinds); index preserved. Every row is
    classified: filter to failed spans first."""
    n = len(frame)
    if n == 0:
        return pd.Series([], index=frame.index, dtype="object", name="error_class")

    def col(name: str) -> pd.Series:
        if name not in frame:
            return pd.Series("", index=frame.index, dtype="object")
        return frame[name].astype("object").where(frame[name].notna(), "").astype(str)

    kind_col = col("kind").str.lower()
    full_text = (col("error_type") + " | " + col("error_message").str.slice(0, 2000)).str.lower()
    full_text = full_text + _status_suffix(frame, kind_col)
    # errors repeat (same SDK message over and over): classify each distinct (text, kind) once
    keys = pd.DataFrame({"text": full_text, "kind": kind_col})
    codes = keys.groupby(["text", "kind"], sort=False).ngroup().to_numpy()
    uniques = keys.drop_duplicates().reset_index(drop=True)  # same order as ngroup with sort=False
    text, kind = uniques["text"], uniques["kind"]

    conditions = []
    for _name, pattern, kinds in _RULES:
        cond = text.str.contains(pattern, regex=True).to_numpy(dtype=bool, copy=True)
        if kinds:
            cond |= kind.isin(kinds).to_numpy(dtype=bool)
        conditions.append(cond)
    labels = np.select(conditions, [name for name, _, _ in _RULES], default="other")
    return pd.Series(labels[codes], index=frame.index, dtype="object", name="error_class")


def _status_suffix(frame: pd.DataFrame, kind: pd.Series) -> pd.Series:
    """`` | status <code>`` for rows of a client kind with a numeric HTTP status, else ''."""
    if "status_code" not in frame:
        return pd.Series("", index=frame.index, dtype="object")
    code = pd.to_numeric(frame["status_code"], errors="coerce")
    usable = code.between(100, 599) & kind.isin(CLIENT_KINDS)
    return (" | status " + code.where(usable).astype("Int64").astype(str)).where(usable, "")


def classify_error(
    error_type: str | None, error_message: str | None, kind: str | None = None, status_code: int | None = None
) -> str:
    """Error class of one failed span (same rules as :func:`classify_errors`)."""
    frame = pd.DataFrame(
        {"error_type": [error_type], "error_message": [error_message], "kind": [kind], "status_code": [status_code]},
        dtype="object",
    )
    return str(classify_errors(frame).iloc[0])


__all__ = ["CLIENT_KINDS", "ERROR_CLASSES", "classify_error", "classify_errors"]
