"""The specifics of a text that an answer must not invent: quantities (numbers with their unit: money, percent,
durations, counts of things), dates, times of day, named entities, and the polarity of a sentence (negated
or not). Groundedness checks each of the answer's specifics against the evidence (documents, tool results,
the question).

Normalisation, so that the same fact written two ways meets itself:
* numbers: digits with thousands commas (1,200), decimals, and the English number words zero to ninety
  ("five days"); "a" / "an" before a duration is one ("within an hour");
* money: $ / USD / dollars, € / EUR / euros, £ / GBP / pounds, ¥ / JPY / yen, CHF / francs: (amount, code);
* percent: %, percent, per cent;
* durations: minutes, hours, days and weeks in minutes (2 weeks = 14 days, 24 hours = 1 day); months,
  years, business / working days are their own units;
* other units: the next word, stemmed ("3 bags" is (3, bag)); a number with no unit is a bare number;
* dates: "March 5", "5 March", "5th of March", ISO 2024-03-05 as (month, day); times: 17:00, 5 pm, 5:30pm
  as minutes after midnight;
* entities: a capitalised word that does not start a sentence (at the start, a name cannot be told from an
  ordinary word), longer than two letters, not a stopword; and codes of letters then digits (LX318, AB12CD);
* polarity: a verbal negation (not, n't, no, never, cannot, without, none, nothing, neither, nor) and the
  prefix non- ("non-refundable") are two separate marks; a sentence opening "No," is not counted negated.

What it cannot see: paraphrased quantities beyond those rules ("a fortnight", "half an hour"), conversions of
money or of months into days, entities at the start of a sentence, antonyms ("free" vs "charged").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from obs_pipelines.online_evals.scorers.text import STOPWORDS, normalize, spaced, stem

_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_WORD_NUMBERS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                      "ninety": 90})
_MINUTES = {"minute": 1, "minutes": 1, "min": 1, "mins": 1, "hour": 60, "hours": 60, "hr": 60, "hrs": 60,
            "h": 60, "day": 1440, "days": 1440, "week": 10080, "weeks": 10080, "wk": 10080, "wks": 10080}
_OWN_UNITS = {"month": "month", "months": "month", "year": "year", "years": "year", "yr": "year", "yrs": "year",
              "second": "second", "seconds": "second", "sec": "second", "secs": "second"}
_QUALIFIED = {"business", "working", "calendar", "banking", "school"}  # "5 business days" is no 5 days
_CURRENCY_WORDS = {"dollar": "USD", "dollars": "USD", "usd": "USD", "euro": "EUR", "euros": "EUR", "eur": "EUR",
                   "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "yen": "JPY", "jpy": "JPY", "franc": "CHF",
                   "francs": "CHF", "chf": "CHF", "cad": "CAD", "aud": "AUD"}
_CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_MONTHS = {m: i + 1 for i, name in enumerate(
    "january february march april may june july august september october november december".split())
    for m in (name, name[:3], "sept" if name == "september" else name[:3])}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"

_NUMBER = re.compile(r"(?<![\w.,/-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d,]*\.\d)")
_UNIT = re.compile(r"\s?(%|[a-z]+)(?:[\s-]([a-z]+))?")
_DATE = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b|\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b"
                   r"|\b(\d{4})-(\d{2})-(\d{2})\b")
_TIME = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s?([ap])\.?m\b\.?|\b(\d{1,2}):(\d{2})\b")
_ENTITY = re.compile(r"(?<=[a-z0-9,;)] )[A-Z][A-Za-z]*[A-Za-z]")
_LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")
_URL = re.compile(r"https?://\S+|www\.\S+")
NEGATIONS = frozenset("not no never cannot t without none nothing neither nor nobody nowhere".split())
_OPENING_NO = re.compile(r"^\W*no\b\W*[,.!]", re.IGNORECASE)

Quantity = tuple[float, str | None]


@dataclass
class Facts:
    """The specifics of one text: quantities as {value: {units}} (None = bare), dates, times, lowercase words."""

    quantities: dict[float, set] = field(default_factory=dict)
    dates: set = field(default_factory=set)
    times: set = field(default_factory=set)
    words: frozenset = frozenset()

    def merge(self, other: "Facts") -> None:
        for value, units in other.quantities.items():
            self.quantities.setdefault(value, set()).update(units)
        self.dates |= other.dates
        self.times |= other.times
        self.words = self.words | other.words


def _unit(text: str, end: int) -> tuple[str | None, int]:
    """The unit after a number ending at ``end`` (lowercased text) and where it ends."""
    m = _UNIT.match(text, end)
    if not m:
        return None, end
    first, second = m.group(1), m.group(2)
    if first == "%":
        return "%", m.end(1)
    if first == "per" and second == "cent" or first == "percent":
        return "%", m.end()
    if first in _QUALIFIED and second in _MINUTES and _MINUTES[second] == 1440:
        return f"{first} day", m.end()
    if first in _MINUTES:
        return "minutes", m.end(1)
    if first in _OWN_UNITS:
        return _OWN_UNITS[first], m.end(1)
    if first in _CURRENCY_WORDS:
        return _CURRENCY_WORDS[first], m.end(1)
    if first in STOPWORDS or len(first) < 2:
        return None, end
    return stem(first), m.end(1)


def _currency_before(text: str, start: int) -> str | None:
    before = text[max(0, start - 4):start].rstrip()
    if before[-1:] in _CURRENCY_SIGNS:
        return _CURRENCY_SIGNS[before[-1]]
    return _CURRENCY_WORDS.get(before[-3:].lower()) if before[-3:].isalpha() else None


def _quantity(value: float, unit: str | None, currency: str | None) -> Quantity:
    if currency:
        return value, currency
    if unit == "minutes":
        return value, "minutes"
    return value, unit


def quantities(text: str, low: str) -> list[tuple[int, int, Quantity]]:
    """(start, end, (value, unit)) of the numbers of a text; ``low`` is the text lowercased (same length).
    Numbers inside dates and times are not included (see dates / times)."""
    out = []
    taken = [m.span() for m in _DATE.finditer(low)] + [m.span() for m in _TIME.finditer(low)]
    taken += [m.span() for m in _LIST_MARKER.finditer(low)] + [m.span() for m in _URL.finditer(low)]
    for m in _NUMBER.finditer(low):
        if any(a <= m.start() < b for a, b in taken):
            continue
        value = float(m.group(1).replace(",", "") + (m.group(2) or ""))
        unit, end = _unit(low, m.end())
        if unit == "minutes":
            word = low[m.end():end].strip()
            value *= _MINUTES[word]
        out.append((m.start(), end, _quantity(value, unit, _currency_before(text, m.start()))))
    if not _WORD_NUMBERS.keys().isdisjoint(low.split()) or " a " in low or " an " in low:
        for m in _WORDED.finditer(low):
            word = m.group(1)
            value = 1.0 if word in ("a", "an") else float(_WORD_NUMBERS[word])
            unit, end = _unit(low, m.end())
            if unit is None or (word in ("a", "an") and unit != "minutes"):
                continue  # "one of our agents", "a bag": no quantity to check
            if unit == "minutes":
                value *= _MINUTES[low[m.end():end].strip()]
            out.append((m.start(), end, (value, unit)))
    return out


_WORDED = re.compile(r"\b(" + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True)) + r"|an?)\b")


def dates(low: str) -> set[tuple[int, int]]:
    out = set()
    for m in _DATE.finditer(low):
        if m.group(1):
            month, day = _MONTHS.get(m.group(1)[:3]), int(m.group(2))
        elif m.group(3):
            month, day = _MONTHS.get(m.group(4)[:3]), int(m.group(3))
        else:
            month, day = int(m.group(6)), int(m.group(7))
        if month and 1 <= day <= 31:
            out.add((month, day))
    return out


def times(low: str) -> set[int]:
    out = set()
    for m in _TIME.finditer(low):
        if m.group(3):
            hour, minute = int(m.group(1)) % 12 + (12 if m.group(3) == "p" else 0), int(m.group(2) or 0)
        else:
            hour, minute = int(m.group(4)), int(m.group(5))
        if hour < 24 and minute < 60:
            out.add(hour * 60 + minute)
    return out


def entities(sentence: str) -> list[str]:
    """Capitalised words that do not start the sentence, lowercased (stopwords and <= 2 letters left out)."""
    out = []
    for m in _ENTITY.finditer(sentence):
        word = m.group().lower()
        if len(word) > 2 and word not in STOPWORDS:
            out.append(word)
    return out


def polarity(sentence: str, words: frozenset[str] | set[str]) -> tuple[bool, bool]:
    """(verbal negation, non- prefix) of a sentence, given its lowercase words."""
    negated = not NEGATIONS.isdisjoint(words)
    if negated and "no" in words and _OPENING_NO.match(sentence):
        negated = not NEGATIONS.isdisjoint(set(spaced(_OPENING_NO.sub(" ", sentence, count=1)).split()))
    return negated, "non" in words


@lru_cache(maxsize=4096)
def facts_of(text: str) -> Facts:
    """The specifics of an evidence text (cached: the same documents come back for many questions)."""
    text = normalize(text)
    low = text.lower()
    found = Facts(words=frozenset(spaced(text).split()))
    for _s, _e, (value, unit) in quantities(text, low):
        found.quantities.setdefault(value, set()).add(unit)
    if _HAS_DIGIT.search(low):
        found.dates, found.times = dates(low), times(low)
    return found


def supported(quantity: Quantity, evidence: Facts) -> bool:
    """A quantity is supported when the evidence has the same value with the same unit, or as a bare number."""
    units = evidence.quantities.get(quantity[0])
    return bool(units) and (quantity[1] is None or quantity[1] in units or None in units)


def checked(quantity: Quantity) -> bool:
    """Whether a quantity of the answer is worth checking: any number with a unit, a bare number from 10 up or
    with decimals ("option 2", "step 3" are not facts)."""
    value, unit = quantity
    return unit is not None or value >= 10 or value != int(value)


@dataclass
class Claim:
    """One sentence of an answer with what groundedness checks: its content words, specifics, polarity."""

    text: str
    content: frozenset
    words: frozenset
    quantities: list = field(default_factory=list)  # (text, (value, unit))
    dates: set = field(default_factory=set)
    times: set = field(default_factory=set)
    entities: list = field(default_factory=list)

    def unsupported(self, evidence: list[Facts]) -> list[str]:
        """The specifics of this sentence that no evidence holds, as short descriptions."""
        missing = [t for t, q in self.quantities if checked(q) and not any(supported(q, e) for e in evidence)]
        missing += [f"date {m}/{d}" for m, d in self.dates if not any((m, d) in e.dates for e in evidence)]
        missing += [f"time {t // 60:02d}:{t % 60:02d}" for t in self.times
                    if not any(t in e.times for e in evidence)]
        missing += [w for w in self.entities + self.identifiers if not any(w in e.words for e in evidence)]
        return missing

    @property
    def identifiers(self) -> list[str]:
        """Codes that mix letters then digits (flight LX318, booking AB12CD, plan v2): names, not numbers."""
        return [w for w in self.words if len(w) > 2 and _IDENTIFIER.match(w)]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n\s*|(?<=[\u3002\uff01\uff1f])")
_CITATION = re.compile(r"\[[^\]]{1,40}\]")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


@lru_cache(maxsize=1024)
def claims_of(text: str) -> tuple[Claim, ...]:
    """The sentences of an answer (bracketed citations removed) with their content words and specifics; each
    pattern runs once over the whole answer (cached: several scorers read the same answer)."""
    from bisect import bisect_right

    from obs_pipelines.online_evals.scorers.text import content_of

    text = _CITATION.sub(" ", normalize(text))
    low = text.lower()
    spans = _sentence_spans(text)
    claims = []
    for a, b in spans:
        sentence = text[a:b].strip()
        words = spaced(sentence).split()
        claims.append(Claim(sentence, content_of(words), frozenset(words)))
    if not claims:
        return ()
    starts = [a for a, _b in spans]

    def owner(position: int) -> Claim:
        return claims[max(0, bisect_right(starts, position) - 1)]

    digits = _HAS_DIGIT.search(low) is not None
    if digits or not _WORD_NUMBERS.keys().isdisjoint(low.split()) or " a " in low or " an " in low:
        for start, end, quantity in quantities(text, low):
            owner(start).quantities.append((text[start:end].strip(), quantity))
    if digits:
        for m in _DATE.finditer(low):
            owner(m.start()).dates |= dates(m.group())
        for m in _TIME.finditer(low):
            owner(m.start()).times |= times(m.group())
    for m in _ENTITY.finditer(text):
        word = m.group().lower()
        if len(word) > 2 and word not in STOPWORDS:
            owner(m.start()).entities.append(word)
    return tuple(claims)


_HAS_DIGIT = re.compile(r"\d")
_IDENTIFIER = re.compile(r"[a-z]+\d")


@dataclass(frozen=True)
class EvidenceSentence:
    content: frozenset
    polarity: tuple[bool, bool]


@lru_cache(maxsize=4096)
def evidence_sentences(text: str) -> tuple[tuple[EvidenceSentence, ...], tuple[EvidenceSentence, ...]]:
    """(every sentence, the sentences with a negation mark) of an evidence text, with content words and
    polarity (cached per document; built only when an answer needs a polarity check)."""
    from obs_pipelines.online_evals.scorers.text import content_of

    text = normalize(text)
    out = []
    for a, b in _sentence_spans(text):
        sentence = text[a:b]
        words = spaced(sentence).split()
        out.append(EvidenceSentence(content_of(words), polarity(sentence, frozenset(words))))
    return tuple(out), tuple(s for s in out if s.polarity != (False, False))
