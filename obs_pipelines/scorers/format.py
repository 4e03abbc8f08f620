"""Format scorers: does the output have the shape asked for? Reference-free, 0 / 1 (bounds: graded)."""

from __future__ import annotations

import ast
import json
import re
from functools import lru_cache

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.language import identify
from obs_pipelines.scorers.text import lower, words


def _text(example: Example) -> str:
    return example.output if isinstance(example.output, str) else json.dumps(example.output)


_loads = json.loads
_CONTAINERS = frozenset({dict, list})


class ValidJSON(Scorer):
    name = "valid_json"
    description = ("1 if the output parses as a JSON object or array (autoevals' ValidJSON), or, with a "
                   "`schema`, as any JSON value valid against it (jsonschema); else 0.")
    defaults = {"schema": None}

    def __init__(self, **config) -> None:
        super().__init__(**config)
        self._plain = self.config["schema"] is None

    def __call__(self, example: Example) -> Score:
        output = example.output
        if self._plain and type(output) is str:  # the common case, inline (hot in backfills)
            try:
                parsed = _loads(output)
            except json.JSONDecodeError as exc:
                return self.result(0.0, error=str(exc))
            return Score.trusted(self.name, 1.0 if type(parsed) in _CONTAINERS else 0.0)
        return super().__call__(example)

    def score(self, example: Example) -> Score:
        import jsonschema

        schema = self.config["schema"]
        try:
            parsed = json.loads(example.output) if isinstance(example.output, str) else example.output
        except json.JSONDecodeError as exc:
            return self.result(0.0, error=str(exc))
        if schema is not None:
            try:
                jsonschema.validate(parsed, schema)
            except jsonschema.ValidationError as exc:
                return self.result(0.0, error=exc.message)
            return self.result(1.0)
        return self.result(float(isinstance(parsed, (dict, list))))


class JSONSchemaScorer(Scorer):
    name = "json_schema"
    description = ("1 if the output is JSON valid against `schema` (or, without one, against the expected value "
                   "as a schema); else 0, with the first violation in the details.")
    defaults = {"schema": None}

    def score(self, example: Example) -> Score:
        import jsonschema

        schema = self.config["schema"] if self.config["schema"] is not None else example.expected
        if not isinstance(schema, dict):
            return self.result(None, "no schema")
        try:
            parsed = json.loads(example.output) if isinstance(example.output, str) else example.output
            jsonschema.validate(parsed, schema)
        except json.JSONDecodeError as exc:
            return self.result(0.0, error=f"not JSON: {exc}")
        except jsonschema.ValidationError as exc:
            return self.result(0.0, error=exc.message, path=list(map(str, exc.absolute_path)))
        return self.result(1.0)


def _bounded(value: int, low: int | None, high: int | None) -> float:
    """1 inside [low, high]; outside, the ratio of the bound to the value (or value to bound)."""
    if low is not None and value < low:
        return value / low if low else 0.0
    if high is not None and value > high:
        return high / value
    return 1.0


class LengthBounds(Scorer):
    name = "length_bounds"
    description = ("1 if min_chars <= len(output) <= max_chars; below: len / min_chars, above: max_chars / len.")
    defaults = {"min_chars": 1, "max_chars": 4000}

    def score(self, example: Example) -> Score:
        n = len(_text(example))
        return self.result(_bounded(n, self.config["min_chars"], self.config["max_chars"]), chars=n)


class WordCountBounds(Scorer):
    name = "word_count_bounds"
    version = "2"
    description = ("1 if min_words <= words(output) <= max_words; below: n / min_words, above: max_words / n. "
                   "Words split at spaces and punctuation; each Chinese / Japanese character is a word.")
    defaults = {"min_words": 3, "max_words": 400}

    def score(self, example: Example) -> Score:
        n = len(words(_text(example)))
        return self.result(_bounded(n, self.config["min_words"], self.config["max_words"]), words=n)


@lru_cache(maxsize=256)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


class RegexMatch(Scorer):
    name = "regex_match"
    description = "1 if `pattern` (Python regex; default: the expected value) is found in the output, else 0."
    defaults = {"pattern": None, "ignore_case": False}

    def score(self, example: Example) -> Score:
        pattern = self.config["pattern"] or (example.expected if isinstance(example.expected, str) else None)
        if not pattern:
            return self.result(None, "no pattern")
        return self.result(float(bool(_compiled(pattern, self.config["ignore_case"]).search(_text(example)))))


def _needles(scorer: Scorer, example: Example, key: str) -> list[str] | None:
    values = scorer.config[key]
    if values is None:
        values = example.expected
    if isinstance(values, str):
        values = [values]
    if not values:
        return None
    return [str(v) for v in values]


def _found(text: str, needle: str, ignore_case: bool) -> bool:
    return needle.lower() in text.lower() if ignore_case else needle in text


class Contains(Scorer):
    name = "contains"
    description = "Share of `values` (default: the expected value / list) found in the output as substrings."
    defaults = {"values": None, "ignore_case": True}

    def score(self, example: Example) -> Score:
        needles = _needles(self, example, "values")
        if needles is None:
            return self.result(None, "nothing to look for")
        text = _text(example)
        missing = [n for n in needles if not _found(text, n, self.config["ignore_case"])]
        return self.result(1 - len(missing) / len(needles), missing=missing)


class Excludes(Scorer):
    name = "excludes"
    description = "1 if none of `values` occurs in the output; else 1 - share of values found."
    defaults = {"values": None, "ignore_case": True}

    def score(self, example: Example) -> Score:
        needles = _needles(self, example, "values")
        if needles is None:
            return self.result(None, "nothing to exclude")
        text = _text(example)
        found = [n for n in needles if _found(text, n, self.config["ignore_case"])]
        return self.result(1 - len(found) / len(needles), found=found)


class StartsWith(Scorer):
    name = "starts_with"
    description = "1 if the output (leading space stripped) starts with `prefix` (default: the expected value)."
    defaults = {"prefix": None, "ignore_case": False}

    def score(self, example: Example) -> Score:
        prefix = self.config["prefix"] if self.config["prefix"] is not None else example.expected
        if not isinstance(prefix, str) or not prefix:
            return self.result(None, "no prefix")
        text = _text(example).lstrip()
        if self.config["ignore_case"]:
            text, prefix = text.lower(), prefix.lower()
        return self.result(float(text.startswith(prefix)))


class EndsWith(Scorer):
    name = "ends_with"
    description = "1 if the output (trailing space stripped) ends with `suffix` (default: the expected value)."
    defaults = {"suffix": None, "ignore_case": False}

    def score(self, example: Example) -> Score:
        suffix = self.config["suffix"] if self.config["suffix"] is not None else example.expected
        if not isinstance(suffix, str) or not suffix:
            return self.result(None, "no suffix")
        text = _text(example).rstrip()
        if self.config["ignore_case"]:
            text, suffix = text.lower(), suffix.lower()
        return self.result(float(text.endswith(suffix)))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # sqlglot underlines the error position for terminals
_FENCE = re.compile(r"```(?:[\w+-]*)\n(.*?)```", re.DOTALL)


def _code(text: str) -> str:
    """The first fenced code block of a text, else the whole text."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


class ValidSQL(Scorer):
    name = "valid_sql"
    description = ("1 if the output (or its first ``` block) parses as SQL in `dialect` (sqlglot, error level "
                   "raise) and is not empty; else 0 with the parse error.")
    defaults = {"dialect": None}

    def score(self, example: Example) -> Score:
        import sqlglot
        from sqlglot.errors import ErrorLevel, ParseError, TokenError

        sql = _code(_text(example)).strip()
        if not sql:
            return self.result(0.0, error="empty")
        try:
            statements = sqlglot.parse(sql, read=self.config["dialect"], error_level=ErrorLevel.RAISE)
        except (ParseError, TokenError) as exc:
            return self.result(0.0, error=_ANSI.sub("", str(exc))[:300])
        statements = [s for s in statements if s is not None]
        # sqlglot reads unknown words as a bare column / alias: an English sentence is not SQL
        ok = bool(statements) and all(type(s).__name__ not in ("Column", "Alias", "Identifier") for s in statements)
        return self.result(float(ok), statements=len(statements))


class ValidPython(Scorer):
    name = "valid_python"
    description = "1 if the output (or its first ``` block) parses as Python (ast.parse), else 0 with the error."

    def score(self, example: Example) -> Score:
        code = _code(_text(example))
        try:
            ast.parse(code)
        except (SyntaxError, ValueError) as exc:
            return self.result(0.0, error=str(exc)[:300])
        return self.result(1.0)


_URL = re.compile(r"\bhttps?://[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+\.[a-z]{2,}", re.IGNORECASE)


class ContainsLink(Scorer):
    name = "contains_link"
    version = "2"
    description = ("Links as the rule wants them: with `want` = 'link' (default) 1 if the output contains an "
                   "http(s) URL or www. address, else 0; with `want` = 'none', 1 if it contains none. Not a "
                   "default scorer: whether a link is good depends on the app.")
    defaults = {"want": "link"}

    def __init__(self, **config) -> None:
        super().__init__(**config)
        if self.config["want"] not in ("link", "none"):
            raise ValueError(f"scorer contains_link: want must be 'link' or 'none', not {self.config['want']!r}")

    def score(self, example: Example) -> Score:
        text = _text(example)
        low = lower(text)
        links = _URL.findall(text) if "http" in low or "www." in low else []
        has = bool(links)
        return self.result(float(has if self.config["want"] == "link" else not has), links=links[:10])


class LanguageMatch(Scorer):
    name = "language_match"
    version = "2"
    description = ("1 if the output is in the input's language, else 0 (py3langid over the first 400 characters of "
                   "each, among `languages`: default its ISO 639-1 languages); null when either text is too short "
                   "to tell (fewer than `min_letters` letters, a CJK character counting four) or the model's "
                   "probability of its best language is below `min_confidence`.")
    requires = ("input", "output")
    defaults = {"min_letters": 10, "min_confidence": 0.5, "languages": None}

    def score(self, example: Example) -> Score:
        low, confident = self.config["min_letters"], self.config["min_confidence"]
        languages = tuple(sorted(self.config["languages"])) if self.config["languages"] else None
        asked, _p = identify(str(example.input), low, confident, languages=languages)
        answered, _p = identify(_text(example), low, confident, languages=languages)
        if asked is None or answered is None:
            return self.result(None, "language unknown", input_language=asked, output_language=answered)
        return self.result(float(asked == answered), input_language=asked, output_language=answered)


SCORERS = (ValidJSON, JSONSchemaScorer, LengthBounds, WordCountBounds, RegexMatch, Contains, Excludes, StartsWith,
           EndsWith, ValidSQL, ValidPython, ContainsLink, LanguageMatch)
