"""RAG scorers: the answer against the retrieved documents (``Example.context``), lexically.

"Supported" means: enough of a sentence's content words (stopwords and conversational filler removed,
bracketed citations stripped) occur in the documents, and (groundedness) its specifics (numbers with units,
money, durations, dates, times, names: ``specifics.py``) occur there too and the closest document sentence
does not say the opposite. Lexical support misses paraphrase, but it is free, deterministic and catches the
failures that matter in production: an answer that restates nothing that was retrieved (hedging, improvising
after a retrieval miss), an answer that changes the document's number or negates it, and retrieval that
brings back off-topic documents.
"""

from __future__ import annotations

from functools import lru_cache

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.specifics import NEGATED, Claim, claims_of, facts_of, polarity, prepare
from obs_pipelines.scorers.text import (
    as_text,
    content_set,
    message_text,
    sentence_contents,
    stem,
    strip_citations,
    words,
)


def _documents(example: Example) -> tuple[str, ...]:
    return tuple(d for d in (as_text(d) for d in example.context or ()) if d and d.strip())


def _coverage(words: frozenset[str] | set[str], pool: frozenset[str] | set[str]) -> float:
    return len(words & pool) / len(words) if words else 0.0


def _claims(text: str, min_words: int) -> list[tuple[str, frozenset[str]]]:
    """The sentences of a text that carry at least ``min_words`` content words, with those words."""
    return [(s, words) for s, words in sentence_contents(strip_citations(text)) if len(words) >= min_words]


class Groundedness(Scorer):
    name = "groundedness"
    version = "3"  # 3: a negation next to a line break or a tab counts (negated_sentences missed it)
    description = ("Share of the answer's claims (sentences with >= min_words content words or a specific) that the "
                   "evidence supports: >= `support` (0.5) of their content words occur in the retrieved documents "
                   "or tool results, every specific (number with its unit, money, percent, duration, date, time, "
                   "capitalised name, code such as LX318) occurs in the documents, tool results or question, and "
                   "the evidence sentence sharing most of its content words (>= `support` of them) does not have "
                   "the opposite polarity (negated / non-) unless one of the claim's polarity shares as many. Null "
                   "without documents or without a claim.")
    defaults = {"support": 0.5, "min_words": 2}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        low = self.config["min_words"]
        claims = [c for c in claims_of(as_text(example.output))
                  if len(c.content) >= low or c.quantities or c.dates or c.times or c.entities]
        if not claims:
            return self.result(None, "no claim in the output")
        evidence = _evidence(docs + _tool_results(example))
        facts = evidence.facts + [facts_of(as_text(example.input))] if example.input else evidence.facts
        support = self.config["support"]
        unsupported: list[dict] = []
        for claim in claims:
            reasons = []
            if _coverage(claim.content, evidence.pool) < support:
                reasons.append("its words are not in the documents")
            missing = claim.unsupported(facts)
            if missing:
                reasons.append("not in the documents: " + ", ".join(missing[:5]))
            if not reasons and evidence.contradicts(claim, support):
                reasons.append("the document says the opposite")
            if reasons:
                unsupported.append({"sentence": claim.text[:300], "why": "; ".join(reasons)})
        return self.result(1 - len(unsupported) / len(claims), sentences=len(claims), unsupported=unsupported[:5])


def _tool_results(example: Example) -> tuple[str, ...]:
    """What the agent's tools returned: evidence as much as a retrieved document."""
    return tuple(t for t in (as_text(c.get("output")) for c in example.tool_calls or () if c.get("output"))
                 if t.strip())


class _Evidence:
    """What a response's documents and tool results say, built once per set of texts (a trace's documents serve
    all its responses): their content words, specifics, and their negated sentences for the polarity check."""

    def __init__(self, texts: tuple[str, ...]) -> None:
        self.texts = texts
        documents = [prepare(t) for t in texts]  # (each text prepared once, shared with every scorer)
        self.documents = list({id(d): d for d in documents}.values())  # (a repeated text adds no sentence)
        self.pool = frozenset().union(*(d.content for d in documents))
        self.facts = [d.facts for d in documents]  # (checked one by one: merging costs more than a few lookups)
        self.negated_words = frozenset().union(*(d.negated_words for d in documents))
        self._offsets, offset = [], 0
        for document in self.documents:
            self._offsets.append((document, offset))
            offset += len(document.spans)
        self._merged: dict[bool, _Masks] = {}
        self._signs: dict[tuple[bool, bool], int] | None = None
        self._contents: dict[tuple[bool, bool], frozenset] = {}

    def merged(self, negated: bool) -> _Masks:
        """word -> the evidence's sentences holding it as one bit mask (each document's masks shifted past the
        documents before it; ``negated``: the negated sentences only), a word merged on its first lookup
        (merging every word of every document costs more than the claims' lookups)."""
        found = self._merged.get(negated)
        if found is None:
            found = self._merged[negated] = _Masks([(d.masks(negated), offset) for d, offset in self._offsets])
        return found

    def signs(self) -> dict[tuple[bool, bool], int]:
        """polarity -> the evidence's sentences of that polarity as a bit mask."""
        if self._signs is None:
            self._signs = {}
            for document, offset in self._offsets:
                for sign, mask in document.signs().items():
                    self._signs[sign] = self._signs.get(sign, 0) | mask << offset
        return self._signs

    def most_shared(self, content: frozenset[str], key: object, negated: bool = False) -> int:
        """The most content words one evidence sentence under ``key`` (a polarity, or NEGATED: any negated
        sentence) shares with ``content``: the claim words' sentence masks added up bit-sliced, so the cost
        follows the claim's words, not the sentences that hold them."""
        if negated:
            masks = [m for m in map(self.merged(True).__getitem__, content) if m]
        else:
            keep = self.signs().get(key, 0)
            if not keep:
                return 0
            masks = [m & keep for m in map(self.merged(False).__getitem__, content) if m & keep]
        return len(masks) if len(masks) < 2 else _max_count(masks)

    def restated(self, content: frozenset[str], sign: tuple[bool, bool]) -> bool:
        """Whether an evidence sentence of polarity ``sign`` has exactly these content words (a claim copied from
        the documents: its own polarity shares all its words, so nothing can contradict it; a set lookup
        instead of counting postings)."""
        found = self._contents.get(sign)
        if found is None:
            found = self._contents[sign] = frozenset().union(*(d.contents(sign) for d in self.documents))
        return content in found

    def contradicts(self, claim: Claim, support: float) -> bool:
        """The evidence sentence sharing most of the claim's content words (>= ``support`` of them) has the
        other polarity, and no sentence of the claim's polarity shares as many."""
        content = claim.content
        need = max(1.0, support * len(content))
        own = polarity(claim.text, claim.words)
        if own == (False, False):  # only a negated sentence can contradict: most claims stop at the first test
            if len(content & self.negated_words) < need or self.restated(content, own):
                return False
            best_other = self.most_shared(content, NEGATED, negated=True)
            return best_other >= need and best_other > self.most_shared(content, own)
        if self.restated(content, own):
            return False
        best_same = self.most_shared(content, own)
        best_other = max((self.most_shared(content, p) for p in self.signs() if p != own), default=0)
        return best_other >= need and best_other > best_same


class _Masks(dict):
    """word -> the evidence's sentences holding it as a bit mask, merged from ``documents`` ((word -> mask,
    offset) pairs) on first use."""

    def __init__(self, documents: list[tuple[dict[str, int], int]]) -> None:
        super().__init__()
        self.documents = documents

    def __missing__(self, word: str) -> int:
        mask = 0
        for masks, offset in self.documents:
            found = masks.get(word)
            if found:
                mask |= found << offset
        self[word] = mask
        return mask


def _max_count(masks: list[int]) -> int:
    """The largest number of ``masks`` that share one bit: the masks added up per bit position in binary
    (plane i holds bit i of every position's count), then the highest count read from the top plane down."""
    planes: list[int] = []
    for carry in masks:
        i = 0
        while carry:
            if i == len(planes):
                planes.append(carry)
                break
            plane = planes[i]
            planes[i] = plane ^ carry
            carry &= plane
            i += 1
    best, alive = 0, -1
    for i in range(len(planes) - 1, -1, -1):
        hit = alive & planes[i]
        if hit:
            alive = hit
            best |= 1 << i
    return best


@lru_cache(maxsize=256)
def _evidence(texts: tuple[str, ...]) -> _Evidence:
    return _Evidence(texts)


_USER = ("user", "human")  # the roles whose last message is the question
_ASSISTANT = ("assistant", "ai", "model")


def _relevant(doc: str, reference: frozenset[str], threshold: float) -> bool:
    return _coverage(reference, prepare(doc).content) >= threshold


class ContextRelevance(Scorer):
    name = "context_relevance"
    # 2: a hit rate, no longer precision: top-k retrieval with 1 relevant document of 5 scored 0.2 and failed
    version = "2"
    description = ("Whether retrieval found something relevant to the question (hit@k, as Phoenix's retrieval "
                   "evals count a hit): 1 if at least one retrieved document contains at least `threshold` "
                   "(default 0.3) of the question's content words (long / much / many / often / far / soon after how "
                   "left out), 0 if none does; any rule threshold in (0, 1] "
                   "therefore fails exactly the responses whose documents are all off-topic. Precision (the share "
                   "of relevant documents, a figure of the retriever's k, not a verdict on the response) is in the "
                   "details. The question is the input's last user message when the input is a chat-message list. "
                   "Null without documents or a question with no content word.")
    requires = ("input",)
    defaults = {"threshold": 0.3}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        question = content_set(message_text(example.input, _USER)) - _INTERROGATIVE  # ("how long": no topic)
        if not question:
            return self.result(None, "no content word in the input")
        relevant = sum(_relevant(d, question, self.config["threshold"]) for d in docs)
        return self.result(1.0 if relevant else 0.0, documents=len(docs), relevant=relevant,
                           precision=round(relevant / len(docs), 4))


class ContextPrecision(Scorer):
    name = "context_precision"
    description = ("Average precision of the ranking against the reference (ragas' context precision): a document "
                   "is relevant when it holds >= `threshold` (0.3) of the expected answer's content words; "
                   "sum over relevant ranks k of precision@k / relevant documents. 0 when none is relevant.")
    requires = ("expected",)
    defaults = {"threshold": 0.3}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        reference = content_set(as_text(example.expected))
        if not reference:
            return self.result(None, "no content word in the expected answer")
        hits, total = 0, 0.0
        for k, doc in enumerate(docs, start=1):
            if _relevant(doc, reference, self.config["threshold"]):
                hits += 1
                total += hits / k
        return self.result(total / hits if hits else 0.0, relevant=hits, documents=len(docs))


class ContextRecall(Scorer):
    name = "context_recall"
    description = ("Share of the expected answer's sentences (>= min_words content words) supported by the "
                   "retrieved documents (>= `support` of their content words occur there).")
    requires = ("expected",)
    defaults = {"support": 0.5, "min_words": 2}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        claims = _claims(as_text(example.expected), self.config["min_words"])
        if not claims:
            return self.result(None, "no claim in the expected answer")
        pool = frozenset().union(*(prepare(d).content for d in docs))
        supported = sum(_coverage(words, pool) >= self.config["support"] for _, words in claims)
        return self.result(supported / len(claims), sentences=len(claims))


class EmptyContext(Scorer):
    name = "empty_context"
    description = ("1 if retrieval returned at least one non-empty document, 0 if it returned none; null when "
                   "the request made no retrieval (metadata retrieval_spans = 0).")
    requires = ()

    def score(self, example: Example) -> Score:
        if not example.metadata.get("retrieval_spans", 1 if example.context else 0):
            return self.result(None, "no retrieval")
        docs = _documents(example)
        return self.result(1.0 if docs else 0.0, documents=len(docs))


# words that talk about the question rather than answer it ("I understand you want to know ...")
_META = frozenset(map(stem, "understand want wanting know asking asked ask wondering wonder like need information "
                            "regarding inquiry query request looking whether".split()))
# "how long / much / many / often / far / soon" ask for a quantity: the answer gives it, not the word
_INTERROGATIVE = frozenset("long much many often far soon".split())
# a declarative sentence with one of these answers a yes / no question by restating it ("You can cancel it.")
_ANSWER_CUES = frozenset("yes no not never cannot t can will may must should does do is are was were has have "
                         "unfortunately".split())


def _echo(claim: Claim, question: frozenset[str]) -> bool:
    """A sentence that only repeats the question: no content word of its own, no number, and either words
    about the question, a question itself or without a word that answers one."""
    own = claim.content - question - _INTERROGATIVE
    if claim.quantities or claim.dates or claim.times or not own.issubset(_META):
        return False
    return bool(own) or claim.text.rstrip().endswith("?") or _ANSWER_CUES.isdisjoint(claim.words)


# a question opens with one of these, or carries a question mark
_QUESTION_WORDS = frozenset("how what when where which who whom whose why can could do does did is are was were "
                            "will would should shall may might have has am".split())
_YES_NO_OPENERS = frozenset("can could do does did is are was were will would should shall may might have has "
                            "am".split())
_YES_NO = frozenset("yes no yeah yep nope".split())


def _is_question(text: str) -> bool:
    first = words(text)[:1]
    return "?" in text or "\uff1f" in text or bool(first) and first[0] in _QUESTION_WORDS


def _addresses(claim: Claim, question: frozenset[str], opener: str) -> bool:
    """A non-echo sentence that answers: it uses a content word of the question, or answers a yes / no question
    with yes / no, or a how long / much / many / when question with a quantity, a date or a time."""
    if claim.content & question:
        return True
    if opener in _YES_NO_OPENERS and words(claim.text)[:1] and words(claim.text)[0] in _YES_NO:
        return True
    return opener in ("how", "when") and bool(claim.quantities or claim.dates or claim.times)


class QuestionCoverage(Scorer):
    name = "question_coverage"
    # 3: whether the answer addresses the question (1 / 0), no longer the share of the question's words used: a
    # concise right answer in its own words ("We accept Visa, ..." to "Which payment methods do you accept?")
    # used a third of them and failed
    version = "3"
    description = ("Lexical answer relevance, a verdict: 1 if at least one sentence of the answer that is not an "
                   "echo addresses the question (uses one of its content words, or opens with yes / no after a "
                   "yes / no question, or gives a quantity, date or time after a how / when question), 0 if none "
                   "does; any rule threshold in (0, 1] fails exactly the answers that only parrot the question or "
                   "talk about something else. An echo sentence repeats the question: no content word of its own "
                   "(words about the question such as 'understand', 'wondering' do not count), no number, and it "
                   "is a question or has no answering word (yes, no, not, can, will, is ...). The share of the "
                   "question's content words the answer uses is in the details (`coverage`). The question is the "
                   "input's last user message when the input is a chat-message list. Null when the input is not a "
                   "question (no '?' and no opening question word: a text to summarise, a ticket, an "
                   "instruction), when it has no content word, or when the output is one word other than yes / no "
                   "and without a number (a label, not an answer).")
    requires = ("input", "output")

    def score(self, example: Example) -> Score:
        text = message_text(example.input, _USER)
        if not _is_question(text):
            return self.result(None, "the input is not a question")
        question = content_set(text) - _INTERROGATIVE
        if not question:
            return self.result(None, "no content word in the input")
        output = message_text(example.output, _ASSISTANT)
        said = words(output)
        if len(said) == 1 and said[0] not in _YES_NO and not any(c.isdigit() for c in said[0]):
            return self.result(None, "a one-word output is a label, not an answer")
        claims = claims_of(output)
        answering = [c for c in claims if not _echo(c, question)]
        used = frozenset().union(*(c.content for c in answering)) if answering else frozenset()
        opener = words(text)[0]
        addressed = any(_addresses(c, question, opener) for c in answering)
        return self.result(1.0 if addressed else 0.0, echoed=len(claims) - len(answering),
                           coverage=round(_coverage(question, used), 4))


SCORERS = (Groundedness, ContextRelevance, ContextPrecision, ContextRecall, EmptyContext, QuestionCoverage)
