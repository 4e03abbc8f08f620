"""PII scrubbing of regression cases: every value the safety scorers would flag becomes a typed placeholder
(``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<OPENAI_KEY>`` ...), so a dataset exported to a repository or a CI
log never carries a user's data.

The detectors are the project's one set (scorers/pii.py and credentials.py: the same patterns,
checksums and entropy checks the pii_leak and secret_leak scorers use), so what the online phase calls a
leak is exactly what is scrubbed here; this module only names the entry point the datasets use.
"""

from __future__ import annotations

from obs_pipelines.scorers import pii as detectors


def scrub(text: str | None, counts: dict[str, int] | None = None) -> str | None:
    """``text`` with every detected value (PII and credentials) replaced by its typed placeholder; ``counts``
    (if given) gains the number of replacements per kind."""
    return detectors.scrub(text, counts)
