"""Agent paths: per request with tool calls, the ordered tool sequence and a deterministic loop detector.

Rules (thresholds in settings.observability), each reported with its evidence:
* ``repeated_call``: the same tool with the same arguments (sha1 of the argument text) ``loop_min_repeats``
  times or more in the request;
* ``repeated_cycle``: a cycle of 2-4 tool calls (not all the same tool) repeated back to back
  ``loop_cycle_repeats`` times or more;
* ``repeated_output``: ``loop_similar_outputs`` consecutive model outputs, each at least
  ``output_similarity`` similar to the one before (rapidfuzz ratio, 0-100).

Steps are ordered and hashed with pandas; the rules then look at each tool-using request's short path.
``tool_loops`` names, per tool the request called, whether its loop repeats that tool: the alert rule on loops
judges each route x tool from it (a loop on one tool does not count against the others).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

from obs_pipelines.observability.reading import member
from obs_pipelines.store.traces import NULL_LABEL

HASH_CHARS = 12


def _hash(text) -> str | None:
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    return hashlib.sha1(str(text).encode()).hexdigest()[:HASH_CHARS]


def repeated_call(steps: list[tuple[str, str | None]], min_repeats: int) -> dict | None:
    counts: dict[tuple[str, str | None], int] = {}
    for step in steps:
        counts[step] = counts.get(step, 0) + 1
    worst = max(counts.items(), key=lambda kv: (kv[1], kv[0][0], kv[0][1] or ""), default=None)
    if worst is None or worst[1] < min_repeats:
        return None
    return {"tool": worst[0][0], "args_hash": worst[0][1], "count": worst[1]}


def repeated_cycle(names: list[str], min_repeats: int) -> dict | None:
    for length in (2, 3, 4):
        for i in range(len(names) - length * min_repeats + 1):
            cycle = names[i:i + length]
            if len(set(cycle)) == 1:
                continue
            repeats = 1
            while names[i + repeats * length:i + (repeats + 1) * length] == cycle:
                repeats += 1
            if repeats >= min_repeats:
                return {"cycle": cycle, "repeats": repeats, "start_step": i + 1}
    return None


def repeated_output(outputs: list[str], min_similar: int, similarity: float) -> dict | None:
    run, best = 1, None
    for i in range(1, len(outputs)):
        ratio = fuzz.ratio(outputs[i - 1], outputs[i])
        run = run + 1 if ratio >= similarity else 1
        if run >= min_similar:
            best = {"outputs": run, "min_ratio": round(similarity, 1), "last_ratio": round(ratio, 1),
                    "example": outputs[i][:200]}
    return best


def tool_loops(names: list[str], evidence: dict) -> dict[str, int]:
    """Each tool called (first-call order) -> 1 when the loop repeats it: the repeated call's tool, the repeated
    cycle's tools; similar model outputs repeated without either: every tool called (the whole turn repeats)."""
    looped: set[str] = set()
    if "repeated_call" in evidence:
        looped.add(evidence["repeated_call"]["tool"])
    if "repeated_cycle" in evidence:
        looped.update(evidence["repeated_cycle"]["cycle"])
    if not looped and "repeated_output" in evidence:
        looped.update(names)
    return {name: int(name in looped) for name in dict.fromkeys(names)}


def agent_paths(spans: pd.DataFrame, texts: pd.DataFrame, routes: pd.Series, settings) -> pd.DataFrame:
    """``agent_paths`` rows (without window columns). ``settings``: ObservabilitySettings."""
    columns = ["trace_id", "route", "tool_calls", "llm_calls", "total_steps", "distinct_tools", "path", "steps",
               "tool_errors", "loop_detected", "loop_kind", "loop_evidence", "tool_loops"]
    tools = spans[spans["kind"] == "tool"]
    if tools.empty:
        return pd.DataFrame(columns=columns)
    args = texts.loc[texts["kind"] == "tool", ["trace_id", "span_id", "input"]]
    tools = tools.merge(args, on=["trace_id", "span_id"], how="left").sort_values(
        ["trace_id", "start_time", "span_id"])
    tools["args_hash"] = tools["input"].map(_hash)
    tools["tool"] = tools["name"].fillna(NULL_LABEL).str.replace(r"^execute_tool ", "", regex=True)
    llm = spans[(spans["kind"] == "llm").to_numpy() & member(spans["trace_id"], tools["trace_id"])]
    outputs = texts.loc[texts["kind"] == "llm", ["trace_id", "span_id", "output"]].merge(
        llm[["trace_id", "span_id", "start_time"]], on=["trace_id", "span_id"]).dropna(subset=["output"])
    outputs = outputs.sort_values(["trace_id", "start_time", "span_id"]).groupby("trace_id")["output"].agg(
        list).to_dict()
    llm_calls = llm.groupby("trace_id").size().to_dict()
    route_of = routes.to_dict()

    # one slice per request of each column (the steps are sorted by request: its rows are contiguous), then
    # the rules over each short path
    tids = tools["trace_id"].to_numpy()
    bounds = np.flatnonzero(tids[1:] != tids[:-1]) + 1
    firsts, lasts = np.r_[0, bounds], np.r_[bounds, len(tids)]
    columns_of = [tools[c].tolist() for c in ("tool", "args_hash", "status", "duration_ms")]
    per_trace = ((tids[a], *(col[a:b] for col in columns_of)) for a, b in zip(firsts, lasts, strict=True))
    rows = []
    for trace_id, names, hashes, statuses, durations in per_trace:
        steps = [{"name": n, "args_hash": h, "status": s, "latency_ms": None if pd.isna(ms) else round(ms, 1)}
                 for n, h, s, ms in zip(names, hashes, statuses, durations, strict=True)]
        evidence = {}
        found = repeated_call(list(zip(names, hashes, strict=True)), settings.loop_min_repeats)
        if found:
            evidence["repeated_call"] = found
        found = repeated_cycle(names, settings.loop_cycle_repeats)
        if found:
            evidence["repeated_cycle"] = found
        found = repeated_output(outputs.get(trace_id, []), settings.loop_similar_outputs,
                                settings.output_similarity)
        if found:
            evidence["repeated_output"] = found
        n_llm = int(llm_calls.get(trace_id, 0))
        rows.append({
            "trace_id": trace_id,
            "route": route_of.get(trace_id, NULL_LABEL),
            "tool_calls": len(names),
            "llm_calls": n_llm,
            "total_steps": len(names) + n_llm,
            "distinct_tools": len(set(names)),
            "path": " > ".join(names),
            "steps": json.dumps(steps),
            "tool_errors": sum(s == "error" for s in statuses),
            "loop_detected": bool(evidence),
            "loop_kind": ",".join(evidence) or None,
            "loop_evidence": json.dumps(evidence) if evidence else None,
            "tool_loops": json.dumps(tool_loops(names, evidence)),
        })
    return pd.DataFrame(rows, columns=columns)
