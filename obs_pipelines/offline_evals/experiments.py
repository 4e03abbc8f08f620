"""Experiments: the user's task run on every case of a dataset version, scored, stored with the git state.

The task is ``module:function``; it is called with the case's input (and the whole case as a second argument
when it takes two), sync or async. It returns the output text, or a dict with ``output`` (and optionally
``cost_usd``). Calls run concurrently (``concurrency`` in flight): async tasks on the event loop, sync tasks
on daemon threads (a hung call can never keep the process alive). A call that raises or runs past
``timeout_s`` is recorded on its case (``error``) and the experiment goes on.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.offline_evals.gitrepo import GitState, git_state
from obs_pipelines.offline_evals.tables import experiment_results, experiments
from obs_pipelines.scorers.base import Example, Scorer
from obs_pipelines.store import db, migrate


@dataclass
class CaseResult:
    case_id: str
    output: Any = None
    error: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class Experiment:
    experiment_id: str
    dataset: str
    dataset_version: str
    task: str
    scorers: dict[str, str]  # name -> version
    git: GitState
    started_at: datetime
    finished_at: datetime
    results: list[CaseResult]
    concurrency: int
    timeout_s: float
    name: str | None = None
    error_score: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(r.error is not None for r in self.results)

    def mean_scores(self) -> dict[str, float | None]:
        """Mean of each scorer over the cases it applies to; a case whose task failed scores error_score."""
        means = {}
        for name in self.scorers:
            values = [r.scores.get(name) for r in self.results]
            values = [v for v in values if v is not None]
            means[name] = sum(values) / len(values) if values else None
        return means


# ---- loading what the user names --------------------------------------------------------------------------
def load_callable(spec: str) -> Callable:
    """``package.module:function`` (the working directory is importable, as for ``python -m``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"task {spec!r}: expected module:function")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"task {spec!r} is not callable")
    return target


def load_scorers(names: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                 registry_get: Callable[..., Scorer] | None = None) -> list[Scorer]:
    """Scorers by registry name (scorers/registry.py) with their ``options`` (the settings'
    online_evals.scorer_options: offline and online scores then mean the same), or ``module:attribute`` for a
    scorer of the user's own (an instance, or a class / factory called without arguments)."""
    found = []
    for name in names:
        if ":" in name:
            obj = load_callable(name)
            scorer = obj() if inspect.isclass(obj) or not hasattr(obj, "name") else obj
        else:
            if registry_get is None:
                from obs_pipelines.scorers import registry

                registry_get = registry.get
            scorer = registry_get(name, **dict((options or {}).get(name, {})))
        found.append(scorer)
    return found


def judge_client(settings: Any):
    """The judge client of ``settings`` (settings.online_evals.judge, priced like the online phase's), or None
    when no judge endpoint is configured: offline and online judge scores then come from the same judge."""
    online = getattr(settings, "online_evals", None)
    if online is None:
        return None
    from obs_pipelines.pricing import load_prices

    return online.judge.client(load_prices(getattr(settings, "price_overrides", None)))


def bind_judge(scorers: Sequence[Scorer], client: Any) -> None:
    """Bind ``client`` to every judge scorer that has no judge yet (as online_evals.scoring.scorers_for does);
    without a client they keep giving null scores ("no judge endpoint configured")."""
    for scorer in scorers:
        if client is not None and hasattr(scorer, "bind") and getattr(scorer, "client", None) is None:
            scorer.bind(client)


# ---- running -------------------------------------------------------------------------------------------------
def _takes_case(task: Callable) -> bool:
    try:
        params = [p for p in inspect.signature(task).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _in_daemon_thread(fn: Callable[[], Any]) -> asyncio.Future:
    """Run ``fn`` on a daemon thread; the future resolves with its result (a hung call keeps only its
    thread, never the process, and never a worker slot the next case needs)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(setter, value) -> None:
        if not future.done():
            setter(value)

    def report(setter, value) -> None:
        try:
            loop.call_soon_threadsafe(settle, setter, value)
        except RuntimeError:  # the loop is closed: the experiment timed this call out and finished without it
            pass

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - the case records whatever the task raised
            report(future.set_exception, exc)
        else:
            report(future.set_result, value)

    threading.Thread(target=run, daemon=True, name="obs-eval-task").start()
    return future


def _split_output(value: Any) -> tuple[Any, float | None]:
    if isinstance(value, dict) and "output" in value:
        cost = value.get("cost_usd")
        return value["output"], float(cost) if isinstance(cost, (int, float)) else None
    return value, None


def _score(case: dict, result: CaseResult, scorers: Sequence[Scorer], error_score: float) -> None:
    if result.error is not None:
        for scorer in scorers:
            result.scores[scorer.name] = error_score
            result.reasons[scorer.name] = "task failed"
        return
    output = result.output if isinstance(result.output, str) or result.output is None else json.dumps(result.output)
    example = Example(input=case.get("input"), output=output, expected=case.get("expected"),
                      context=tuple(case.get("context") or ()), metadata={"tags": case.get("tags") or []})
    for scorer in scorers:
        try:
            score = scorer(example)
        except Exception as exc:  # noqa: BLE001 - one broken scorer must not lose the experiment
            result.scores[scorer.name], result.reasons[scorer.name] = None, f"scorer error: {exc!r}"[:300]
            continue
        result.scores[scorer.name] = score.value
        if score.reason:
            result.reasons[scorer.name] = score.reason


async def _run_cases(cases: Sequence[dict], task: Callable, concurrency: int, timeout_s: float,
                     on_done: Callable[[CaseResult], None]) -> list[CaseResult]:
    is_async = inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(
        task.__call__ if callable(task) else None)
    with_case = _takes_case(task)
    limit = asyncio.Semaphore(concurrency)

    async def one(case: dict) -> CaseResult:
        args = (case["input"], case) if with_case else (case["input"],)
        result = CaseResult(case["case_id"])
        async with limit:
            began = time.perf_counter()
            try:
                call = task(*args) if is_async else _in_daemon_thread(lambda: task(*args))
                value = await asyncio.wait_for(call, timeout_s)
                if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
                    value = await asyncio.wait_for(value, timeout_s)
                result.output, result.cost_usd = _split_output(value)
            except asyncio.TimeoutError:
                result.error = f"timeout after {timeout_s:g} s"
            except Exception as exc:  # noqa: BLE001 - recorded on the case
                result.error = f"{type(exc).__name__}: {exc}"[:1000]
            result.latency_ms = (time.perf_counter() - began) * 1000
        on_done(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in cases)))


def run_experiment(dataset: str, version: str, cases: Sequence[dict], task: Callable, task_name: str,
                   scorers: Sequence[Scorer], *, concurrency: int = 20, timeout_s: float = 60.0,
                   error_score: float = 0.0, name: str | None = None, cwd: Path | None = None,
                   progress: Callable[[int], None] = lambda _n: None) -> Experiment:
    """Run ``task`` on every case and score it; ``progress(1)`` after each case."""
    started = db.utcnow()

    def on_done(_result: CaseResult) -> None:
        progress(1)

    results = asyncio.run(_run_cases(cases, task, concurrency, timeout_s, on_done))
    by_id = {c["case_id"]: c for c in cases}
    judges = [s for s in scorers if getattr(s, "concurrent", False) and getattr(s, "client", None) is not None]
    if judges:  # network-bound: the cases are judged as many at a time as the judge client allows
        from concurrent.futures import ThreadPoolExecutor

        workers = max(getattr(s.client, "concurrency", 1) for s in judges)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="offline-judge") as pool:
            list(pool.map(lambda r: _score(by_id[r.case_id], r, scorers, error_score), results))
    else:
        from obs_pipelines.scorers.batching import batch_gc

        with batch_gc():
            for result in results:
                _score(by_id[result.case_id], result, scorers, error_score)
    return Experiment(
        experiment_id=f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", dataset=dataset, dataset_version=version,
        task=task_name, scorers={s.name: _scorer_version(s) for s in scorers}, git=git_state(cwd),
        started_at=started, finished_at=db.utcnow(), results=results, concurrency=concurrency,
        timeout_s=timeout_s, name=name, error_score=error_score,
    )


def _scorer_version(scorer: Scorer) -> str:
    """The scorer's fingerprint (code version + hash of its options) when it has one, else its version."""
    return str(getattr(scorer, "fingerprint", None) or getattr(scorer, "version", "1"))


# ---- storing and reading -----------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value, default=str)


def save_experiment(engine: Engine, exp: Experiment) -> None:
    migrate.ensure_tables(engine, [experiments, experiment_results])
    latencies = [r.latency_ms for r in exp.results if r.latency_ms is not None]
    costs = [r.cost_usd for r in exp.results if r.cost_usd is not None]
    with engine.begin() as conn:
        conn.execute(sa.insert(experiments), [{
            "experiment_id": exp.experiment_id, "name": exp.name, "dataset": exp.dataset,
            "dataset_version": exp.dataset_version, "task": exp.task, "scorers": json.dumps(exp.scorers),
            "git_commit": exp.git.commit, "git_branch": exp.git.branch, "git_dirty": exp.git.dirty,
            "started_at": exp.started_at, "finished_at": exp.finished_at, "case_count": len(exp.results),
            "error_count": exp.error_count, "mean_scores": json.dumps(exp.mean_scores()),
            "mean_latency_ms": sum(latencies) / len(latencies) if latencies else None,
            "total_cost_usd": sum(costs) if costs else None, "concurrency": exp.concurrency,
            "timeout_s": exp.timeout_s,
        }])
        if exp.results:
            conn.execute(sa.insert(experiment_results), [{
                "experiment_id": exp.experiment_id, "case_id": r.case_id, "output": _text(r.output),
                "error": r.error, "latency_ms": r.latency_ms, "cost_usd": r.cost_usd,
                "scores": json.dumps(r.scores), "score_reasons": json.dumps(r.reasons) if r.reasons else None,
            } for r in exp.results])


def list_experiments(engine: Engine, dataset: str | None = None, branch: str | None = None) -> pd.DataFrame:
    """Stored experiments, newest first."""
    migrate.ensure_tables(engine, [experiments])
    query = sa.select(experiments).order_by(experiments.c.started_at.desc(), experiments.c.experiment_id.desc())
    if dataset is not None:
        query = query.where(experiments.c.dataset == dataset)
    if branch is not None:
        query = query.where(experiments.c.git_branch == branch)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in experiments.c])


def get_experiment(engine: Engine, experiment_id: str) -> dict:
    """The experiment row (a unique id prefix is enough)."""
    found = list_experiments(engine)
    match = found[found["experiment_id"].astype(str).str.startswith(experiment_id)]
    if len(match) != 1:
        raise ValueError(f"{'no' if match.empty else 'more than one'} experiment {experiment_id!r}")
    return match.iloc[0].to_dict()


def experiment_scores(engine: Engine, experiment_id: str) -> pd.DataFrame:
    """One row per case: case_id, output, error, latency_ms and one column per scorer (null: no score)."""
    query = (sa.select(experiment_results).where(experiment_results.c.experiment_id == experiment_id)
             .order_by(experiment_results.c.case_id))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    fixed = ["case_id", "output", "error", "latency_ms"]
    return pd.DataFrame([{**{k: r[k] for k in fixed}, **json.loads(r["scores"] or "{}")} for r in rows],
                        columns=None if rows else fixed)
