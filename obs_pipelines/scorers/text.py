"""Text helpers the scorers share: words, content words, sentences (plain regexes, no model).

Tokenisation is script-aware: non-ASCII text is NFKC-normalised first (full-width letters and digits become
ASCII ones), and each Chinese / Japanese character (Han, hiragana, katakana) is a word of its own, the
convention word processors use for text written without spaces. Hangul, Cyrillic, Greek, Arabic ... are
split at spaces and punctuation like Latin text.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from functools import lru_cache
from typing import Any

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


# every ASCII punctuation character but "_" (a word character), and common typographic ones, become spaces:
# translate + split run in C, several times faster than a \w+ regex over the same text
_PUNCT = ("".join(c for c in string.punctuation if c != "_")
          + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb\u00bf\u00a1"
          + "\u3001\u3002\u300c\u300d\u300e\u300f\u3010\u3011\u300a\u300b\u3008\u3009\u30fb\uff5e")  # CJK marks
_TO_SPACE = str.maketrans(_PUNCT, " " * len(_PUNCT))
# Han (with extension A and compatibility ideographs), hiragana, katakana: written without spaces
CJK = re.compile("([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")


def normalize(text: str) -> str:
    """NFKC for non-ASCII text (full-width ＡＢＣ１２３ become ABC123, ligatures split); ASCII as it is."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def spaced(text: str) -> str:
    """The lowercased, normalised text with punctuation as spaces and each CJK character set apart: the
    string whose ``split()`` is the word tokens (character for character the same length for ASCII text)."""
    if text.isascii():
        return text.lower().translate(_TO_SPACE)
    text = unicodedata.normalize("NFKC", text).lower().translate(_TO_SPACE)
    return CJK.sub(r" \1 ", text) if CJK.search(text) else text


def tokens(text: str) -> list[str]:
    """Lowercased word tokens: the text split at whitespace and punctuation, each CJK character a token
    (uncached)."""
    return spaced(text).split()


@lru_cache(maxsize=1024)
def words(text: str) -> tuple[str, ...]:
    """Lowercased word tokens (cached: several scorers read the words of the same answer)."""
    return tuple(tokens(text))


@lru_cache(maxsize=1024)
def lower(text: str) -> str:
    """The lowercased text (cached, for the scorers' literal pre-checks)."""
    return text.lower()


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


def _wordy(w: str) -> bool:
    # one-letter Latin tokens carry nothing ("s" of "it's"); a CJK character is a word
    return len(w) > 1 or not w.isascii()


def content_words(text: str) -> list[str]:
    """Stemmed words minus stopwords and one-letter Latin tokens."""
    return [stem(w) for w in tokens(text) if _wordy(w) and w not in STOPWORDS]


@lru_cache(maxsize=256)
def content_union(texts: tuple[str, ...]) -> frozenset[str]:
    """The content words of several texts together (cached: a trace's documents serve several scorers)."""
    return frozenset().union(*(content_set(t) for t in texts))


class _ContentForm(dict):
    """word -> its stem, or "" for a stopword / one-letter Latin token; filled on first sight, so that
    ``map(FORM.__getitem__, words)`` runs in C for every word seen before."""

    def __missing__(self, word: str) -> str:
        form = "" if word in STOPWORDS or not _wordy(word) else stem(word)
        if len(self) < 200_000:  # (bounded: a stream of random tokens must not grow it forever)
            self[word] = form
        return form


_FORM = _ContentForm()


def content_of(token_list) -> frozenset[str]:
    """The stemmed content words among tokens (map and filter run in C; a set of tokens is read as it is)."""
    if not isinstance(token_list, (set, frozenset)):
        token_list = set(token_list)
    return frozenset(filter(None, map(_FORM.__getitem__, token_list)))


@lru_cache(maxsize=4096)
def content_set(text: str) -> frozenset[str]:
    """The set of content words of a text (cached: the same documents come back for many questions)."""
    return content_of(tokens(text))


def sentence_contents(text: str) -> list[tuple[str, frozenset[str]]]:
    """Each sentence of a text (see ``sentences``) with its content words, tokenizing the text once."""
    marked = _mark_sentences(text)
    folded = spaced(marked)  # the same \x00 marks
    out = []
    for original, flat in zip(marked.split("\x00"), folded.split("\x00"), strict=True):
        original = original.strip()
        if original:
            out.append((original, content_of(flat.split())))
    return out


_CITATION = re.compile(r"\[[^\]]{1,40}\]")


def strip_citations(text: str) -> str:
    """The text without bracketed citation marks such as ``[kb-2001]`` or ``[1]``."""
    return _CITATION.sub(" ", text)


def sentences(text: str) -> list[str]:
    """Sentences: split after . ! ? followed by a space, and at line breaks; empty pieces dropped (str
    methods, no regex: this runs on every answer)."""
    return [s for s in (piece.strip() for piece in _mark_sentences(text).split("\x00")) if s]


def _mark_sentences(text: str) -> str:
    marked = text.replace(". ", ".\x00").replace("! ", "!\x00").replace("? ", "?\x00").replace("\n", "\x00")
    if not text.isascii():  # CJK full stops end a sentence without a space after them
        marked = marked.replace("\u3002", "\u3002\x00").replace("\uff01", "\uff01\x00").replace("\uff1f", "\uff1f\x00")
    return marked


def message_text(value: Any, roles: tuple[str, ...]) -> str:
    """The content of the last chat message of one of ``roles`` when ``value`` is a list of chat messages
    (OpenAI / OTel GenAI ``[{"role": ..., "content": ...}]``, as a list or its JSON text; content parts' text
    joined), else ``as_text(value)``: a question scorer must read the user's words, not the JSON around them."""
    messages = value
    if isinstance(value, str):
        if not value.startswith("[{"):
            return value
        try:
            messages = json.loads(value)
        except ValueError:
            return value
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") in roles:
                content = message.get("content")
                if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                    content = " ".join(str(p.get("text") or p.get("content") or "") if isinstance(p, dict) else str(p)
                                       for p in content)
                if content:
                    return str(content)
    return as_text(value)


def as_text(value: Any) -> str:
    """A value as text: strings as they are, everything else as JSON (or str)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
