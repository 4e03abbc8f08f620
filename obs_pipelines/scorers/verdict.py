"""Reading a judge's verdict out of whatever it answered, in time linear in the answer's length.

A judge is asked for its reasoning, then one choice among labels (``A``, ``B`` ... or ``Y`` / ``N``, or the
labels of a custom rubric such as ``1`` ... ``5``). Answers come back in many shapes; all of these are read:

* a function call (OpenAI ``tool_calls`` / legacy ``function_call``) whose arguments hold the choice;
* a JSON object anywhere in the text: alone, in a code fence, after prose, after a ``<think>`` block, one of
  two objects (the last one carrying a verdict wins: models restate or correct themselves at the end);
* a key-value line, ``Choice: B`` / ``Score: 5`` / ``"choice": "A"`` in broken JSON (the last one wins);
* a bare label: ``B``, ``(B)``, ``**B**``.

The verdict key may be named choice, verdict, label, answer, score, rating or grade. Its value must be one of
the labels (compared case-insensitively; ``5.0`` reads as ``5``); a boolean counts only for a yes / no pair of
labels (``true`` is the ``Y`` label). Anything else is ``malformed``: the score is null, never 0.

Linear time: the text is scanned once for balanced braces (string-aware), only the outermost balanced spans
(disjoint) are handed to ``json.loads``, and every regex is anchored on a literal or bounded repetition, so an
answer of 200,000 ``{`` costs one scan (the greedy ``\\{.*\\}`` this replaces was quadratic on it).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICT_KEYS = ("choice", "verdict", "label", "answer", "score", "rating", "grade")
REASON_KEYS = ("reasoning", "reasons", "reason", "explanation", "rationale", "thoughts")
_YES, _NO = frozenset({"Y", "YES"}), frozenset({"N", "NO"})
_THINK_CLOSE = re.compile(r"</think(?:ing)?\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?\s*>", re.IGNORECASE)
_KEYS = "|".join(VERDICT_KEYS)
# "choice": "A" / 'score': 5 / "verdict": true inside (possibly broken) JSON
_QUOTED_KEY = re.compile(rf"[\"']({_KEYS})[\"']\s*:\s*(?:\"([^\"\n]{{0,40}})\"|'([^'\n]{{0,40}})'|([-\w.]{{1,40}}))",
                         re.IGNORECASE)
# Choice: B / **Score**: 5 / Final answer = (C), at the start of a line
_LINE_KEY = re.compile(rf"^[ \t>*#_-]{{0,8}}(?:final[ \t]+)?({_KEYS})[ \t*_]{{0,4}}[:=][ \t*_]{{0,4}}"
                       r"[\"'(\[]?[ \t]{0,2}([-\w.]{1,40})", re.IGNORECASE | re.MULTILINE)
_BRACES = re.compile(r'[{}"]')
_BARE = re.compile(r"[\s*_`\"'([{]*([-\w.]{1,40}?)[\s*_`\"')\]}.!]*")


@dataclass(frozen=True)
class Verdict:
    """What the judge chose: ``label`` (one of the labels) or None, its reasoning, how it was read
    (tool_call, json, key, bare) and ``status`` ok / malformed / empty."""

    label: str | None
    reasoning: str | None
    status: str
    form: str | None = None
    problem: str | None = None


def _normal(value: str) -> str:
    return value.strip().strip("()[].*_`\"' ").upper()


def _label_of(value: Any, labels: Sequence[str]) -> tuple[str | None, str | None]:
    """(the label ``value`` names, else None with why)."""
    by_normal = {_normal(label): label for label in labels}
    if isinstance(value, bool):  # (before numbers: a bool is an int)
        normals = set(by_normal)
        yes, no = normals & _YES, normals & _NO
        if len(labels) == 2 and yes and no:
            return by_normal[next(iter(yes if value else no))], None
        return None, f"boolean {value!r} where the labels are {', '.join(labels)}"
    if isinstance(value, (int, float)):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        return None, f"{type(value).__name__} is not a label"
    normal = _normal(value)
    if normal in by_normal:
        return by_normal[normal], None
    try:  # "5.0" for the label "5"
        number = float(normal)
    except ValueError:
        number = None
    if number is not None and number.is_integer() and str(int(number)) in by_normal:
        return by_normal[str(int(number))], None
    if normal in _YES | _NO or normal in ("TRUE", "FALSE"):
        return _label_of(normal in _YES or normal == "TRUE", labels)
    return None, f"{value[:40]!r} is not one of {', '.join(labels)}"


def _from_mapping(obj: Mapping, labels: Sequence[str]) -> tuple[str | None, str | None, str | None, bool]:
    """(label, reasoning, problem, has a verdict key) of a parsed object."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    reasoning = next((lowered[k] for k in REASON_KEYS if k in lowered), None)
    if isinstance(reasoning, list):
        reasoning = "\n".join(str(r) for r in reasoning)
    reasoning = None if reasoning is None else str(reasoning)
    for key in VERDICT_KEYS:
        if key in lowered:
            label, problem = _label_of(lowered[key], labels)
            return label, reasoning, problem, True
    return None, reasoning, None, False


def without_thinking(text: str) -> str:
    """The answer after a reasoning model's ``<think>...</think>`` block(s); an unclosed block (the model was
    cut off mid-thought) leaves only what came before it."""
    last = _last(_THINK_CLOSE.finditer(text))
    if last is not None:
        text = text[last.end():]
    opened = _THINK_OPEN.search(text)
    return text[:opened.start()] if opened else text


def json_objects(text: str) -> list[Any]:
    """The outermost balanced ``{...}`` spans of ``text`` that parse as JSON, in order: one string-aware scan,
    spans that are disjoint (so json.loads reads each character at most once), deep nesting refused."""
    stack: list[int] = []
    outer: list[tuple[int, int]] = []  # closed spans not inside another closed span (yet)
    in_string = False
    for match in _BRACES.finditer(text):
        char, pos = match.group(), match.start()
        if char == '"':
            if in_string:
                in_string = _escaped_at(text, pos)
            else:
                in_string = bool(stack)  # quotes outside any object are prose
        elif in_string:
            continue
        elif char == "{":
            stack.append(pos)
        elif stack:  # "}"
            start = stack.pop()
            while outer and outer[-1][0] > start:  # spans inside this one are no longer outermost
                outer.pop()
            outer.append((start, pos + 1))
    found = []
    for start, end in outer:
        try:
            found.append(json.loads(text[start:end]))
        except (ValueError, RecursionError):
            continue
    return found


def _escaped_at(text: str, pos: int) -> bool:
    """Whether the character at ``pos`` is escaped by an odd run of backslashes before it (bounded look-back:
    a run longer than 64 is taken as even, which can only end a string early, never loop)."""
    run = 0
    while run < 64 and pos - run - 1 >= 0 and text[pos - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def parse_verdict(text: str | None, labels: Sequence[str], tool_arguments: Iterable[Any] = ()) -> Verdict:
    """The judge's choice among ``labels`` from its answer text and / or function-call arguments."""
    tool_problem = problem = None
    for arguments in reversed(list(tool_arguments)):
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError):
                tool_problem = "function call arguments are not JSON"
                continue
        if isinstance(arguments, Mapping):
            label, reasoning, why, keyed = _from_mapping(arguments, labels)
            if label is not None:
                return Verdict(label, reasoning, "ok", "tool_call")
            tool_problem = why or tool_problem or "function call without a choice"
    if not text or not text.strip():
        return Verdict(None, None, "malformed" if tool_problem else "empty", None, tool_problem or "no answer text")
    answer = without_thinking(text)
    for obj in reversed(json_objects(answer)):
        if isinstance(obj, Mapping):
            label, reasoning, why, keyed = _from_mapping(obj, labels)
            if label is not None:
                return Verdict(label, reasoning, "ok", "json")
            if keyed:
                problem = why
                break  # the last object carrying a verdict decides; a bad value there is not rescued
    if problem is None:
        keyed = _last(_QUOTED_KEY.finditer(answer)) or _last(_LINE_KEY.finditer(answer))
        if keyed is not None:
            value = next(g for g in keyed.groups()[1:] if g is not None)
            label, problem = _label_of(value, labels)
            if label is not None:
                return Verdict(label, _before(answer, keyed.start()), "ok", "key")
    if problem is None:
        bare = _BARE.fullmatch(answer) if len(answer) <= 64 else None
        if bare is not None:
            label, problem = _label_of(bare.group(1), labels)
            if label is not None:
                return Verdict(label, None, "ok", "bare")
    return Verdict(None, None, "malformed", None, problem or tool_problem or "no choice found in the answer")


def _last(matches: Iterable[re.Match]) -> re.Match | None:
    tail = deque(matches, maxlen=1)  # (consumes the iterator, keeps its last item)
    return tail[0] if tail else None


def _before(text: str, end: int) -> str | None:
    reasoning = text[:end].strip()
    return reasoning or None


__all__ = ["REASON_KEYS", "VERDICT_KEYS", "Verdict", "json_objects", "parse_verdict", "without_thinking"]
