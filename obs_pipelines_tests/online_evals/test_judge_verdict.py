"""Reading a judge's verdict (scorers/verdict.py): every answer shape a real judge produces, answers that
must be refused as malformed (a null score, never 0), and hostile answers that must not take quadratic time."""

from __future__ import annotations

import threading

import pytest

from obs_pipelines.scorers.verdict import (
    json_objects,
    parse_verdict,
    without_thinking,
)

LETTERS = ("A", "B", "C", "D", "E")
YES_NO = ("Y", "N")
ONE_TO_FIVE = ("1", "2", "3", "4", "5")


@pytest.mark.parametrize("answer, label, form", [
    # the asked-for shape, with braces inside the reasoning string
    ('{"reasoning": "the set {a, b} is complete", "choice": "C"}', "C", "json"),
    # a code fence around it, lower-case label
    ('```json\n{"reasoning": "r", "choice": "b"}\n```', "B", "json"),
    # prose before and after the object
    ('Let me check. {"reasoning": "r", "choice": "D"} Hope this helps.', "D", "json"),
    # a reasoning model: the JSON inside <think> is a draft, the one after it is the answer
    ('<think>maybe {"choice": "A"}? no.</think>\n{"reasoning": "r", "choice": "E"}', "E", "json"),
    # two objects (an example, then the verdict): the last one carrying a verdict wins
    ('Format: {"choice": "A"}. My answer: {"choice": "C"}', "C", "json"),
    # a stray brace in prose before the object
    ('The case {x is odd. {"choice": "B"}', "B", "json"),
    # other names of the verdict key
    ('{"verdict": "(D)"}', "D", "json"),
    # broken JSON (cut off after the choice): the quoted key still reads
    ('{"choice": "A", "reasoning": "the submission is a sub', "A", "key"),
    # a key line after free reasoning
    ("The answer restates the expert answer.\nChoice: (C)", "C", "key"),
    ("Reasoning first.\n**Final answer:** E", "E", "key"),
    # a bare label
    ("B", "B", "bare"),
    ("(A).", "A", "bare"),
    ("**D**", "D", "bare"),
])
def test_each_answer_shape_gives_its_label(answer, label, form):
    verdict = parse_verdict(answer, LETTERS)
    assert (verdict.label, verdict.status, verdict.form) == (label, "ok", form)


def test_the_reasoning_is_read_from_the_object():
    verdict = parse_verdict('{"reasoning": "It says 5 days, the answer 30.", "choice": "D"}', LETTERS)
    assert verdict.reasoning == "It says 5 days, the answer 30."


def test_a_function_call_answer_is_read_from_its_arguments():
    verdict = parse_verdict(None, LETTERS, ['{"reasoning": "same facts", "choice": "C"}'])
    assert (verdict.label, verdict.reasoning, verdict.form) == ("C", "same facts", "tool_call")


def test_function_call_arguments_already_parsed_are_read_too():
    assert parse_verdict("", YES_NO, [{"choice": "N"}]).label == "N"


def test_score_lines_read_on_a_numeric_scale():
    # a rubric whose labels are 1-5: "Score: 5" and {"score": 5.0} both name the label 5
    assert parse_verdict("The answer is complete.\nScore: 5", ONE_TO_FIVE).label == "5"
    assert parse_verdict('{"score": 5.0}', ONE_TO_FIVE).label == "5"
    assert parse_verdict('{"score": 3}', ONE_TO_FIVE).label == "3"


def test_a_boolean_verdict_counts_only_for_a_yes_no_question():
    # "true" answers a yes / no question (Y); on five lettered options it names none of them
    assert parse_verdict('{"score": true}', YES_NO).label == "Y"
    assert parse_verdict('{"score": false}', YES_NO).label == "N"
    refused = parse_verdict('{"score": true}', LETTERS)
    assert (refused.label, refused.status) == (None, "malformed") and "boolean" in refused.problem


@pytest.mark.parametrize("answer", [
    "I think it is pretty good!",  # no choice at all
    '{"choice": "Z"}',  # a label that is not an option
    '{"score": 5}',  # a number where the options are letters
    '{"reasoning": "r"}',  # reasoning without a choice
    "<think>still thinking about {\"choice\": \"A\"}",  # cut off inside the thinking: no answer yet
    "Answer: the submission looks fine",  # a key line whose value is not a label
])
def test_anything_else_is_malformed_never_a_zero(answer):
    verdict = parse_verdict(answer, LETTERS)
    assert (verdict.label, verdict.status) == (None, "malformed") and verdict.problem


def test_an_empty_answer_is_empty():
    assert parse_verdict("  ", LETTERS).status == "empty" and parse_verdict(None, LETTERS).status == "empty"


def test_a_bad_value_in_the_last_verdict_object_is_not_rescued_by_an_earlier_one():
    # the judge's final object says "Z": an earlier draft's "A" is not its verdict
    assert parse_verdict('{"choice": "A"} then {"choice": "Z"}', LETTERS).status == "malformed"


def test_thinking_blocks_are_removed_and_an_unclosed_one_ends_the_answer():
    assert without_thinking("<think>a</think>x<thinking>b</thinking>y") == "y"
    assert without_thinking("before <think>never closed") == "before "


def test_json_objects_are_the_outermost_balanced_spans():
    assert json_objects('a {"x": {"y": 1}} b {"z": "}"} {bad}') == [{"x": {"y": 1}}, {"z": "}"}]


def _finishes(fn, *args) -> bool:
    """Runs fn(*args) on a thread; True when it returned within a bound orders of magnitude above what a
    linear parse needs (milliseconds) and far below what the quadratic one did (never finished)."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fn(*args), done.set()), daemon=True)
    thread.start()
    return done.wait(60)


@pytest.mark.parametrize("hostile", [
    "{" * 200_000,  # the probe's answer: the old greedy regex never finished
    '{"a":' * 200_000,  # deep nesting of a valid prefix
    '{"choice": "' * 100_000,  # the verdict key over and over, strings never closed
    "Choice: " * 100_000,
    "}" * 100_000 + "{" * 100_000,
    '"' * 200_000,
    "\\" * 200_000,
])
def test_hostile_answers_are_read_in_linear_time_and_refused(hostile):
    results = []
    assert _finishes(lambda: results.append(parse_verdict(hostile, LETTERS)))
    assert results[0].label is None
