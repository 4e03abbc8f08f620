"""Benchmark of an alert's cause and exemplars (alerts/causes.py) per rule family (issue 18; run by hand, not by
pytest). Everything is measured in ONE run: compare the ratios, not the seconds.

    .venv/bin/python bench/bench_attribution.py [--rate 3.0] [--hours 8] [--repeat 3] [--pg]

``--hours`` hours of generated traffic (obs_pipelines.synth, ``--rate`` traces per second) whose last hour has a
latency spike, a cost overrun and a rate-limit storm, in a fresh SQLite file (or PostgreSQL schema with
``--pg``). The rules take the trailing hours as their baseline (``--hours - 1`` windows, read one at a time).
Best of ``--repeat``:

* ``read_hour``: one plain read of the breached hour's spans (every column but the texts): the reference;
* per family, one alert: its cause (the window and every baseline window of its group, ranked) plus its
  exemplars (picked and checked against the group and window): seconds and the ratio to ``read_hour``;

and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_observability import _best  # noqa: E402  (best of --repeat, the same in every bench)

from obs_pipelines.alerts import causes, source  # noqa: E402
from obs_pipelines.alerts.evaluate import RuleResult  # noqa: E402
from obs_pipelines.alerts.rules import parse_rule  # noqa: E402
from obs_pipelines.store import db  # noqa: E402
from obs_pipelines.store.query import fetch_text_frame, window_params  # noqa: E402
from obs_pipelines.synth.generator import generate_traces, parse_incident  # noqa: E402

PG_URL = os.environ.get("OBS_PIPELINES_BENCH_PG_URL", "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test")
START = datetime(2026, 11, 2, 6, 0)
HOUR = timedelta(hours=1)


def _rule(**fields):
    return parse_rule({"name": "bench_rule", "kind": "anomaly", "baseline": "trailing_hours", **fields})


def alerts(hours: int) -> dict[str, tuple]:
    n = hours - 1
    return {
        "latency (route p95)": (_rule(table="request_rollup_hourly", group_by="route", metric="latency_p95_ms",
                                      baseline_windows=n), {"route": "rag_qa"}),
        "latency (step p95)": (_rule(table="step_rollup_hourly", group_by="span_kind", metric="latency_p95_ms",
                                     baseline_windows=n), {"span_kind": "retrieval"}),
        "error (class rate)": (_rule(table="error_rollup_hourly", group_by="error_class", metric="error_rate",
                                     baseline_windows=n), {"error_class": "rate_limit"}),
        "cost (route per call)": (_rule(table="usage_rollup_hourly", group_by="route", metric="cost_usd / call_count",
                                        baseline_windows=n), {"route": "rag_qa"}),
        "retrieval (top score)": (_rule(table="retrieval_log", group_by=["route"], aggregate="mean",
                                        metric="top_score", baseline_windows=n), {"route": "rag_qa"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--hours", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", action="store_true")
    args = parser.parse_args()
    breached = START + (args.hours - 1) * HOUR
    schema = None
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    engine = db.make_engine(url)
    db.create_tables(engine)
    incidents = [parse_incident(f"{name}@{breached:%Y-%m-%dT%H:%M}+1h")
                 for name in ("latency_spike", "cost_overrun", "rate_limit_storm")]
    rows = [r for trace in generate_traces(START, args.hours, args.rate, 7, incidents) for r in trace]
    db.insert_spans(engine, rows)
    print(f"{len(rows)} spans over {args.hours} h ({'PostgreSQL' if args.pg else 'SQLite'})")
    del rows

    def read_hour():
        fetch_text_frame(engine, "SELECT trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status, "
                                 "model, provider, route, input_tokens, output_tokens, cost_usd, attributes FROM spans "
                                 "WHERE start_time >= :start AND start_time < :end",
                         window_params(breached, breached + HOUR))

    reference = _best(read_hour, args.repeat)
    print(f"{'read_hour':24s} {reference:7.3f} s   1.00x")
    for label, (rule, group) in alerts(args.hours).items():
        result = RuleResult("bench_rule", breached, breached + HOUR, group, 1.0, 0.5, 100.0, True, False)
        found: dict = {}

        def one_alert():
            source._BREACHES.clear()  # measured cold: nothing shared between repeats
            causes._SUMMARIES.clear()
            found["cause"] = source.attribution(engine, rule, result)
            found["exemplars"] = source.exemplar_trace_ids(engine, rule, result)

        seconds = _best(one_alert, args.repeat)
        top = found["cause"][0] if found["cause"] else {}
        print(f"{label:24s} {seconds:7.3f} s {seconds / reference:6.2f}x   "
              f"top {top.get('dimension')}={top.get('value')} "
              f"({len(found['exemplars'])} exemplars)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    engine.dispose()
    if schema:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
