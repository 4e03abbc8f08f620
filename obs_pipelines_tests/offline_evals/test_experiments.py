"""Experiments: sync and async tasks, concurrency, per-case errors and timeouts, storage."""

from __future__ import annotations

import asyncio
import threading

from obs_pipelines.offline_evals import datasets, experiments
from obs_pipelines_tests.offline_evals.conftest import Exact


def _cases(n: int) -> list[dict]:
    return [{"case_id": datasets.case_id(f"q{i}"), "input": f"q{i}", "expected": f"a{i}", "context": [], "tags": []}
            for i in range(n)]


def answer(text: str) -> str:
    return "a" + text[1:]


def test_a_task_that_raises_or_hangs_on_some_cases_is_recorded_and_the_experiment_completes():
    never = threading.Event()  # set only after the experiment: the q2 call hangs until then
    hung_call_returned = threading.Event()

    def flaky(text: str) -> str:
        if text == "q1":
            raise RuntimeError("upstream said no")
        if text == "q2":
            never.wait(600)
            hung_call_returned.set()
        return answer(text)

    try:
        exp = experiments.run_experiment("d", "v", _cases(6), flaky, "t:flaky", [Exact()], timeout_s=0.5)
        assert not hung_call_returned.is_set()  # the experiment finished without waiting for the hung call
    finally:
        # release the hung call and wait for its thread: a thread left running makes later tests' forked
        # pools refuse to fork (obs_pipelines.forking.fork_context)
        never.set()
        for thread in [t for t in threading.enumerate() if t.name == "obs-eval-task"]:
            thread.join(timeout=10)
    by_case = {r.case_id: r for r in exp.results}
    assert by_case[datasets.case_id("q1")].error == "RuntimeError: upstream said no"
    assert by_case[datasets.case_id("q2")].error == "timeout after 0.5 s"
    assert exp.error_count == 2
    assert by_case[datasets.case_id("q1")].scores == {"exact": 0.0}  # a failed case scores error_score
    assert exp.mean_scores() == {"exact": 4 / 6}


def test_async_tasks_run_concurrently_and_report_cost():
    in_flight, peak = 0, 0
    all_in: list[asyncio.Event] = []  # made on the experiment's event loop

    async def task(text: str, case: dict) -> dict:
        nonlocal in_flight, peak
        if not all_in:
            all_in.append(asyncio.Event())
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 25:
            all_in[0].set()
        try:  # the first 25 calls meet here: only calls that run together get past it
            await asyncio.wait_for(all_in[0].wait(), 10)
        except TimeoutError:
            all_in[0].set()  # fail this call, not every later one
            raise
        await asyncio.sleep(0.1)  # the call's own latency
        in_flight -= 1
        return {"output": case["expected"], "cost_usd": 0.001}

    seen: list[int] = []
    exp = experiments.run_experiment("d", "v", _cases(100), task, "t:task", [Exact()], concurrency=25,
                                     progress=seen.append)
    assert peak == 25  # concurrency=25: never more in flight
    assert len(seen) == 100 and exp.error_count == 0
    assert exp.mean_scores() == {"exact": 1.0}
    assert all(r.cost_usd == 0.001 and r.latency_ms >= 100 for r in exp.results)


def test_sync_tasks_run_concurrently_on_threads():
    meet = threading.Barrier(20, timeout=10)  # passes only when 20 calls are in flight at once

    def slow(text: str) -> str:
        meet.wait()  # a broken barrier (fewer threads) raises: the case errs and scores 0
        return answer(text)

    exp = experiments.run_experiment("d", "v", _cases(60), slow, "t:slow", [Exact()], concurrency=20)
    assert exp.error_count == 0 and exp.mean_scores() == {"exact": 1.0}


def test_an_experiment_is_stored_with_its_cases_scores_and_scorer_versions(store):
    exp = experiments.run_experiment("d", "v1", _cases(5), answer, "mod:answer", [Exact()])
    experiments.save_experiment(store.engine, exp)
    row = experiments.get_experiment(store.engine, exp.experiment_id[:12])
    assert (row["dataset"], row["dataset_version"], row["task"], row["case_count"]) == ("d", "v1", "mod:answer", 5)
    assert experiments.json.loads(row["scorers"]) == {"exact": "2"}
    scores = experiments.experiment_scores(store.engine, exp.experiment_id)
    assert sorted(scores["exact"]) == [1.0] * 5
    assert scores["latency_ms"].notna().all()
