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
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from obs_pipelines.scorers.text import STOPWORDS, normalize, spaced, stem

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

# patterns start with a digit or a literal so that the regex engine skips ahead in C; the word boundaries
# they would need in front are checked on the character before the match instead
_NUMBER = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")  # ([0-9] scans faster than \d)
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?$|\d+(?:\.\d+)?$")
_UNIT = re.compile(r"\s?(%|[a-z]+)(?:[\s-]([a-z]+))?")
_ISO_HINT = re.compile(r"-[0-9][0-9]-")
_COLON_TIME = re.compile(r":[0-9][0-9]")
_MONTH_WORDS = frozenset(_MONTHS) | {"june", "july", "sept"}
_TIME = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?\s?([ap])\.?m\b\.?|([0-9]{1,2}):([0-9]{2})\b")
# a capital letter after a lower-case letter, digit, comma, semicolon or ")" and one space; the pattern opens with
# the capital (the look-behind checks the two characters before it) so that the engine skips to capitals in C
# (a pattern opening with a look-behind is tried at every position: 3x slower, the same matches)
ENTITY = re.compile(r"[A-Z](?<=[a-z0-9,;)] [A-Z])[A-Za-z]*[A-Za-z]")
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
    found = _UNITS_SEEN.get(m.group())
    if found is None:
        found = _read_unit(m.group(1), m.group(2), m.end(1) - end, m.end() - end)
        if len(_UNITS_SEEN) < 100_000:  # (bounded: the same few hundred units come back in every text)
            _UNITS_SEEN[m.group()] = found
    return found[0], end + found[1]


_UNITS_SEEN: dict[str, tuple[str | None, int]] = {}


def _read_unit(first: str, second: str | None, first_end: int, both_end: int) -> tuple[str | None, int]:
    """(unit, where it ends relative to the number's end) of the unit words after a number."""
    if first == "%":
        return "%", first_end
    if first == "per" and second == "cent" or first == "percent":
        return "%", both_end
    if first in _QUALIFIED and second in _MINUTES and _MINUTES[second] == 1440:
        return f"{first} day", both_end
    if first in _MINUTES:
        return "minutes", first_end
    if first in _OWN_UNITS:
        return _OWN_UNITS[first], first_end
    if first in _CURRENCY_WORDS:
        return _CURRENCY_WORDS[first], first_end
    if first in STOPWORDS or len(first) < 2:
        return None, 0
    return stem(first), first_end


def _currency_before(text: str, start: int) -> str | None:
    before = text[max(0, start - 4):start]
    found = _CURRENCIES_SEEN.get(before, False)
    if found is False:
        found = _read_currency(before)
        if len(_CURRENCIES_SEEN) < 100_000:
            _CURRENCIES_SEEN[before] = found
    return found


_CURRENCIES_SEEN: dict[str, str | None] = {}


def _read_currency(before: str) -> str | None:
    before = before.rstrip()
    if before[-1:] in _CURRENCY_SIGNS:
        return _CURRENCY_SIGNS[before[-1]]
    return _CURRENCY_WORDS.get(before[-3:].lower()) if before[-3:].isalpha() else None


_AFTER_MONTH = re.compile(r"\.?\s+([0-9]{1,2})(?:st|nd|rd|th)?\b")
_BEFORE_MONTH = re.compile(r"(?<![0-9])([0-9]{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?$")
_ISO_DATE = re.compile(r"[0-9]{4}-([0-9]{2})-([0-9]{2})\b")


def _date_matches(low: str, words: frozenset | set) -> list[tuple[int, int, tuple[int, int]]]:
    """(start, end, (month, day)) of the dates of a lowercased text: each month name the text holds is looked
    up where it stands (a number right after or before it), so the cost follows the month names, not the
    length of the text; ISO dates only when a -dd- is there."""
    out = []
    for name in _MONTH_WORDS & words:
        month = _MONTHS[name[:3]]
        pos = low.find(name)
        while pos != -1:
            end = pos + len(name)
            if (pos == 0 or not low[pos - 1].isalpha()) and not low[end:end + 1].isalpha():
                after = _AFTER_MONTH.match(low, end)
                before = None if after else _BEFORE_MONTH.search(low[max(0, pos - 16):pos])
                if after:
                    out.append((pos, after.end(), month, int(after.group(1))))
                elif before:
                    out.append((pos - len(before.group()), end, month, int(before.group(1))))
            pos = low.find(name, end)
    if "-" in low and _ISO_HINT.search(low) is not None:
        for m in _ISO_DATE.finditer(low):
            if not (m.start() and low[m.start() - 1].isalnum()):
                out.append((m.start(), m.end(), int(m.group(1)), int(m.group(2))))
    return [(a, b, (month, day)) for a, b, month, day in out if 1 <= month <= 12 and 1 <= day <= 31]


def _time_matches(low: str, words: frozenset | set) -> list[tuple[int, int, int]]:
    """(start, end, minutes after midnight) of the times of day of a lowercased text."""
    if ({"am", "pm"}.isdisjoint(words) and _COLON_TIME.search(low) is None
            and "a.m" not in low and "p.m" not in low):
        return []
    out = []
    for m in _TIME.finditer(low):
        if m.start() and low[m.start() - 1].isalnum():
            continue
        if m.group(3):
            hour, minute = int(m.group(1)) % 12 + (12 if m.group(3) == "p" else 0), int(m.group(2) or 0)
        else:
            hour, minute = int(m.group(4)), int(m.group(5))
        if hour < 24 and minute < 60:
            out.append((m.start(), m.end(), hour * 60 + minute))
    return out


def quantities(text: str, low: str, words: frozenset | set | None = None,
               dated: list | None = None, timed: list | None = None) -> list[tuple[int, int, Quantity]]:
    """(start, end, (value, unit)) of the numbers of a text; ``low`` is the text lowercased (same length),
    ``words`` its word tokens. Numbers inside dates and times are not included (see dates / times)."""
    out = []
    if words is None:
        words = frozenset(spaced(text).split())
    dated = _date_matches(low, words) if dated is None else dated
    timed = _time_matches(low, words) if timed is None else timed
    taken = [(a, b) for a, b, _d in dated] + [(a, b) for a, b, _t in timed]
    if "\n" in text or low[:1].isdigit():
        taken += [m.span() for m in _LIST_MARKER.finditer(low)]
    if "http" in low or "www." in low:
        taken += [m.span() for m in _URL.finditer(low)]
    inside = _inside(taken)
    for m in _NUMBER.finditer(low):
        start, stop = m.span()
        if start:
            before = low[start - 1]
            if before.isalnum() or before in "_.,/-":
                continue  # part of a code (LX318), a version, a path
        if low[stop:stop + 1] == "." and low[stop + 1:stop + 2].isdigit():
            continue  # a version number 1.2.3
        number = m.group()
        if "," in number:
            number = number.rstrip(",")
            if not _THOUSANDS.match(number):
                continue
            value = float(number.replace(",", ""))
        else:
            value = float(number)
        if taken and inside(start):
            continue
        unit, end = _unit(low, start + len(number))
        if unit == "minutes":
            value *= _MINUTES[low[stop:end].strip()]
        currency = _currency_before(text, start)
        out.append((start, end, (value, currency) if currency else (value, unit)))
    present = _WORD_NUMBERS.keys() & words
    if ("a" in words or "an" in words) and not _DURATION_WORDS.isdisjoint(words):
        present.update(("a", "an"))
    if present:
        for m in _worded(frozenset(present)).finditer(low):
            word = m.group(1)
            value = 1.0 if word in ("a", "an") else float(_WORD_NUMBERS[word])
            unit, end = _unit(low, m.end())
            if unit is None or (word in ("a", "an") and unit != "minutes"):
                continue  # "one of our agents", "a bag": no quantity to check
            if unit == "minutes":
                value *= _MINUTES[low[m.end():end].strip()]
            out.append((m.start(), end, (value, unit)))
    return out


_DURATION_WORDS = frozenset(_MINUTES) | frozenset(_OWN_UNITS)


def _inside(spans: list[tuple[int, int]]):
    """A test whether a position falls in one of ``spans`` (a binary search over the starts with the furthest
    end so far: a long text's numbers are not each compared with all its dates and times)."""
    ordered = sorted(spans)
    starts = [a for a, _b in ordered]
    reach, furthest = [], -1
    for _a, b in ordered:
        furthest = max(furthest, b)
        reach.append(furthest)

    def test(position: int) -> bool:
        i = bisect_right(starts, position) - 1
        return i >= 0 and reach[i] > position

    return test


@lru_cache(maxsize=512)
def _worded(present: frozenset[str]) -> re.Pattern:
    """A pattern for the number words a text holds (a pattern of all of them scans far slower)."""
    return re.compile(r"\b(" + "|".join(sorted(present, key=len, reverse=True)) + r")\b")


def dates(low: str) -> set[tuple[int, int]]:
    """The (month, day) dates of a lowercased text."""
    return {d for _a, _b, d in _date_matches(low, frozenset(spaced(low).split()))}


def times(low: str) -> set[int]:
    """The times of day of a lowercased text, in minutes after midnight."""
    return {t for _a, _b, t in _time_matches(low, frozenset(spaced(low).split()))}


def entities(sentence: str) -> list[str]:
    """Capitalised words that do not start the sentence, lowercased (stopwords and <= 2 letters left out)."""
    out = []
    for m in ENTITY.finditer(sentence):
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


def facts_of(text: str) -> Facts:
    """The specifics of an evidence text (from its one cached preparation, ``prepare``)."""
    return prepare(text).facts


def _facts(text: str, low: str, words: frozenset) -> Facts:
    found = Facts(words=words)
    dated, timed = _date_matches(low, words), _time_matches(low, words)
    for _s, _e, (value, unit) in quantities(text, low, words, dated, timed):
        found.quantities.setdefault(value, set()).add(unit)
    found.dates, found.times = {d for _a, _b, d in dated}, {t for _a, _b, t in timed}
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


@dataclass(slots=True)
class Claim:
    """One sentence of an answer with what groundedness checks: its content words, specifics, polarity."""

    text: str
    content: frozenset
    words: frozenset
    # (empty tuples until claims_of finds one: most sentences have none of them)
    quantities: list | tuple = ()  # (text, (value, unit))
    dates: set | tuple = ()
    times: set | tuple = ()
    entities: list | tuple = ()
    identifiers: list | tuple = ()  # codes of letters then digits (LX318, AB12CD): names

    def unsupported(self, evidence: list[Facts]) -> list[str]:
        """The specifics of this sentence that no evidence holds, as short descriptions."""
        missing = []
        if self.quantities:
            missing += [t for t, q in self.quantities if checked(q) and not any(supported(q, e) for e in evidence)]
        if self.dates:
            missing += [f"date {m}/{d}" for m, d in self.dates if not any((m, d) in e.dates for e in evidence)]
        if self.times:
            missing += [f"time {t // 60:02d}:{t % 60:02d}" for t in self.times
                        if not any(t in e.times for e in evidence)]
        if self.entities or self.identifiers:
            missing += [w for w in (*self.entities, *self.identifiers) if not any(w in e.words for e in evidence)]
        return missing




_CITATION = re.compile(r"\[[^\]]{1,40}\]")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: split after . ! ? and a space, at line breaks and after CJK full stops
    (str.replace keeps every offset: the mark takes the place of the space or line break)."""
    marked = text.replace(". ", ".\x00").replace("! ", "!\x00").replace("? ", "?\x00").replace("\n", "\x00")
    if not text.isascii():
        marked = marked.replace("\u3002", "\x00").replace("\uff01", "\x00").replace("\uff1f", "\x00")
    spans, start = [], 0
    for piece in marked.split("\x00"):
        end = start + len(piece)
        if piece.strip():
            spans.append((start, end))
        start = end + 1
    return spans


@lru_cache(maxsize=64)
def claims_of(text: str) -> tuple[Claim, ...]:
    """The sentences of an answer (bracketed citations removed) with their content words and specifics; the
    answer is tokenised once and each pattern runs once over all of it (cached: several scorers read the
    same answer, one response after the other, so a few entries suffice; a large cache of answers would only
    give the garbage collector millions of objects to walk)."""
    from bisect import bisect_right

    from obs_pipelines.scorers.text import content_of

    text = normalize(text)
    if "[" in text:
        text = _CITATION.sub(" ", text)
    low = text.lower()
    flat = spaced(text)
    spans = _sentence_spans(text)
    same_length = len(flat) == len(text)  # (ASCII: punctuation became spaces one for one)
    claims = []
    for a, b in spans:
        words = frozenset((flat[a:b] if same_length else spaced(text[a:b])).split())
        claims.append(Claim(text[a:b].strip(), content_of(words), words))
    if not claims:
        return ()
    starts = [a for a, _b in spans]

    def owner(position: int) -> Claim:
        return claims[max(0, bisect_right(starts, position) - 1)]

    every_word = frozenset().union(*(c.words for c in claims))  # (the sentences hold every token)
    dated, timed = _date_matches(low, every_word), _time_matches(low, every_word)
    for start, end, quantity in quantities(text, low, every_word, dated, timed):
        claim = claims[max(0, bisect_right(starts, start) - 1)]
        if claim.quantities:
            claim.quantities.append((text[start:end].strip(), quantity))
        else:
            claim.quantities = [(text[start:end].strip(), quantity)]
    for start, _end, day in dated:
        claim = owner(start)
        claim.dates = {*claim.dates, day}
    for start, _end, minute in timed:
        claim = owner(start)
        claim.times = {*claim.times, minute}
    identifiers = [w for w in every_word if not w.isalpha() and not w.isdigit() and _IDENTIFIER.match(w)
                   and len(w) > 2]
    if identifiers:
        codes = frozenset(identifiers)
        for claim in claims:
            claim.identifiers = list(claim.words & codes)
    for m in ENTITY.finditer(text):
        word = m.group().lower()
        if len(word) > 2 and word not in STOPWORDS:
            claim = claims[max(0, bisect_right(starts, m.start()) - 1)]
            if claim.entities:
                claim.entities.append(word)
            else:
                claim.entities = [word]
    return tuple(claims)


_IDENTIFIER = re.compile(r"[a-z]+\d")


class EvidenceSentence(tuple):
    """(content words, polarity) of one sentence of an evidence text."""

    content = property(lambda self: self[0])
    polarity = property(lambda self: self[1])


_CUES = tuple(f" {w} " for w in sorted(NEGATIONS)) + (" non ",)
# every whitespace character str.split() splits at, as a space, one for one: a cue is then found next to a line
# break or a tab too ("... not\n", "fares\tnot available")
_BLANKS = str.maketrans({c: " " for c in map(chr, range(0x3001)) if c.isspace()})


def negated_sentences(text: str) -> tuple[EvidenceSentence, ...]:
    """The sentences of an evidence text with a negation mark, with content words and polarity (from its one
    cached preparation, ``prepare``)."""
    return prepare(text).negated


def evidence_sentences(text: str) -> tuple[EvidenceSentence, ...]:
    """Every sentence of an evidence text with content words and polarity (uncached: the scorers read the
    prepared document's sentence index, ``Prepared.index``)."""
    return tuple(EvidenceSentence(pair) for pair in prepare(text).sentences())


NEGATED = "negated"  # the key of the negated sentences (found without tokenising the others)


class Prepared:
    """One evidence text (a retrieved document, a tool result, the question) prepared once for every scorer
    that reads it: the NFKC text, its tokens as one spaced string, its sentences, content words, specifics
    (``Facts``) and negated sentences; the index of all its sentences by polarity is built on first use."""

    __slots__ = ("text", "flat", "aligned", "words", "content", "_facts", "_spans", "_negated", "_indexes",
                 "_plain", "_signed", "_negated_words")

    def __init__(self, text: str) -> None:
        from obs_pipelines.scorers.text import content_of

        text = normalize(text)
        self.text = text
        # tokens as a string whose split() is the word list; every whitespace a space (the cue search below)
        self.flat = flat = spaced(text).translate(_BLANKS)
        self.aligned = len(flat) == len(text)  # (ASCII: character for character, sentence slices line up)
        self.words = frozenset(flat.split())
        self.content = content_of(self.words)
        # the rest on first use: context relevance reads only the content words, groundedness everything
        self._facts: Facts | None = None
        self._spans: list[tuple[int, int]] | None = None
        self._negated: tuple[tuple[int, ...], tuple[EvidenceSentence, ...]] | None = None
        self._indexes: dict[bool, dict] = {}
        self._plain: frozenset | None = None
        self._signed: dict[tuple[bool, bool], frozenset] = {}
        self._negated_words: frozenset | None = None

    @property
    def facts(self) -> Facts:
        if self._facts is None:
            self._facts = _facts(self.text, self.text.lower(), self.words)
        return self._facts

    @property
    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = _sentence_spans(self.text)
        return self._spans

    @property
    def negated_ids(self) -> tuple[int, ...]:
        return (self._negated or self._find_negated())[0]

    @property
    def negated_words(self) -> frozenset[str]:
        """The content words of the negated sentences (kept: every response whose evidence holds this document
        reads them)."""
        if self._negated_words is None:
            self._negated_words = frozenset().union(*(s.content for s in self.negated))
        return self._negated_words

    @property
    def negated(self) -> tuple[EvidenceSentence, ...]:
        """The sentences with a negation mark (content words, polarity), found with substring searches of the
        marks, so that the other sentences are never tokenised."""
        return (self._negated or self._find_negated())[1]

    def _find_negated(self) -> tuple[tuple[int, ...], tuple[EvidenceSentence, ...]]:
        from obs_pipelines.scorers.text import content_of

        self._negated = ((), ())
        if NEGATIONS.isdisjoint(self.words) and "non" not in self.words:
            return self._negated  # (most documents: no negation mark at all)
        if not self.aligned:
            chosen: Iterable[int] = range(len(self.spans))
        else:
            padded = " " + self.flat + " "
            hits = set()
            for cue in _CUES:
                if cue[1:-1] not in self.words:
                    continue  # (the text's words say which marks are there: only those are searched)
                pos = padded.find(cue)
                while pos != -1:
                    hits.add(pos)  # (padded has one leading space: pos is the cue's offset in the text)
                    pos = padded.find(cue, pos + 1)
            starts = [a for a, _b in self.spans]
            chosen = sorted({max(0, bisect_right(starts, p) - 1) for p in hits})
        ids, negated = [], []
        for i in chosen:
            words = self._words(i)
            sentence = EvidenceSentence((content_of(words), polarity(self._sentence(i), frozenset(words))))
            if sentence.polarity != (False, False):
                ids.append(i)
                negated.append(sentence)
        self._negated = (tuple(ids), tuple(negated))
        return self._negated

    def _sentence(self, i: int) -> str:
        a, b = self.spans[i]
        return self.text[a:b]

    def _words(self, i: int) -> list[str]:
        a, b = self.spans[i]
        return self.flat[a:b].split() if self.aligned else spaced(self.text[a:b]).split()

    def sentences(self):
        """(content words, polarity) of every sentence, in order (only the negated ones are tested for
        polarity: a sentence without a negation word is (False, False))."""
        from obs_pipelines.scorers.text import content_of

        negated = dict(zip(self.negated_ids, self.negated, strict=True))
        for i in range(len(self.spans)):
            found = negated.get(i)
            yield found if found is not None else (content_of(self._words(i)), (False, False))

    def contents(self, sign: tuple[bool, bool]) -> frozenset[frozenset[str]]:
        """The content-word sets of the sentences of polarity ``sign`` (a claim that equals one of them has its
        best match in its own polarity: no sentence can contradict it)."""
        if sign != (False, False):
            found = self._signed.get(sign)
            if found is None:  # (kept: every response whose evidence holds this document asks again)
                found = self._signed[sign] = frozenset(content for content, own in self.negated if own == sign)
            return found
        if self._plain is None:
            self.masks(False)  # (one pass over the sentences builds both)
        return self._plain

    def masks(self, negated: bool) -> dict[str, int]:
        """content word -> the sentences holding it as a bit mask (bit i: the text's sentence i); ``negated``: of
        the negated sentences only, without tokenising the others (built once per document; ints, which the
        garbage collector does not track, so a large cache of documents does not slow every collection)."""
        found = self._indexes.get(negated)
        if found is None:
            found = self._indexes[negated] = {}
            pairs = zip(self.negated_ids, self.negated, strict=True) if negated else enumerate(self.sentences())
            plain = []
            for i, (content, sign) in pairs:
                bit = 1 << i
                for word in content:
                    found[word] = found.get(word, 0) | bit
                if sign == (False, False):
                    plain.append(content)
            if not negated:
                self._plain = frozenset(plain)
        return found

    def signs(self) -> dict[tuple[bool, bool], int]:
        """polarity -> its sentences as a bit mask (a sentence without a negation word is (False, False))."""
        out: dict[tuple[bool, bool], int] = {}
        negated = 0
        for i, (_content, sign) in zip(self.negated_ids, self.negated, strict=True):
            out[sign] = out.get(sign, 0) | 1 << i
            negated |= 1 << i
        plain = ((1 << len(self.spans)) - 1) & ~negated
        if plain:
            out[(False, False)] = plain
        return out


@lru_cache(maxsize=8192)
def prepare(text: str) -> Prepared:
    """The one preparation of an evidence text (cached: the same knowledge-base documents come back for many
    responses)."""
    return Prepared(text)
