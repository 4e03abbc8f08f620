"""Error classes of failed spans, from the exception type, the message and the span kind.

Classes (first rule that matches wins, in this order):

=================  ====================================================================================
guardrail_block    a guardrail span, or GuardrailBlocked / content_filter / content policy wording
tool_error         a tool span, or ToolExecutionError / ToolException wording
context_length     context_length_exceeded, "maximum context length", "prompt is too long" ...
rate_limit         RateLimitError, HTTP 429, "rate limit", "too many requests", quota exhausted,
                   Anthropic's overloaded_error / OverloadedError / HTTP 529 (Anthropic's own back-off
                   signal), or "overloaded" reported by an anthropic provider
timeout            APITimeoutError, Timeout, "timed out", deadline exceeded, HTTP 408 / 504
provider_5xx       InternalServerError, HTTP 5xx, ServiceUnavailable, "overloaded", APIConnectionError,
                   bad gateway, connection reset / refused
auth               AuthenticationError, PermissionDenied, HTTP 401 / 403, invalid API key
invalid_request    BadRequestError, HTTP 400 / 404 / 413 / 422, invalid_request_error, "invalid"
other              anything else
=================  ====================================================================================

Guardrail and tool spans come first: a tool that timed out is a tool failure, not a provider timeout.
Context-length errors are HTTP 400s, so they are tested before the generic invalid-request rule, and auth
before invalid-request because "invalid api key" is an auth problem.

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


# (class, regex over "<error_type> | <error_message>" lower-cased, span kinds that imply the class)
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
    (
        "rate_limit",
        r"rate[_ ]?limit|ratelimit|too many requests|resource[_ ]?exhausted|quota|throttl"
        r"|overloaded_?error|" + _codes("429|529"),
        (),
    ),
    (
        "timeout",
        r"time[_ ]?out|timed out|deadline|" + _codes("408|504"),
        (),
    ),
    (
        "provider_5xx",
        r"internal[_ ]?server[_ ]?error|server error|service[_ ]?unavailable|bad gateway|overloaded"
        r"|apiconnectionerror|api connection|connection (?:error|reset|refused|aborted)|upstream"
        r"|" + _codes(r"5\d\d"),
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


def classify_errors(frame: pd.DataFrame) -> pd.Series:
    """Error class per row of ``frame`` (columns ``error_type``, ``error_message``, ``kind``, optionally
    ``provider``); index preserved. Every row is classified: filter to failed spans first."""
    n = len(frame)
    if n == 0:
        return pd.Series([], index=frame.index, dtype="object", name="error_class")

    def col(name: str) -> pd.Series:
        if name not in frame:
            return pd.Series("", index=frame.index, dtype="object")
        return frame[name].astype("object").where(frame[name].notna(), "").astype(str)

    full_text = (col("error_type") + " | " + col("error_message").str.slice(0, 2000)).str.lower()
    # errors repeat (same SDK message over and over): classify each distinct (text, kind, provider) once
    keys = pd.DataFrame({"text": full_text, "kind": col("kind").str.lower(), "provider": col("provider").str.lower()})
    codes = keys.groupby(["text", "kind", "provider"], sort=False).ngroup().to_numpy()
    uniques = keys.drop_duplicates().reset_index(drop=True)  # same order as ngroup with sort=False
    text, kind, provider = uniques["text"], uniques["kind"], uniques["provider"]

    conditions = []
    for name, pattern, kinds in _RULES:
        cond = text.str.contains(pattern, regex=True).to_numpy(dtype=bool, copy=True)
        if kinds:
            cond |= kind.isin(kinds).to_numpy(dtype=bool)
        if name == "rate_limit":  # Anthropic's "Overloaded" is its back-pressure signal, like a 429
            cond |= (provider.str.contains("anthropic") & text.str.contains("overloaded")).to_numpy(dtype=bool)
        conditions.append(cond)
    labels = np.select(conditions, [name for name, _, _ in _RULES], default="other")
    return pd.Series(labels[codes], index=frame.index, dtype="object", name="error_class")


def classify_error(
    error_type: str | None, error_message: str | None, kind: str | None = None, provider: str | None = None
) -> str:
    """Error class of one failed span (same rules as :func:`classify_errors`)."""
    frame = pd.DataFrame(
        {"error_type": [error_type], "error_message": [error_message], "kind": [kind], "provider": [provider]},
        dtype="object",
    )
    return str(classify_errors(frame).iloc[0])


__all__ = ["ERROR_CLASSES", "classify_error", "classify_errors"]
