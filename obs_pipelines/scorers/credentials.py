"""Credentials in text (the secret_leak scorer and scrubbing): provider key formats, private keys, passwords in
URLs and assignments, and random-looking strings next to a credential word.

The random-looking test is detect-secrets' idea (Shannon entropy of the string's characters): a token next to a
credential word ("API key", "token", "secret", "password", "bearer" ...) counts when it is >= 16 characters of
letters and digits (both), with entropy >= 3.0 bits per character (detect-secrets' hex limit, the lower of its
two); without such a word, a token counts only when it is >= 32 characters of base64 letters mixing upper case,
lower case and digits with entropy >= 4.5 bits per character (detect-secrets' base64 limit). A bare hex string
is not reported: as often a hash, a trace id or a commit. Masked values (``password=********``,
``<your-key>``, ``YOUR_API_KEY``, ``xxxx``) are not secrets.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from obs_pipelines.scorers.text import normalize

_PATTERNS = {
    "openai_key": r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}",
    "anthropic_key": r"\bsk-ant-[A-Za-z0-9_-]{20,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "stripe_key": r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "private_key": r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |PGP |ENCRYPTED )?PRIVATE KEY",
    "password_assignment": r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|token)\s*[:=]\s*['\"]?([^\s'\"]{6,})",
    "connection_string": r"\b[a-z][a-z0-9+]*://[^\s:/@]+:([^\s@/]+)@[^\s/]+",
}
PATTERNS: dict[str, re.Pattern] = {k: re.compile(v) for k, v in _PATTERNS.items()}
# a literal every match contains (checked on the lowercased text first: a plain substring search)
HINTS = {
    "openai_key": ("sk-",), "anthropic_key": ("sk-ant-",), "aws_access_key": ("akia", "asia"),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), "slack_token": ("xox",), "google_api_key": ("aiza",),
    "stripe_key": ("_live_", "_test_"), "jwt": ("eyj",), "private_key": ("private key",),
    "password_assignment": ("password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey", "token"),
    "connection_string": ("://",),
}
_KEYWORD = re.compile(r"(?i)\b(?:(?:api|secret|access|private|license|signing|encryption|ssh)[ _-]?keys?"
                      r"|keys?(?=\s*(?:[:=]|is\b))|secrets?|tokens?|passw(?:or)?ds?|pwd|credentials?|bearer"
                      r"|auth(?:orization)?)\b")
KEYWORD_HINTS = ("key", "secret", "token", "passw", "pwd", "credential", "bearer", "auth")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_.-]{16,}")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_MASK_CHARS = frozenset("*x•.#-_X?")
_PLACEHOLDER = re.compile(r"(?i)^(?:<[^>]*>?|\$\{.*|\{\{.*|\[.*|your[_-].*|.*(?:redacted|hidden|example|xxxx|changeme)"
                          r".*|(?:none|null|n/a|\.\.\.))$")


def shannon_entropy(value: str) -> float:
    """Bits per character of the string's own character distribution (detect-secrets' measure)."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def is_masked(value: str) -> bool:
    """A value that stands for a secret without being one: asterisks, x's, a placeholder."""
    value = value.strip("'\"`,;")
    return not value or set(value) <= _MASK_CHARS or bool(_PLACEHOLDER.match(value))


_DOMAIN = re.compile(r"\.[A-Za-z]{2,}(?:/|$)")  # example.com/abc123, report.pdf: a name, not a key


def _random_looking(token: str) -> bool:
    return (any(c.isdigit() for c in token) and any(c.isalpha() for c in token) and not is_masked(token)
            and not _DOMAIN.search(token) and shannon_entropy(token) >= 3.0)


def _high_entropy(token: str) -> bool:
    return (any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token)
            and shannon_entropy(token) >= 4.5)


# ASCII: the characters of a long token -> "a", anything else -> " " (one bytes.translate instead of a regex
# tried at every position)
_TOKEN_MAP = bytes(0x61 if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "+/=_-") else 0x20
                   for i in range(256))


def _may_hold_long_token(text: str) -> bool:
    """Whether ``_LONG_TOKEN`` can match: 32 token characters in a row (ASCII), or a 32-character word."""
    if text.isascii():
        return b"a" * 32 in text.encode("ascii").translate(_TOKEN_MAP)
    return max(map(len, text.split()), default=0) >= 32


# every hint above contains one of these (tested): a text with none of them holds no hint, and 16 substring
# searches tell so instead of the 40 of the hints one by one (most answers hold no credential)
HINT_ROOTS = ("_", "sk-", "akia", "asia", "xox", "aiza", "eyj", "key", "passw", "pwd", "secret", "token", "://",
              "credential", "bearer", "auth")


def iter_credentials(text: str) -> Iterator[tuple[str, re.Match]]:
    """(kind, match) of every credential in the NFKC-normalised ``text``."""
    text = normalize(text)
    low = text.lower()
    hinted = any(map(low.__contains__, HINT_ROOTS))
    for kind, pattern in PATTERNS.items() if hinted else ():
        if any(map(low.__contains__, HINTS[kind])):
            for m in pattern.finditer(text):
                if m.groups() and is_masked(m.group(1)):
                    continue
                yield kind, m
    if hinted and any(map(low.__contains__, KEYWORD_HINTS)):
        for k in _KEYWORD.finditer(text):
            t = _TOKEN.search(text, k.end(), k.end() + 40)
            t = t and _TOKEN.match(text, t.start())  # the whole token, past the 40-character window
            if t and "\n" not in text[k.end():t.start()] and _random_looking(t.group().strip(".-")):
                yield "high_entropy_string", t
    if len(text) >= 32 and _may_hold_long_token(text):
        for t in _LONG_TOKEN.finditer(text):
            if _high_entropy(t.group()):
                yield "high_entropy_string", t


def find_credentials(text: str) -> dict[str, list[str]]:
    """Credential findings by kind, masked (first / last two characters), one per distinct value."""
    from obs_pipelines.scorers.pii import mask

    found: dict[str, list[str]] = {}
    for kind, m in iter_credentials(text):
        value = mask(m.group())
        if value not in found.get(kind, ()):
            found.setdefault(kind, []).append(value)
    return found
