"""Agent loops judged per route x tool (issue 18): agent_paths.tool_loops names, per tool a request called,
whether its loop repeats that tool; the shipped rule agent_tool_loop_share explodes it and fires for the looping
tool of the route, not for the other tools its requests called."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from obs_pipelines.alerts.evaluate import evaluate
from obs_pipelines.alerts.payload import contributor_text
from obs_pipelines.alerts.rules import parse_rule
from obs_pipelines.observability.agents import tool_loops

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
H = datetime(2026, 11, 5, 12, 0)
HOUR = timedelta(hours=1)
HISTORY = [H - d * timedelta(days=1) for d in (1, 2, 3)] + [H - k * HOUR for k in range(1, 13)]


def shipped_rule():
    rules = yaml.safe_load(EXAMPLE.read_text())["alerts"]["rules"]
    return parse_rule(next(r for r in rules if r["name"] == "agent_tool_loop_share"))


def test_a_repeated_call_flags_its_tool_only():
    # lookup x5 with the same arguments, then refund once: the loop is lookup's
    evidence = {"repeated_call": {"tool": "lookup", "args_hash": "ab", "count": 5}}
    assert tool_loops(["lookup"] * 5 + ["refund"], evidence) == {"lookup": 1, "refund": 0}


def test_a_repeated_cycle_flags_every_tool_of_the_cycle():
    # search > rank repeated three times, then answer: search and rank loop, answer does not
    evidence = {"repeated_cycle": {"cycle": ["search", "rank"], "repeats": 3, "start_step": 1}}
    assert tool_loops(["search", "rank"] * 3 + ["answer"], evidence) == {"search": 1, "rank": 1, "answer": 0}


def test_similar_outputs_alone_flag_every_tool_called():
    # the model repeats itself with no repeated tool call: the whole turn loops, each tool of it counts
    assert tool_loops(["search", "answer"], {"repeated_output": {"outputs": 3}}) == {"search": 1, "answer": 1}


def test_a_request_without_a_loop_flags_no_tool():
    assert tool_loops(["search", "search", "answer"], {}) == {"search": 0, "answer": 0}


def paths(hour: datetime, n: int, looping: int) -> list[dict]:
    """n agent_paths rows of route /triage calling lookup then set_priority; the first ``looping`` loop on lookup."""
    rows = []
    for i in range(n):
        names = ["lookup"] * (6 if i < looping else 1) + ["set_priority"]
        evidence = {"repeated_call": {"tool": "lookup", "args_hash": "ab", "count": 6}} if i < looping else {}
        rows.append({"window_start": hour, "trace_id": f"{hour:%d%H}-{i}", "route": "/triage",
                     "loop_detected": bool(evidence), "tool_loops": json.dumps(tool_loops(names, evidence))})
    return rows


@pytest.mark.parametrize("per_hour", [20, 400])
def test_the_route_x_tool_rule_fires_for_the_looping_tool_and_not_for_its_sibling(per_hour):
    # a rare stuck request (1 in 20 hours' worth: one loop every other hour) in history; in the judged hour 60%
    # of the requests loop on lookup. lookup's group fires, set_priority (called by the same requests) does not
    rows = [r for k, hour in enumerate(HISTORY) for r in paths(hour, per_hour, k % 2)]
    rows += paths(H, per_hour, int(per_hour * 0.6))
    results = {r.group["tool"]: r for r in evaluate(shipped_rule(), pd.DataFrame(rows), H, H + HOUR)}
    assert not results["lookup"].passed and results["lookup"].value == pytest.approx(0.6)
    assert results["set_priority"].passed and results["set_priority"].value == 0
    assert results["lookup"].group == {"route": "/triage", "tool": "lookup"}


def test_rows_written_before_tool_loops_existed_count_under_no_tool():
    rows = paths(H, 10, 5)
    for r in rows:
        r["tool_loops"] = None
    assert evaluate(shipped_rule(), pd.DataFrame(rows), H, H + HOUR) == []


def test_the_summary_names_a_looping_tool_with_its_repeated_path():
    top = {"dimension": "tool", "value": "lookup", "share": 1.0, "path": "lookup (same arguments) repeated"}
    assert contributor_text(top) == "tool=lookup (100% of the change, repeated path: lookup (same arguments) repeated)"
