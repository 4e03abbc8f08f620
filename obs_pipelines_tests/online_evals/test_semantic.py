"""semantic_similarity: a local embedding model when the optional extra is installed, a null score otherwise."""

from __future__ import annotations

import pytest

from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example
from obs_pipelines.scorers.semantic import MISSING, model_available

scorer = registry.get("semantic_similarity")


def test_without_the_extra_the_score_is_null_and_says_how_to_install_it(monkeypatch):
    from obs_pipelines.scorers import semantic

    monkeypatch.setattr(semantic, "_model", lambda: None)
    result = scorer(Example(output="The cat sat.", expected="A cat was sitting."))
    assert result.value is None and result.reason == MISSING


def test_a_missing_expected_answer_is_a_null_score():
    assert scorer(Example(output="x")).value is None


@pytest.mark.skipif(not model_available(), reason="the optional extra obs_pipelines[embeddings] is not installed")
def test_paraphrases_score_higher_than_unrelated_answers():
    paraphrase = scorer(Example(output="The invoice is due on the first of March.",
                                expected="Payment of the bill is expected by March 1."))
    unrelated = scorer(Example(output="Our office dog is called Biscuit.",
                               expected="Payment of the bill is expected by March 1."))
    same = scorer(Example(output="Reset your password from the login page.",
                          expected="Reset your password from the login page."))
    assert same.value == pytest.approx(1.0, abs=1e-5)
    assert paraphrase.value > 0.5 > unrelated.value
