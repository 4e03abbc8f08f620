"""The failure cluster in a quality alert on the second app (obs_pipelines_tests/second_app): from noon on,
kb_answer invents the refund and return policies (INPUT_MODES refund_gap) while its other questions are
answered well. online_evals scoring kb_answer's groundedness (hourly scores, then the day's clusters of failing
inputs, as shipped); the kb_answer
groundedness alert of an afternoon hour names the refund / return questions' cluster. The end-to-end run
(test_incidents_second_app) shows the other side: a prompt regression that fails every question names none."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from obs_pipelines.alerts import source
from obs_pipelines.alerts.rules import parse_rule
from obs_pipelines.definitions import build_definitions
from obs_pipelines.online_evals.defs import DAILY_JOB, HOURLY_JOB
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines_tests.alerts.cause_cases import breach
from obs_pipelines_tests.second_app import INPUT_MODES, Profile, SupportBot, ingest_hours
from obs_pipelines_tests.second_app import vocabulary as v

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
DAY = datetime(2026, 6, 1)
HOUR = timedelta(hours=1)
GAP_FROM = 12  # the help-center change at noon; the gap lasts the rest of the day
BROKEN = INPUT_MODES["refund_gap"][2]


def key(t: datetime, fmt: str = "%Y-%m-%d-%H:%M") -> str:
    return t.strftime(fmt)


@pytest.fixture(scope="module")
def scored_day(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clusters_second_app")
    url = f"sqlite:///{directory / 'traces.db'}"
    store = TraceStore(db_url=url)
    store.create_tables()
    incidents = {DAY + h * HOUR: "refund_gap" for h in range(GAP_FROM, 24)}
    assert ingest_hours(store.engine, directory, SupportBot(Profile(50, 0.1, seed=21)), DAY, 24, incidents).rejected == 0
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(db_url=url, partitions_start="2026-05-31-00:00", phases=["monitoring", "observability", "online_evals"])
    # the example's scorers as shipped: a clean request fails few of them, so the afternoon's refund answers stand out
    defs, instance = build_definitions(Settings(**data)), dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    for job, first, last in ((HOURLY_JOB, key(DAY), key(DAY + 23 * HOUR)), (DAILY_JOB, key(DAY, "%Y-%m-%d"),
                                                                            key(DAY, "%Y-%m-%d"))):
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        assert defs.resolve_job_def(job).execute_in_process(tags=tags, instance=instance, run_config=quiet).success
    yield store
    store.engine.dispose()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def shipped_rule():
    rules = yaml.safe_load(EXAMPLE.read_text())["alerts"]["rules"]
    return parse_rule(next(r for r in rules if r["name"] == "eval_score_by_route"))


def test_an_afternoon_groundedness_alert_of_kb_answer_names_the_refund_and_return_questions(scored_day):
    found = source.attribution(scored_day.engine, shipped_rule(), breach({"scorer": "groundedness",
                                                                         "route": "kb_answer"}, DAY + 18 * HOUR))
    [cluster] = [a for a in found if a["dimension"] == "input_cluster"]
    # the words only the refund and return questions use (the other questions' words removed)
    theirs = set().union(*(words(q) for q, a in v.QUESTIONS if a in BROKEN))
    others = set().union(*(words(q) for q, a in v.QUESTIONS if a not in BROKEN))
    assert words(cluster["value"]) & (theirs - others), cluster
    assert cluster["failure_rate"] >= 2 * cluster["route_failure_rate"]


def test_a_morning_hour_before_the_gap_names_no_cluster(scored_day):
    # the day's refund / return cluster exists, but in the morning those questions were answered well: the
    # cluster does not explain a morning hour of kb_answer
    found = source.attribution(scored_day.engine, shipped_rule(), breach({"scorer": "groundedness",
                                                                         "route": "kb_answer"}, DAY + 6 * HOUR))
    assert [a for a in found if a["dimension"] == "input_cluster"] == []
