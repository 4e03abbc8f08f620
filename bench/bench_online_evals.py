"""Benchmark of the online evals phase (issue 12, "Speed"; run by hand, not by pytest). Everything is measured
in ONE run, so compare the ratios, not the seconds (the machine is shared and its speed varies between runs).

    .venv/bin/python bench/bench_online_evals.py [--responses 4000] [--pairs 3000] [--days 7] [--rate 0.1]
        [--parts scorers,parity,judge,backfill]

* ``scorers``: the default scorer set (registry.DEFAULT_SCORERS, no LLM) over ``--responses`` generated
  responses of real lengths (issue 23: outputs median ~430 / p90 ~14k characters, cut at 20,000 as
  responses.py cuts them; contexts median ~1.9k / p90 ~19k; log-normal through those points; travel, banking
  and HR sentences with numbers, money, dates and names; tool calls on a third), on one core, per CPU
  second, with the garbage-collector setting scoring uses (scorers/batching.py: batch_gc): "warm" retrieves documents
  from a 5,000-document pool with Zipf popularity (a knowledge base),
  "cold" makes every document new. Target >= 2,000 responses per CPU second. Also the cost of each scorer
  alone on new warm responses, slowest first (``--profile``: cProfile of the warm run).
* ``parity``: every scorer autoevals also has (ExactMatch, Levenshtein, NumericDiff, JSONDiff, ValidJSON,
  ListContains) against autoevals on the same ``--pairs`` inputs, alternated, best of 3. Target: ours <= 1x
  autoevals' time each.
* ``judge``: the judge_answer_relevance scorer over 3 hours of generated traffic against a fake OpenAI-compatible
  endpoint on 127.0.0.1 answering in 200 ms, default concurrency. Target >= 40 judgments/s.
* ``backfill`` (SQLite): ``online_evals_hourly_job`` in process over ``--days`` days of generated traffic in
  one single-run backfill, then the same backfill again (every score already stored for the current scorer
  versions). Target: the second < 5% of the first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.scorers import registry  # noqa: E402
from obs_pipelines.scorers.base import Example  # noqa: E402
from obs_pipelines.scorers.batching import batch_gc  # noqa: E402

# A vocabulary of other domains than the generator's (travel, banking, HR), so that the texts carry numbers
# with units, money, dates, names and negations the way help-center answers do.
NOUNS = ("booking fare refund transfer account card payment balance statement leave payroll contract manager "
         "baggage passport visa hotel room deposit fee limit branch loan mortgage policy claim benefit pension "
         "schedule seat upgrade lounge voucher invoice salary overtime holiday allowance insurance").split()
VERBS = ("is", "must be", "can be", "will be", "is not", "cannot be", "should be", "may be")
PARTICIPLES = ("reported", "changed", "refunded", "approved", "charged", "transferred", "paid", "cancelled",
               "requested", "confirmed", "issued", "blocked", "renewed", "reviewed")
UNITS = ("days", "hours", "weeks", "business days", "months", "EUR", "%", "minutes", "bags", "nights")
NAMES = ("Lufthansa", "Zurich", "Visa", "Mastercard", "Heathrow", "SEPA", "Monday", "March", "Workday", "Geneva")


def _sentence(rng: random.Random) -> str:
    noun, other = rng.choice(NOUNS), rng.choice(NOUNS)
    kind = rng.random()
    if kind < 0.35:
        return (f"The {noun} {rng.choice(VERBS)} {rng.choice(PARTICIPLES)} within {rng.randint(1, 90)} "
                f"{rng.choice(UNITS)} of the {other}.")
    if kind < 0.55:
        return f"Each {noun} costs ${rng.randint(5, 500)}.{rng.randint(0, 99):02d} and covers the {other}."
    if kind < 0.75:
        return (f"Customers flying with {rng.choice(NAMES)} {rng.choice(VERBS)} {rng.choice(PARTICIPLES)} for "
                f"the {noun} until {rng.choice(NAMES)} {rng.randint(1, 28)}.")
    return (f"Your {noun} {rng.choice(VERBS)} {rng.choice(PARTICIPLES)} by the {other} team, and the {noun} "
            f"{rng.choice(VERBS)} {rng.choice(PARTICIPLES)} after that.")


def _text(rng: random.Random, chars: int, sentences: list[str] | None = None, grounded: float = 0.0) -> str:
    parts, size = [], 0
    while size < chars:
        s = rng.choice(sentences) if sentences and rng.random() < grounded else _sentence(rng)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)[:max(chars, 1)]


# the real-length distribution: outputs median ~430 / p90 ~14k characters, contexts median ~1.9k /
# p90 ~19k (log-normal through those two points), outputs cut at max_text_chars (20,000) as responses.py does
OUTPUT_MEDIAN, OUTPUT_P90, CONTEXT_MEDIAN, CONTEXT_P90, MAX_TEXT = 430, 14_000, 1_900, 19_000, 20_000
Z90 = 1.2816


def _lognormal(rng: random.Random, median: float, p90: float) -> int:
    import math

    return max(1, int(rng.lognormvariate(math.log(median), math.log(p90 / median) / Z90)))


def make_examples(n: int, seed: int = 1, pool_size: int = 5000, cold: bool = False) -> list[Example]:
    """Responses of real lengths. Contexts are retrieved from a pool of ``pool_size`` documents (median ~400
    characters, log-normal) with Zipf popularity, as a knowledge base serves them, until the response's drawn
    context length; ``cold``: every document is new (no document is ever seen twice). Answers copy 70% of their
    sentences from their context. Tool calls on every third response."""
    rng = random.Random(seed)
    pool = [_text(rng, _lognormal(rng, 400, 2000)) for _ in range(0 if cold else pool_size)]
    weights = [1 / (rank + 1) for rank in range(len(pool))]
    examples = []
    for i in range(n):
        target = _lognormal(rng, CONTEXT_MEDIAN, CONTEXT_P90)
        context: list[str] = []
        size = 0
        while size < target:
            doc = _text(rng, _lognormal(rng, 400, 2000)) if cold else rng.choices(pool, weights)[0]
            if context and size + len(doc) > 1.5 * target:
                break  # (a long document would overshoot the drawn length)
            context.append(doc)
            size += len(doc)
        sentences = [s + "." for d in context for s in d.split(". ") if s]
        output = _text(rng, min(MAX_TEXT, _lognormal(rng, OUTPUT_MEDIAN, OUTPUT_P90)), sentences, 0.7)
        question = f"How long does the {rng.choice(NOUNS)} take to be {rng.choice(PARTICIPLES)}?"
        tool_calls = ()
        if i % 3 == 0:
            tool_calls = tuple({"name": rng.choice(["get_booking", "get_balance"]),
                                "arguments": json.dumps({"id": f"A{rng.randint(1, 5)}"}),
                                "status": "error" if rng.random() < 0.1 else "ok"} for _ in range(rng.randint(1, 6)))
        examples.append(Example(input=question, output=output, context=tuple(context), tool_calls=tool_calls,
                                metadata={"retrieval_spans": 1, "steps": 2 + len(tool_calls), "route": "support"}))
    return examples


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_scorers(n: int, profile: bool = False) -> None:
    scorers = [registry.get(name) for name in registry.DEFAULT_SCORERS]
    for label, cold in (("warm: documents from a 5,000-document pool", False), ("cold: every document new", True)):
        examples = make_examples(n, cold=cold)
        outputs = [len(e.output) for e in examples]
        contexts = [sum(map(len, e.context)) for e in examples]
        for example in make_examples(50, seed=99, cold=cold):  # load the language model, compile patterns
            for scorer in scorers:
                scorer(example)
        # as scoring.score_hour runs them: every scorer on one response, then the next response
        began = time.process_time()  # CPU seconds of this process: the machine is shared, wall time is not ours
        if profile and not cold:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
        with batch_gc():  # (score_pairs scores every batch so: fewer garbage collections)
            for example in examples:
                for scorer in scorers:
                    scorer(example)
        total = time.process_time() - began
        if profile and not cold:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        rate = n / total
        print(f"\n== scorers, {label}: default set ({len(scorers)} scorers), {n} responses, one core")
        print(f"  outputs median {_percentile(outputs, 0.5):,} / p90 {_percentile(outputs, 0.9):,} / mean "
              f"{sum(outputs) / n:,.0f} characters (cut at {MAX_TEXT:,}); contexts median "
              f"{_percentile(contexts, 0.5):,} / p90 {_percentile(contexts, 0.9):,} / mean {sum(contexts) / n:,.0f}")
        print(f"  {rate:,.0f} responses per CPU second  (target >= 2,000: {'OK' if rate >= 2000 else 'MISSED'}; "
              f"{rate / 2000:.2f}x the target)")
        if cold:
            continue
        per_scorer = {}  # the breakdown: each scorer alone over new responses (answers not cached by the others)
        for i, scorer in enumerate(scorers):
            fresh = make_examples(n // 4, seed=1000 + i)
            t = time.process_time()
            with batch_gc():
                for example in fresh:
                    scorer(example)
            per_scorer[scorer.name] = (time.process_time() - t) / len(fresh)
        breakdown = sum(per_scorer.values())
        for name, seconds in sorted(per_scorer.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {name:<20} {seconds * 1e6:8.1f} us/response alone  {seconds / breakdown:5.1%} of the sum")


def _pairs(n: int, seed: int):
    rng = random.Random(seed)
    words = ["refund", "order", "shipping", "cancel", "plus", "card", "Paris", "London", "kb-1001", "héllo"]

    def text():
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))

    def value(depth=0):
        kind = rng.randint(0, 4 if depth < 2 else 2)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.choice([0, 1, 2.5, 100, -3])
        if kind == 2:
            return None
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randint(1, 4))]
        return {k: value(depth + 1) for k in rng.sample("abcdef", rng.randint(1, 4))}

    return {
        "levenshtein": ("Levenshtein", [(text(), text()) for _ in range(n)], {}),
        "exact_match": ("ExactMatch", [(text(), text()) for _ in range(n)], {}),
        "numeric_diff": ("NumericDiff", [(rng.uniform(-100, 100), rng.uniform(-100, 100)) for _ in range(n)], {}),
        "json_diff": ("JSONDiff", [(value(), value()) for _ in range(n)], {}),
        "valid_json": ("ValidJSON", [(json.dumps(value()), None) for _ in range(n)], {}),
        "list_contains": ("ListContains", [([text() for _ in range(3)], [text() for _ in range(3)])
                                           for _ in range(n // 10)], {}),
    }


def bench_parity(n: int) -> None:
    import autoevals

    print(f"\n== parity: our scorers vs autoevals on the same inputs ({n} pairs; list_contains {n // 10}), "
          "best of 3, alternated")
    for name, (theirs_name, pairs, options) in _pairs(n, 2).items():
        ours, theirs = registry.get(name, **options), getattr(autoevals, theirs_name)()
        examples = [Example(output=o, expected=e) for o, e in pairs]
        if name == "valid_json":
            def run_theirs():
                for o, _ in pairs:
                    theirs.eval(o)
        else:
            def run_theirs():
                for o, e in pairs:
                    theirs.eval(o, e)

        def run_ours():
            for example in examples:
                ours(example)

        t_ours, t_theirs = [], []
        for _ in range(3):
            t = time.process_time(); run_ours(); t_ours.append(time.process_time() - t)  # noqa: E702
            t = time.process_time(); run_theirs(); t_theirs.append(time.process_time() - t)  # noqa: E702
        a, b = min(t_ours), min(t_theirs)
        print(f"  {name:<14} ours {a / len(pairs) * 1e6:8.2f} us   autoevals {b / len(pairs) * 1e6:8.2f} us   "
              f"ratio {a / b:5.2f}x  ({'OK' if a <= b else 'SLOWER'})")


def bench_backfill(days: int, rate: float) -> None:
    import dagster as dg

    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.online_evals.defs import HOURLY_JOB
    from obs_pipelines.orchestration.partitions import range_tags
    from obs_pipelines.settings import Settings
    from obs_pipelines.store import db
    from obs_pipelines.synth.generator import generate_traces

    start = datetime(2026, 3, 2)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = db.make_engine(url)
        db.create_tables(engine)
        traces = 0
        batch: list[dict] = []
        for trace in generate_traces(start, days * 24, rate, 3):
            traces += 1
            batch.extend(trace)
            if len(batch) > 50_000:
                db.insert_spans(engine, batch)
                batch = []
        db.insert_spans(engine, batch)
        defs = build_definitions(Settings(db_url=url, partitions_start="2026-03-01-00:00", phases=["online_evals"]))
        job = defs.resolve_job_def(HOURLY_JOB)
        last = start + timedelta(days=days) - timedelta(hours=1)
        tags = range_tags(start.strftime("%Y-%m-%d-%H:%M"), last.strftime("%Y-%m-%d-%H:%M"))
        instance = dg.DagsterInstance.ephemeral()
        times = []
        for _ in range(2):
            t = time.perf_counter()
            result = job.execute_in_process(tags=tags, instance=instance,
                                            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
            assert result.success
            times.append(time.perf_counter() - t)
        with engine.connect() as conn:
            rows = conn.execute(db.sa.text("SELECT COUNT(*) FROM eval_scores")).scalar()
        print(f"\n== backfill (SQLite): {days} days x 24 hours in one run, {traces:,} requests, {rows:,} scores")
        print(f"  first  {times[0]:7.2f} s  ({traces / times[0]:,.0f} requests/s end to end)")
        print(f"  second {times[1]:7.2f} s  = {times[1] / times[0]:.1%} of the first (target < 5%: "
              f"{'OK' if times[1] < 0.05 * times[0] else 'MISSED'})")


def bench_judge(hours: int, rate: float, delay_s: float) -> None:
    """Judge scorers over generated traffic against a fake endpoint answering in ``delay_s``, default
    concurrency (settings.online_evals.judge.concurrency)."""
    from obs_pipelines.online_evals import scoring
    from obs_pipelines.online_evals.config import OnlineEvalsSettings
    from obs_pipelines.store import db
    from obs_pipelines.synth.generator import generate_traces
    from obs_pipelines_tests.online_evals.fake_judge import FakeJudge

    start = datetime(2026, 3, 2, 12)
    with tempfile.TemporaryDirectory() as tmp, FakeJudge(delay_s=delay_s) as fake:
        engine = db.make_engine(f"sqlite:///{tmp}/judge.db")
        db.create_tables(engine)
        db.insert_spans(engine, [row for trace in generate_traces(start, hours, rate, 5) for row in trace])
        settings = OnlineEvalsSettings(rules=[{"name": "judged", "scorers": ["judge_answer_relevance"]}],
                                       judge={"base_url": fake.url})
        client = settings.judge.client()
        scorers = scoring.scorers_for(settings, client)
        t = time.perf_counter()
        calls = 0
        for i in range(hours):
            hour = scoring.score_hour(engine, start + timedelta(hours=i), start + timedelta(hours=i + 1), settings,
                                      scorers)
            calls += len(hour.judge_calls)
        seconds = time.perf_counter() - t
        client.close()
        rate_js = calls / seconds
        print(f"\n== judge: {calls} judgments over {hours} hours, fake endpoint answering in {delay_s * 1000:.0f} ms, "
              f"concurrency {settings.judge.concurrency} (max in flight seen {fake.max_in_flight})")
        print(f"  {rate_js:,.1f} judgments/s  (target >= 40: {'OK' if rate_js >= 40 else 'MISSED'}; ideal "
              f"{settings.judge.concurrency / delay_s:.0f}/s = concurrency / latency)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=4000)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rate", type=float, default=0.1, help="generated requests per second (diurnal mean)")
    parser.add_argument("--parts", default="scorers,parity,judge,backfill")
    parser.add_argument("--profile", action="store_true", help="cProfile the warm scorer run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    _pin_one_core()
    print(f"bench_online_evals: python {sys.version.split()[0]}, pinned to one core")
    if "scorers" in parts:
        bench_scorers(args.responses, args.profile)
    if "parity" in parts:
        bench_parity(args.pairs)
    if "judge" in parts:
        bench_judge(3, 0.05, 0.2)
    if "backfill" in parts:
        bench_backfill(args.days, args.rate)


if __name__ == "__main__":
    main()
