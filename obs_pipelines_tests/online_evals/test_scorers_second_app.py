"""Groundedness on the second, independent trace source (a support bot with its own help-center articles,
obs_pipelines_tests/second_app), through the real ingest and the hourly scoring, and on its own answers."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from obs_pipelines.online_evals import scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example
from obs_pipelines.store import db
from obs_pipelines_tests.second_app import Profile, SupportBot, ingest_hours
from obs_pipelines_tests.second_app import vocabulary as v

START = datetime(2026, 3, 4, 10)


def test_the_hallucination_hour_of_another_app_loses_its_groundedness_and_names_what_was_invented(store, tmp_path):
    db.create_tables(store.engine)
    ingest_hours(store.engine, tmp_path, SupportBot(Profile(requests_per_hour=60, scale=0.1, seed=3)), START, 2,
                 {START + timedelta(hours=1): "hallucination"})
    settings = OnlineEvalsSettings(rules=[{"name": "kb", "routes": ["kb_answer"], "scorers": ["groundedness"]}])
    clean, invented = (scoring.score_hour(store.engine, START + timedelta(hours=h), START + timedelta(hours=h + 1),
                                          settings, scoring.scorers_for(settings)).frame for h in (0, 1))
    assert len(clean) >= 10 and len(invented) >= 10
    assert clean["score"].mean() >= 0.9 and invented["score"].mean() <= 0.2
    reasons = " ".join(json.loads(d)["unsupported"][0]["why"] for d in invented["details"] if "unsupported" in d)
    assert "not in the documents: " in reasons


def _changed_numbers(answer: str) -> str:
    return re.sub(r"\b\d+\b", lambda m: str(int(m.group()) * 3 + 1), answer)


def test_the_other_apps_good_answers_are_grounded_and_each_changed_number_is_caught():
    # a plausible hallucination: the bot's own good answer with every number changed (30 minutes -> 91 minutes,
    # 14 days -> 43 days), the rest of its words still those of the article
    checked = 0
    for article, answer in v.GOOD_ANSWERS.items():
        document = v.ARTICLES[article][1]
        groundedness = registry.get("groundedness")
        assert groundedness(Example(output=answer, context=[document])).value == 1.0, article
        if not re.search(r"\d", answer):
            continue
        changed = groundedness(Example(output=_changed_numbers(answer), context=[document]))
        assert changed.value < 1.0, article
        named = " ".join(u["why"] for u in changed.details["unsupported"])
        assert any(_changed_numbers(n) in named for n in re.findall(r"\b\d+\b", answer)), (article, named)
        checked += 1
    assert checked >= 5
