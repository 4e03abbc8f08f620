"""Text helpers the scorers share: words, content words, sentences (plain regexes, no model)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

# English function words: they carry no evidence that a sentence is supported by a document
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
ours out over own same she should so some such than that the their theirs them then there these they this those
through to too under until up very was we were what when where which while who whom why will with would you your
yours may might must shall also s t don
""".split()) | frozenset(
    # conversational filler: a "Sure." or "Anything else I can help with?" is neither supported nor not
    "sure anything else help let know please thanks thank question questions good great here found hi hello "
    "happy glad hope".split())


def words(text: str) -> list[str]:
    """Lowercased word tokens."""
    return _WORD.findall(text.lower())


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude English suffix stripper (cancelled / cancel, orders / order, charged / charge all meet),
    enough for lexical support; a real stemmer costs more than the rest of a scorer."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("ly", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + keep
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]  # shipp -> ship (but not "all", "class")
    if len(word) > 3 and word[-1] == "l" and word[-2] == "l":
        word = word[:-1]  # cancell -> cancel
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Stemmed words minus stopwords and one-letter tokens."""
    return [stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1]


@lru_cache(maxsize=4096)
def content_set(text: str) -> frozenset[str]:
    """The set of content words of a text (cached: the same documents come back for many questions)."""
    return frozenset(content_words(text))


_CITATION = re.compile(r"\[[^\]]{1,40}\]")


def strip_citations(text: str) -> str:
    """The text without bracketed citation marks such as ``[kb-2001]`` or ``[1]``."""
    return _CITATION.sub(" ", text)


def sentences(text: str) -> list[str]:
    """Sentences: split after . ! ? followed by space, and at line breaks; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def as_text(value: Any) -> str:
    """A value as text: strings as they are, everything else as JSON (or str)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
