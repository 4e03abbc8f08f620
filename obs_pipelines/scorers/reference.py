"""Reference-based scorers: the output against the expected output.

Where autoevals has a scorer of the same name (ExactMatch, Levenshtein, NumericDiff, JSONDiff, ListContains)
the formula is autoevals' and the same inputs give the same score (obs_pipelines_tests/online_evals/
test_autoevals_parity.py). The one deliberate difference: autoevals' ExactMatch raises a TypeError when one
side is a dict / list and the other a non-string scalar (``json.loads(5)``); here that compares ``str(5)``
with the JSON of the other side (a 0, as the values differ).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

from rapidfuzz.distance.Levenshtein import normalized_similarity as _lev_similarity

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.text import CJK, as_text, normalize

REF = ("output", "expected")


def _normalize_value(value: Any, maybe_object: bool) -> str:
    # autoevals.value.normalize_value, without its TypeError on non-string scalars
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if maybe_object and isinstance(value, str):
        try:
            return json.dumps(json.loads(value))
        except json.JSONDecodeError:
            pass
    return str(value)


def levenshtein_similarity(a: Any, b: Any) -> float:
    """1 - edit distance / length of the longer string (1 for two empty strings), autoevals' Levenshtein
    (rapidfuzz normalizes the unit-cost distance by the longer length: the same formula, in one C call)."""
    return _lev_similarity(a if type(a) is str else str(a), b if type(b) is str else str(b))


def numeric_similarity(output: float, expected: float) -> float:
    """1 - |expected - output| / (|expected| + |output|), 1 when both are 0 (autoevals' NumericDiff)."""
    if expected == 0 and output == 0:
        return 1.0
    return 1 - abs(expected - output) / (abs(expected) + abs(output))


class ExactMatch(Scorer):
    name = "exact_match"
    description = "1 if output == expected, else 0; dicts / lists (or JSON strings beside them) compared as JSON."
    requires = REF

    def score(self, example: Example) -> Score:
        out, exp = example.output, example.expected
        if type(out) is str and type(exp) is str:  # the common case: plain strings compare as they are
            return Score.trusted(self.name, 1.0 if out == exp else 0.0)
        maybe_object = isinstance(out, (dict, list)) or isinstance(exp, (dict, list))
        return self.result(float(_normalize_value(out, maybe_object) == _normalize_value(exp, maybe_object)))


class Levenshtein(Scorer):
    name = "levenshtein"
    description = "1 - Levenshtein distance / max(len(output), len(expected)); 1 for two empty strings."
    requires = REF

    def score(self, example: Example) -> Score:
        return Score.trusted(self.name, float(levenshtein_similarity(example.output, example.expected)))


_NUMBER_TYPES = (int, float)


def _number(value: Any) -> float | None:
    if type(value) in _NUMBER_TYPES:  # (not bool: True is no number here)
        return value
    if isinstance(value, str):
        match = re.search(r"-?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?", value)
        if match:
            try:
                return float(match.group().replace(",", ""))
            except ValueError:
                return None
    return None


class NumericDiff(Scorer):
    name = "numeric_diff"
    description = ("1 - |expected - output| / (|expected| + |output|), 1 when both are 0; the first number in a "
                   "text output is used.")
    requires = REF

    def __call__(self, example: Example) -> Score:
        out, exp = example.output, example.expected
        if type(out) in _NUMBER_TYPES and type(exp) in _NUMBER_TYPES:  # the common case, inline (hot in backfills)
            return Score.trusted(self.name, 1.0 if out == 0 and exp == 0 else 1 - abs(exp - out) / (abs(exp) + abs(out)))
        return self._call_output_expected(example)

    def score(self, example: Example) -> Score:
        out, exp = _number(example.output), _number(example.expected)
        if out is None or exp is None:
            return self.result(None, "no number in output" if out is None else "no number in expected")
        return self.result(numeric_similarity(out, exp))


def _valid_json_container(text: str) -> bool:
    if text.lstrip()[:1] not in ("{", "["):  # only those parse to an object / array: skip the failing parse
        return False
    try:
        return isinstance(json.loads(text), (dict, list))
    except json.JSONDecodeError:
        return False


def json_diff(o1: Any, o2: Any) -> float:
    """autoevals' JSONDiff: recursive average over keys / positions; strings by Levenshtein, numbers by
    NumericDiff, other leaves by Levenshtein over their compact sorted JSON."""
    if isinstance(o1, str) and _valid_json_container(o1):
        o1 = json.loads(o1)
    if isinstance(o2, str) and _valid_json_container(o2):
        o2 = json.loads(o2)
    if isinstance(o1, dict) and isinstance(o2, dict):
        if not o1 and not o2:
            return 1.0
        keys = set(o1) | set(o2)
        return sum(json_diff(o1.get(k), o2.get(k)) for k in keys) / len(keys)
    if isinstance(o1, list) and isinstance(o2, list):
        if not o1 and not o2:
            return 1.0
        return sum(json_diff(a, b) for a, b in zip(o1, o2, strict=False)) / max(len(o1), len(o2))
    if isinstance(o1, str) and isinstance(o2, str):
        return levenshtein_similarity(o1, o2)
    if isinstance(o1, (int, float)) and isinstance(o2, (int, float)):
        return numeric_similarity(o1, o2)
    if o1 is None and o2 is None:
        return 1.0
    if o1 is None or o2 is None:
        return 0.0
    dump = dict(separators=(",", ":"), sort_keys=True)
    return levenshtein_similarity(json.dumps(o1, **dump), json.dumps(o2, **dump))


class JSONDiff(Scorer):
    name = "json_diff"
    description = ("Structural similarity of two JSON values: mean over the union of keys (objects) or over "
                   "positions / the longer length (arrays); strings by levenshtein, numbers by numeric_diff.")
    requires = REF

    def score(self, example: Example) -> Score:
        return self.result(json_diff(example.output, example.expected))


def _as_list(value: Any) -> list | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return [line.strip("-*• ").strip() for line in value.splitlines() if line.strip()]
        return parsed if isinstance(parsed, list) else None
    return None


class ListContains(Scorer):
    name = "list_contains"
    description = ("Best one-to-one matching (linear sum assignment) of output items to expected items by "
                   "levenshtein; sum of matched similarities / max(len(output), len(expected)) (or / "
                   "len(expected) with allow_extra_entities). A text output is read as a JSON list or one "
                   "item per line.")
    requires = REF
    defaults = {"allow_extra_entities": False}

    def score(self, example: Example) -> Score:
        outputs, expecteds = _as_list(example.output), _as_list(example.expected)
        if outputs is None or expecteds is None:
            return self.result(None, "output or expected is not a list")
        if not outputs and not expecteds:
            return self.result(1.0)
        if not outputs or not expecteds:
            return self.result(0.0)
        import numpy as np
        from scipy.optimize import linear_sum_assignment

        similarities = np.array([[levenshtein_similarity(o, e) for e in expecteds] for o in outputs])
        rows, cols = linear_sum_assignment(-similarities)
        denominator = len(expecteds) if self.config["allow_extra_entities"] else max(len(outputs), len(expecteds))
        total = float(similarities[rows, cols].sum())
        pairs = [[str(outputs[r]), str(expecteds[c]), float(similarities[r, c])] for r, c in zip(rows, cols, strict=True)]
        return self.result(min(max(total / denominator, 0.0), 1.0), pairs=pairs)


class _RougeTokenizer:
    """rouge-score's own tokenizer (lowercase, runs of [a-z0-9]), except that in text holding Chinese /
    Japanese characters each such character is a token too (rouge-score drops them, so two identical CJK
    texts score 0). Text without them is tokenised exactly as rouge-score does."""

    def tokenize(self, text: str) -> list[str]:
        from rouge_score.tokenize import tokenize

        if text.isascii() or not CJK.search(text):
            return tokenize(text, None)
        return [t for t in _ROUGE_CJK_TOKEN.findall(normalize(text).lower())]


_ROUGE_CJK_TOKEN = re.compile("[a-z0-9]+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_RougeTokenizer())


class Bleu(Scorer):
    name = "bleu"
    description = "sacrebleu sentence BLEU of the output against the expected text (default smoothing), / 100."
    requires = REF

    def score(self, example: Example) -> Score:
        import sacrebleu

        result = sacrebleu.sentence_bleu(as_text(example.output), [as_text(example.expected)])
        return self.result(result.score / 100)


class Chrf(Scorer):
    name = "chrf"
    description = "sacrebleu sentence chrF (character n-gram F-score, beta 2) against the expected text, / 100."
    requires = REF

    def score(self, example: Example) -> Score:
        import sacrebleu

        result = sacrebleu.sentence_chrf(as_text(example.output), [as_text(example.expected)])
        return self.result(result.score / 100)


class RougeL(Scorer):
    name = "rouge_l"
    version = "2"
    description = ("ROUGE-L F-measure (longest common subsequence of words, rouge-score) against the expected text; "
                   "each Chinese / Japanese character is a word (rouge-score alone drops them).")
    requires = REF

    def score(self, example: Example) -> Score:
        result = _rouge().score(as_text(example.expected), as_text(example.output))["rougeL"]
        return self.result(result.fmeasure, precision=result.precision, recall=result.recall)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


class TokenF1(Scorer):
    name = "token_f1"
    description = ("SQuAD token F1: words lowercased, punctuation and articles removed; 2PR / (P + R) over the "
                   "multiset of common words; 1 when both are empty.")
    requires = REF

    def score(self, example: Example) -> Score:
        out, exp = _squad_tokens(as_text(example.output)), _squad_tokens(as_text(example.expected))
        if not out and not exp:
            return self.result(1.0)
        common = sum((Counter(out) & Counter(exp)).values())
        if common == 0:
            return self.result(0.0)
        precision, recall = common / len(out), common / len(exp)
        return self.result(2 * precision * recall / (precision + recall), precision=precision, recall=recall)


SCORERS = (ExactMatch, Levenshtein, NumericDiff, JSONDiff, ListContains, Bleu, Chrf, RougeL, TokenF1)
