"""RAG scorers: the answer against the retrieved documents (``Example.context``), lexically.

"Supported" means: enough of a sentence's content words (stopwords and conversational filler removed,
bracketed citations stripped) occur in the documents. Lexical support misses paraphrase, but it is free,
deterministic and catches the failures that matter in production: an answer that restates nothing that was
retrieved (hedging, improvising after a retrieval miss) and retrieval that brings back off-topic documents.
"""

from __future__ import annotations

from obs_pipelines.online_evals.scorers.base import Example, Score, Scorer
from obs_pipelines.online_evals.scorers.text import (
    as_text,
    content_set,
    content_union,
    sentence_contents,
    strip_citations,
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
    description = ("Share of the answer's sentences (those with >= min_words content words) whose content words "
                   "occur in the retrieved documents for at least `support` of them (default 0.5). Null without "
                   "documents or without such a sentence.")
    defaults = {"support": 0.5, "min_words": 2}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        claims = _claims(as_text(example.output), self.config["min_words"])
        if not claims:
            return self.result(None, "no claim in the output")
        pool = content_union(docs)
        unsupported = [s for s, words in claims if _coverage(words, pool) < self.config["support"]]
        return self.result(1 - len(unsupported) / len(claims), sentences=len(claims), unsupported=unsupported[:5])


def _relevant(doc: str, reference: frozenset[str], threshold: float) -> bool:
    return _coverage(reference, content_set(doc)) >= threshold


class ContextRelevance(Scorer):
    name = "context_relevance"
    description = ("Share of retrieved documents that contain at least `threshold` (default 0.3) of the question's "
                   "content words. Null without documents or a question with no content word.")
    requires = ("input",)
    defaults = {"threshold": 0.3}

    def score(self, example: Example) -> Score:
        docs = _documents(example)
        if not docs:
            return self.result(None, "no context")
        question = content_set(as_text(example.input))
        if not question:
            return self.result(None, "no content word in the input")
        relevant = [_relevant(d, question, self.config["threshold"]) for d in docs]
        return self.result(sum(relevant) / len(docs), documents=len(docs), relevant=sum(relevant))


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
        pool = content_union(docs)
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


class QuestionCoverage(Scorer):
    name = "question_coverage"
    description = ("Lexical answer relevance: share of the question's content words that the answer uses. Null "
                   "when the question has no content word.")
    requires = ("input", "output")

    def score(self, example: Example) -> Score:
        question = content_set(as_text(example.input))
        if not question:
            return self.result(None, "no content word in the input")
        return self.result(_coverage(question, content_set(strip_citations(as_text(example.output)))))


SCORERS = (Groundedness, ContextRelevance, ContextPrecision, ContextRecall, EmptyContext, QuestionCoverage)
