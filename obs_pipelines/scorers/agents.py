"""Agent scorers: over the tool calls of a request (``Example.tool_calls``: dicts with ``name``,
``arguments``, ``status`` and optionally ``output``) and its step count (``metadata['steps']``)."""

from __future__ import annotations

import json
from collections import Counter

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.text import as_text


def _calls(example: Example) -> list:
    return list(example.tool_calls or ())


def _signature(call) -> tuple[str, str]:
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return str(call.get("name")), json.dumps(arguments, sort_keys=True, default=str)


class LoopScore(Scorer):
    name = "loop_score"
    description = ("1 - repeated calls / calls, where a repeated call is one with the same tool name and "
                   "arguments as an earlier call of the request (a loop of n identical calls scores 1/n). Null "
                   "without tool calls.")
    requires = ()

    def score(self, example: Example) -> Score:
        calls = _calls(example)
        if not calls:
            return self.result(None, "no tool calls")
        counts = Counter(_signature(c) for c in calls)
        repeated = len(calls) - len(counts)
        worst = counts.most_common(1)[0]
        return self.result(1 - repeated / len(calls), calls=len(calls), repeated=repeated,
                           most_repeated=worst[0][0], most_repeated_count=worst[1])


class ToolErrorRate(Scorer):
    name = "tool_error_rate"
    description = "1 - tool calls in status error / tool calls. Null without tool calls."
    requires = ()

    def score(self, example: Example) -> Score:
        calls = _calls(example)
        if not calls:
            return self.result(None, "no tool calls")
        errors = [c.get("name") for c in calls if str(c.get("status", "ok")).lower() == "error"]
        return self.result(1 - len(errors) / len(calls), calls=len(calls), errors=len(errors),
                           failed_tools=sorted(set(map(str, errors))))


class StepBudget(Scorer):
    name = "step_budget"
    description = ("1 if the request took at most max_steps steps (llm + tool spans, metadata['steps']), else "
                   "max_steps / steps.")
    requires = ()
    defaults = {"max_steps": 12}

    def score(self, example: Example) -> Score:
        steps = example.metadata.get("steps")
        if steps is None:
            steps = len(_calls(example)) or None
        if steps is None:
            return self.result(None, "no step count")
        budget = self.config["max_steps"]
        return self.result(1.0 if steps <= budget else budget / steps, steps=int(steps), max_steps=budget)


class ToolArgsValid(Scorer):
    name = "tool_args_valid"
    version = "2"
    description = ("Share of tool calls whose arguments are a JSON object (or already a mapping); a call without "
                   "arguments (none, empty text or JSON null: a tool that takes no parameters) is valid. Null "
                   "without calls.")
    requires = ()

    def score(self, example: Example) -> Score:
        calls = _calls(example)
        if not calls:
            return self.result(None, "no tool calls")
        valid = sum(_arguments_valid(call.get("arguments")) for call in calls)
        return self.result(valid / len(calls), calls=len(calls), valid=valid)


def _arguments_valid(arguments) -> bool:
    if arguments is None or isinstance(arguments, dict):
        return True
    text = as_text(arguments).strip()
    if not text:
        return True  # a parameterless tool is called with nothing
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return False
    return parsed is None or isinstance(parsed, dict)


SCORERS = (LoopScore, ToolErrorRate, StepBudget, ToolArgsValid)
