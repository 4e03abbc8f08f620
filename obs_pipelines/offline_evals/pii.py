"""PII scrubbing of regression cases: every value the safety scorers would flag becomes a typed placeholder
(``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<OPENAI_KEY>`` ...), so a dataset exported to a repository or a CI
log never carries a user's data.

The detectors are the safety scorers' own (online_evals/scorers/safety.py: the same patterns and checksums),
so what the online phase calls a leak is exactly what is scrubbed here. The scorers report masked findings;
scrubbing needs the positions, hence this module walks the same patterns itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from obs_pipelines.online_evals.scorers import safety

_digits = re.compile(r"\D")


def _card(match: re.Match) -> bool:
    digits = _digits.sub("", match.group())
    return 13 <= len(digits) <= 19 and safety.luhn_valid(digits)


def _phone(match: re.Match) -> bool:
    return 8 <= len(_digits.sub("", match.group())) <= 15 and not safety.PII_PATTERNS["ip"].fullmatch(match.group())


# (placeholder kind, pattern, accept) in the order they are replaced: credentials first (a key holds digit
# runs a phone pattern would take), card numbers before phone numbers (the same digit groups)
_DETECTORS: list[tuple[str, re.Pattern, Callable[[re.Match], bool] | None]] = [
    *((kind, pattern, None) for kind, pattern in safety.SECRET_PATTERNS.items()),
    ("card", safety.PII_PATTERNS["card"], _card),
    ("email", safety.PII_PATTERNS["email"], None),
    ("iban", safety.PII_PATTERNS["iban"], lambda m: safety.iban_valid(m.group())),
    ("ssn", safety.PII_PATTERNS["ssn"], None),
    ("national_id", safety.PII_PATTERNS["national_id"], None),
    ("phone", safety.PII_PATTERNS["phone"], _phone),
    ("ip", safety.PII_PATTERNS["ip"], None),
]
KINDS = tuple(kind for kind, _p, _a in _DETECTORS)


def placeholder(kind: str) -> str:
    return f"<{kind.upper()}>"


def scrub(text: str | None, counts: dict[str, int] | None = None) -> str | None:
    """``text`` with every detected value replaced by its typed placeholder; ``counts`` (if given) gains
    the number of replacements per kind."""
    if not text:
        return text
    for kind, pattern, accept in _DETECTORS:
        def replace(match: re.Match, kind=kind, accept=accept) -> str:
            if accept is not None and not accept(match):
                return match.group()
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
            return placeholder(kind)

        text = pattern.sub(replace, text)
    return text
