"""Language identification for ``language_match``: py3langid (langid.py's naive Bayes over byte n-grams, 97
languages, the model ships inside the wheel; nothing is downloaded).

A text is "unknown" rather than guessed when it is too short to tell (fewer than ``min_letters`` letters: "ok",
"Thanks!") or when the model's normalised probability of its best language is below ``min_confidence``.
Only the first ``max_chars`` characters are read: the language of an answer is settled by its opening, and
identification cost must not grow with a 20,000-character output.
"""

from __future__ import annotations

from functools import lru_cache

from obs_pipelines.scorers.text import normalize

MAX_CHARS = 400


@lru_cache(maxsize=4)
def _identifier(languages: tuple[str, ...] | None = None):
    """The packaged model, loaded once per process and language set (about a second) and only when a scorer
    needs it. By default it chooses among the model's ISO 639-1 languages (two-letter codes: langid.py's
    original 97); the regional varieties the newer model adds with three-letter codes (Extremaduran,
    Nigerian Pidgin, Walloon ...) otherwise take probability from Spanish, English or French on short texts."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages is None:
        languages = tuple(c for c in identifier.labels if len(c) == 2 and c != "zxx")
    identifier.set_languages(languages)
    # the chosen languages' columns of the model (float16, 100,053 features x ~116 languages) come out of
    # set_languages in Fortran order, so each classification's gather of its ~300 features' rows read strided
    # memory (~300 us of a ~600 us classification); the same values as float32 in C order (23 -> 46 MB) are
    # gathered in ~20 us. The product is unchanged: numpy casts the float16 rows to float32 before the same
    # float32 matmul (bit-identical probabilities, tested)
    import numpy as np

    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
    return identifier


def _weight(text: str) -> int:
    """Letters, a CJK character counting as four (it carries a word)."""
    if text.isascii():
        return sum(c.isalpha() for c in text)
    return sum(4 if ord(c) >= 0x3040 else 1 for c in text if c.isalpha())


@lru_cache(maxsize=4096)
def identify(text: str, min_letters: int = 10, min_confidence: float = 0.5, max_chars: int = MAX_CHARS,
             languages: tuple[str, ...] | None = None) -> tuple[str | None, float]:
    """(ISO 639-1 code or None when unknown, the model's probability of its best language)."""
    sample = normalize(text[:max_chars]).strip()
    weight = _weight(sample[:64])  # (most texts are settled by their opening)
    if weight < min_letters and _weight(sample[64:]) + weight < min_letters:
        return None, 0.0
    language, probability = _identifier(languages).classify(sample)
    probability = float(probability)
    return (language if probability >= min_confidence else None), probability
