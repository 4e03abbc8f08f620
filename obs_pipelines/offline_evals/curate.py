"""Selecting regression cases from production, one day at a time, by the rules of a dataset (settings).

Sources (a case's tags say which selected it):
- ``error``: requests that failed (the root span in status error);
- ``negative_feedback``: feedback at or below ``negative_feedback_max``, and corrections (their comment is the
  expected output of the case);
- ``low_score``: an online eval score that failed its rule's threshold (``eval_scores.passed``), or at or below
  the dataset's per-scorer cut in ``low_score_max``; scorers without a direction never count (table
  ``eval_scores``, skipped with a log line while the online evals phase has not written it);
- ``alert_exemplar``: exemplar traces of alerts of the day (table ``alerts``, skipped likewise);
- ``agent_loop``: the same tool called with the same input ``loop_min_repeats`` times or more in a trace;
- ``empty_retrieval``: a retrieval span that returned no document.

Loops and empty retrievals are read from the observability phase's tables (agent_paths, retrieval_log) for
a day it wrote, else computed from ``spans``. Each selected trace becomes one case: the root span's input and output, the
retrieved documents as context, the newest correction as expected output; PII scrubbed, deduplicated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.offline_evals import datasets
from obs_pipelines.offline_evals.tables import regression_cases as rc
from obs_pipelines.settings import DatasetRules
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame, read_window, window_params
from obs_pipelines.store.schema import feedback, spans
from obs_pipelines.store.traces import WINDOW

IN_CHUNK = 500  # trace ids per IN (...) list
# where the online evals phase's and the alerts' tables keep what this phase reads (first name found wins)
SCORE_COLUMNS = ("score", "value")
SCORER_COLUMNS = ("scorer", "scorer_name", "name")
SCORE_TIME_COLUMNS = ("window_start", "start_time", "scored_at", "computed_at", "created_at")


@dataclass
class Curated:
    """One day's cases of one dataset, and what happened on the way."""

    cases: list[dict]
    selected: dict[str, int] = field(default_factory=dict)  # traces selected per source
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not read
    scrubbed: dict[str, int] = field(default_factory=dict)  # PII values replaced per kind
    duplicates: int = 0  # cases merged into another by the dedup


# ---- the sources: each returns {trace_id: metadata} ----------------------------------------------------------
def _errors(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    """Requests that failed: the root span is in error (a call that failed and was retried successfully is
    not a regression case). The error type and message are the failed spans' (the smallest, deterministic)."""
    frame = fetch_frame(engine, f"SELECT trace_id, MIN(error_type) AS error_type, MIN(error_message) AS message, "
                                "MAX(CASE WHEN parent_span_id IS NULL THEN 1 ELSE 0 END) AS root_failed "
                                f"FROM spans WHERE {WINDOW} AND status = 'error' GROUP BY trace_id",
                        window_params(start, end))
    return {r.trace_id: {"error_type": r.error_type, "error_message": (r.message or "")[:300]}
            for r in frame.itertuples() if r.root_failed == 1}


def _published(engine: Engine, table: str, start: datetime, end: datetime) -> bool:
    """The observability phase wrote ``table`` for this day (it exists and has a row of the day)."""
    if table not in sa.inspect(engine).get_table_names():
        return False
    rows = fetch_frame(engine, f"SELECT 1 AS found FROM {table} WHERE window_start >= :start AND window_start < :end "
                               "LIMIT 1", window_params(start, end))
    return not rows.empty


def _agent_loops(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    """The observability phase's verdict (agent_paths.loop_detected: repeated calls, cycles, outputs) when it
    wrote the day, so a loop means the same here as in its rollups and alerts; else the same tool with the
    same input ``loop_min_repeats`` times in a trace, from spans."""
    if _published(engine, "agent_paths", start, end):
        frame = read_window(engine, "agent_paths", start, end, ("trace_id", "loop_kind"), time_column="window_start",
                            where="loop_detected = :yes", params={"yes": True}, typed=False)
        return {r.trace_id: {"loop_kind": r.loop_kind, "loop_source": "agent_paths"} for r in frame.itertuples()}
    frame = fetch_frame(engine, f"SELECT trace_id, name, COUNT(*) AS n FROM spans WHERE {WINDOW} AND kind = 'tool' "
                                "GROUP BY trace_id, name, input HAVING COUNT(*) >= :repeats",
                        {**window_params(start, end), "repeats": rules.loop_min_repeats})
    found: dict[str, dict] = {}
    for r in frame.sort_values("n", ascending=False).itertuples():
        found.setdefault(r.trace_id, {"loop_tool": r.name, "loop_repeats": int(r.n), "loop_source": "spans"})
    return found


def _empty_retrievals(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    """Successful retrievals that returned nothing: the observability phase's retrieval_log when it wrote the
    day, else the spans' retrieval.documents."""
    if _published(engine, "retrieval_log", start, end):
        frame = fetch_frame(engine, "SELECT DISTINCT trace_id FROM retrieval_log WHERE window_start >= :start "
                                    "AND window_start < :end AND no_documents = :yes AND status = 'ok'",
                            {**window_params(start, end), "yes": True})
        return {t: {"empty_retrieval": True, "retrieval_source": "retrieval_log"} for t in frame["trace_id"]}
    if db.is_postgres(engine):
        docs = "attributes -> 'retrieval.documents'"
        count = f"CASE WHEN json_typeof({docs}) = 'array' THEN json_array_length({docs}) END"
    else:
        count = "json_array_length(attributes, '$.\"retrieval.documents\"')"
    frame = fetch_frame(engine, f"SELECT DISTINCT trace_id FROM spans WHERE {WINDOW} AND kind = 'retrieval' "
                                f"AND status = 'ok' AND COALESCE({count}, 0) = 0", window_params(start, end))
    return {t: {"empty_retrieval": True, "retrieval_source": "spans"} for t in frame["trace_id"]}


def _negative_feedback(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    query = (sa.select(feedback.c.trace_id, feedback.c.name, feedback.c.value, feedback.c.comment)
             .where(feedback.c.created_at >= start, feedback.c.created_at < end,
                    (feedback.c.value <= rules.negative_feedback_max) | feedback.c.name.in_(rules.correction_names))
             .order_by(feedback.c.created_at))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found: dict[str, dict] = {}
    for trace_id, name, value, comment in rows:
        found.setdefault(trace_id, {"feedback": []})["feedback"].append(
            {"name": name, "value": value, "comment": (comment or "")[:300]})
    return found


def _first(columns: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    present = set(columns)
    return next((c for c in candidates if c in present), None)


def directionless(scorer: str) -> bool:
    """A scorer whose score has no "higher is better" (its class sets ``higher_is_better = None``): a low value
    of it is not a failure, so it never selects a case. Scorers the registry does not know count as directed."""
    from obs_pipelines.scorers.registry import REGISTRY  # the scorer library both eval phases use

    cls = REGISTRY.get(scorer)
    return cls is not None and getattr(cls, "higher_is_better", True) is None


def _low_scores(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    """Scores that failed their online eval rule's threshold (``passed`` false: each scorer is cut where its
    rule says, not at one global value), or at or below the dataset's own cut for a scorer named in
    ``low_score_max``; scorers without a direction never count."""
    columns = [c["name"] for c in sa.inspect(engine).get_columns("eval_scores")]
    score, scorer, when = (_first(columns, SCORE_COLUMNS), _first(columns, SCORER_COLUMNS),
                           _first(columns, SCORE_TIME_COLUMNS))
    if "trace_id" not in columns or not score or not scorer or not when:
        raise _Skip(f"eval_scores has no trace_id / scorer / score / time column (columns: {', '.join(columns)})")
    if "passed" in columns:
        failed = "passed = :no"
    elif "threshold" in columns:
        failed = f"{score} < threshold"
    elif rules.low_score_max:
        failed = "1 = 0"
    else:
        raise _Skip("eval_scores has no passed / threshold column and low_score_max names no scorer")
    cut = max(rules.low_score_max.values(), default=-1.0)
    frame = fetch_frame(engine, f"SELECT trace_id, {scorer} AS scorer, {score} AS score, "
                                f"CASE WHEN {failed} THEN 1 ELSE 0 END AS failed FROM eval_scores "
                                f"WHERE {when} >= :start AND {when} < :end AND {score} IS NOT NULL "
                                f"AND ({failed} OR {score} <= :cut)",
                        {**window_params(start, end), "no": False, "cut": cut})
    found: dict[str, dict] = {}
    for r in frame.itertuples():
        name = str(r.scorer)
        own_cut = rules.low_score_max.get(name)
        low = float(r.score) <= own_cut if own_cut is not None else r.failed == 1
        if not low or directionless(name):
            continue
        lows = found.setdefault(r.trace_id, {"low_scores": {}})["low_scores"]
        lows[name] = min(float(r.score), lows.get(name, 1.0))
    return found


def _alert_exemplars(engine: Engine, start: datetime, end: datetime, rules: DatasetRules) -> dict[str, dict]:
    """Exemplar traces of the alerts whose first breached window starts in the day: a column
    ``exemplar_trace_ids``, else the alert JSON in ``payload`` (the alerts phase's table)."""
    columns = [c["name"] for c in sa.inspect(engine).get_columns("alerts")]
    source = next((c for c in ("exemplar_trace_ids", "payload") if c in columns), None)
    if source is None or "window_start" not in columns:
        raise _Skip(f"alerts has no exemplar_trace_ids / payload / window_start column (columns: {', '.join(columns)})")
    rule = "rule" if "rule" in columns else "NULL"
    frame = read_window(engine, "alerts", start, end, (f"{rule} AS rule", f"{source} AS ids"),
                        time_column="window_start", typed=False)
    found: dict[str, dict] = {}
    for r in frame.itertuples():
        ids = json.loads(r.ids) if isinstance(r.ids, str) else r.ids
        if isinstance(ids, dict):  # the alert payload
            ids = ids.get("exemplar_trace_ids")
        for trace_id in ids or ():
            found.setdefault(str(trace_id), {"alerts": []})["alerts"].append(r.rule)
    return found


class _Skip(Exception):
    """A source that cannot be read on this store (its table is missing or has another shape)."""


SOURCES: dict[str, tuple[Callable[..., dict[str, dict]], str | None]] = {
    # source: (reader, table it needs beyond the raw tables)
    "error": (_errors, None),
    "negative_feedback": (_negative_feedback, None),
    "low_score": (_low_scores, "eval_scores"),
    "alert_exemplar": (_alert_exemplars, "alerts"),
    "agent_loop": (_agent_loops, None),
    "empty_retrieval": (_empty_retrievals, None),
}


def select_traces(engine: Engine, start: datetime, end: datetime, rules: DatasetRules,
                  log: Callable[[str], None] = lambda _m: None) -> tuple[dict[str, dict], Curated]:
    """trace_id -> {"tags": [...], "metadata": {...}} of the traces the rules select in [start, end)."""
    report = Curated(cases=[])
    selected: dict[str, dict] = {}
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names()) | set(inspector.get_view_names())  # eval_scores is a view
    for source in rules.sources:
        reader, needs = SOURCES[source]
        if needs and needs not in tables:
            report.skipped[source] = f"table {needs} does not exist (yet): source {source} skipped"
            log(report.skipped[source])
            continue
        try:
            found = reader(engine, start, end, rules)
        except _Skip as exc:
            report.skipped[source] = f"{exc}: source {source} skipped"
            log(report.skipped[source])
            continue
        report.selected[source] = len(found)
        for trace_id, metadata in found.items():
            entry = selected.setdefault(trace_id, {"tags": [], "metadata": {}})
            entry["tags"].append(source)
            entry["metadata"].update(metadata)
    return selected, report


# ---- traces -> cases --------------------------------------------------------------------------------------
_SPAN_COLUMNS = ("trace_id", "parent_span_id", "kind", "start_time", "route", "model", "input", "output")


def _spans_of(engine: Engine, trace_ids: list[str], *where) -> pd.DataFrame:
    """Span rows (no attributes) of the traces, ``where`` filters added; IN lists of IN_CHUNK ids."""
    cols = [spans.c[c] for c in _SPAN_COLUMNS]
    frames = []
    with engine.connect() as conn:
        for i in range(0, len(trace_ids), IN_CHUNK):
            query = sa.select(*cols).where(spans.c.trace_id.in_(trace_ids[i:i + IN_CHUNK]), *where)
            frames.append(pd.DataFrame(conn.execute(query).all(), columns=list(_SPAN_COLUMNS)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(_SPAN_COLUMNS))


def _contexts(engine: Engine, trace_ids: list[str]) -> dict[str, list[str]]:
    """The retrieved document texts of each trace, in retrieval order."""
    context: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for i in range(0, len(trace_ids), IN_CHUNK):
            rows = conn.execute(sa.select(spans.c.trace_id, spans.c.attributes)
                                .where(spans.c.trace_id.in_(trace_ids[i:i + IN_CHUNK]), spans.c.kind == "retrieval")
                                .order_by(spans.c.trace_id, spans.c.start_time)).all()
            for trace_id, attributes in rows:
                for doc in (attributes or {}).get("retrieval.documents") or ():
                    text = (doc.get("content") or doc.get("text")) if isinstance(doc, dict) else doc
                    if text:
                        context.setdefault(trace_id, []).append(str(text))
    return context


def _corrections(engine: Engine, trace_ids: list[str], names: list[str]) -> dict[str, str]:
    """The newest correction (feedback comment) per trace: the expected output of its case."""
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(trace_ids), IN_CHUNK):
            rows = conn.execute(sa.select(feedback.c.trace_id, feedback.c.comment)
                                .where(feedback.c.trace_id.in_(trace_ids[i:i + IN_CHUNK]),
                                       feedback.c.name.in_(names), feedback.c.comment.is_not(None))
                                .order_by(feedback.c.created_at)).all()
            found.update({t: c for t, c in rows if c})
    return found


def _requests(engine: Engine, trace_ids: list[str]) -> pd.DataFrame:
    """Per trace: the input / output to replay (the root span's, else the first span's with an input), the
    route and the root's start time. Only root spans are read, except for traces whose root has no input."""
    roots = _spans_of(engine, trace_ids, spans.c.parent_span_id.is_(None))
    roots = roots.sort_values(["trace_id", "start_time"], kind="stable").drop_duplicates("trace_id")
    lacking = sorted(set(trace_ids) - set(roots.loc[roots["input"].notna(), "trace_id"]))
    if lacking:  # rootless traces, or roots without an input: the first span (root first) with an input
        rest = _spans_of(engine, lacking)
        rest["is_root"] = rest["parent_span_id"].isna()
        rest = rest.sort_values(["trace_id", "is_root", "start_time"], ascending=[True, False, True], kind="stable")
        first_route = rest[rest["route"].notna()].drop_duplicates("trace_id").set_index("trace_id")["route"]
        picked = rest[rest["input"].notna()].drop_duplicates("trace_id").set_index("trace_id")
        picked["route"] = first_route.reindex(picked.index)
        start = rest.drop_duplicates("trace_id").set_index("trace_id")["start_time"]
        picked["start_time"] = start.reindex(picked.index)
        roots = pd.concat([roots[~roots["trace_id"].isin(lacking)], picked.reset_index()], ignore_index=True)
    return roots[roots["input"].notna()]


def _models(engine: Engine, trace_ids: list[str]) -> dict[str, str]:
    """The model of each trace's first llm call."""
    calls = _spans_of(engine, trace_ids, spans.c.kind == "llm", spans.c.model.is_not(None))
    calls = calls.sort_values(["trace_id", "start_time"], kind="stable").drop_duplicates("trace_id")
    return dict(zip(calls["trace_id"], calls["model"], strict=True))


def build_cases(engine: Engine, selected: dict[str, dict], rules: DatasetRules) -> list[dict]:
    """One case per identity among the selected traces (input + retrieved documents + expected output; the
    newest trace's, with the tags of all of them): its input and output, route, expected output (the newest
    correction), retrieved documents and the model of its first llm call. Models are read only for the
    traces that stay after the exact dedup."""
    trace_ids = sorted(selected)
    if not trace_ids:
        return []
    requests = _requests(engine, trace_ids)
    if rules.routes is not None:
        requests = requests[requests["route"].isin(rules.routes)]
    expected = _corrections(engine, trace_ids, rules.correction_names)
    context = _contexts(engine, sorted(requests["trace_id"]))
    cases = []
    for r in requests.itertuples(index=False):
        docs, wanted = context.get(r.trace_id, []), expected.get(r.trace_id)
        cases.append({
            "case_id": datasets.case_id(r.input, docs, wanted), "input": r.input,
            "output": r.output if pd.notna(r.output) else None, "expected": wanted, "context": docs,
            "tags": sorted(set(selected[r.trace_id]["tags"])), "trace_id": r.trace_id,
            "route": r.route if pd.notna(r.route) else None, "metadata": dict(selected[r.trace_id]["metadata"]),
            "selected_at": r.start_time,
        })
    cases = datasets.deduplicate(cases, similarity=100.0)
    models = _models(engine, [c["trace_id"] for c in cases])
    for case in cases:
        if case["trace_id"] in models:
            case["metadata"]["model"] = models[case["trace_id"]]
    return cases


def curate_day(engine: Engine, start: datetime, end: datetime, rules: DatasetRules,
               log: Callable[[str], None] = lambda _m: None) -> Curated:
    """The cases the rules select from the traces of [start, end): scrubbed, with their ids, deduplicated."""
    selected, report = select_traces(engine, start, end, rules, log)
    cases = build_cases(engine, selected, rules)
    if rules.scrub_pii:
        cases = [datasets.scrub_case(c, report.scrubbed) for c in cases]
    for case in cases:  # the id of what is stored: the scrubbed input
        case["case_id"] = datasets.case_id(case["input"], case["context"], case["expected"])
    report.cases = datasets.deduplicate(cases, rules.near_duplicate_similarity)
    report.duplicates = len(selected) - len(report.cases)
    return report


def cases_frame(dataset: str, start: datetime, end: datetime, cases: list[dict]) -> pd.DataFrame:
    """Rows of ``regression_cases`` for one day of one dataset."""
    now = db.utcnow()
    rows = [{"window_start": start, "window_end": end, "dataset": dataset, **datasets.case_row(c),
             "selected_at": pd.Timestamp(c["selected_at"]).to_pydatetime() if c.get("selected_at") else None,
             "computed_at": now} for c in cases]
    return pd.DataFrame(rows)


def window_cases(engine: Engine, dataset: str, start: datetime, end: datetime) -> list[dict]:
    """The stored regression cases of ``dataset`` curated for the days in [start, end)."""
    query = sa.select(rc).where(rc.c.dataset == dataset, rc.c.window_start >= start, rc.c.window_start < end)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{**datasets.case_from_row(dict(r)), "selected_at": r["selected_at"]} for r in rows]


def build_version(engine: Engine, dataset: str, rules: DatasetRules, day_start: datetime,
                  day_end: datetime) -> tuple[str, bool, list[dict]]:
    """The dataset version as of the day ending at ``day_end``: the cases of the last ``lookback_days`` days,
    deduplicated across days, balanced per tag with the size cap; stored unless that content exists."""
    window_start = day_end - (day_end - day_start) * rules.lookback_days
    cases = datasets.deduplicate(window_cases(engine, dataset, window_start, day_end), rules.near_duplicate_similarity)
    cases = datasets.balance(cases, rules.per_tag, rules.max_cases)
    version, created = datasets.save_version(engine, dataset, cases, "production", (window_start, day_end))
    return version, created, cases
