"""What failing context_relevance and question_coverage means (issue 19): a response fails context_relevance
when none of its retrieved documents is relevant to the question (a top-k retrieval with one relevant document
of five is a working retrieval, not a failure), and question_coverage when the answer only parrots the question
or talks about something else (a concise right answer in its own words passes). By-eye cases from travel and
banking texts, then a clean hour of both trace sources (the project's generator and the independent
second_app) scored through the real hourly scoring."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from obs_pipelines.online_evals import scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.scorers import registry
from obs_pipelines.scorers.base import Example
from obs_pipelines.store import db
from obs_pipelines_tests.online_evals.conftest import load_traffic
from obs_pipelines_tests.second_app import Profile, SupportBot, ingest_hours

BAGGAGE = "Lost luggage must be reported within 5 days of arrival at the airline desk."
OFF_TOPIC = ["Seat upgrades can be bought at check-in.", "Lounge access is included in business class.",
             "Pets travel in the cabin if under 8 kg.", "Wi-Fi is free on long-haul flights."]
THRESHOLD = OnlineEvalsSettings().rules[0].threshold  # the default rule's pass mark


def _passes(name: str, **fields) -> bool | None:
    value = registry.get(name)(Example(**fields)).value
    return None if value is None else value >= THRESHOLD


def test_a_good_answer_from_a_top5_retrieval_with_one_relevant_document_passes_context_relevance():
    # the desk's rule on lost luggage came back among four unrelated pages: retrieval did its job
    score = registry.get("context_relevance")(Example(input="How long do I have to report lost luggage?",
                                                      output="Within 5 days of arrival.",
                                                      context=[OFF_TOPIC[0], BAGGAGE, *OFF_TOPIC[1:]]))
    assert score.value >= THRESHOLD
    assert score.details["relevant"] == 1 and score.details["precision"] == pytest.approx(0.2)  # kept as a figure


def test_an_answer_whose_retrieved_documents_are_all_off_topic_fails_context_relevance():
    # seats, lounges, pets and Wi-Fi say nothing about lost luggage: the retrieval missed
    assert _passes("context_relevance", input="How long do I have to report lost luggage?",
                   output="Within 5 days.", context=OFF_TOPIC) is False


def test_context_relevance_reads_the_user_message_of_a_chat_message_input():
    # the JSON around the message ("role", "user", "content") is not part of the question
    chat = '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Can I change a flexible fare?"}]'
    assert _passes("context_relevance", input=chat, context=["Flexible fares can be changed free of charge.",
                                                              *OFF_TOPIC]) is True


@pytest.mark.parametrize(("question", "answer", "passes"), [
    # a concise direct answer in its own words: "payment methods" is answered by naming them
    ("Which payment methods do you accept?", "We accept Visa, Mastercard and PayPal.", True),
    # a yes to a yes / no question, nothing else
    ("Can I change a flexible fare?", "Yes.", True),
    # a duration to a how-long question, without repeating a word of it
    ("How long do I have to report lost luggage?", "Five days.", True),
    # the question repeated back answers nothing
    ("How long do I have to report lost luggage?", "How long do you have to report lost luggage?", False),
    # talking about the question answers nothing either
    ("Can I change a flexible fare?", "I understand you are wondering whether you can change a flexible fare.",
     False),
    # a hedge that mentions nothing of the question
    ("My refund has not arrived yet, how long does it take?",
     "This can vary from case to case; you might want to look into it further.", False),
], ids=["concise", "yes", "duration", "parrot", "meta-echo", "hedge"])
def test_question_coverage_passes_an_answer_that_addresses_the_question(question, answer, passes):
    assert _passes("question_coverage", input=question, output=answer) is passes


@pytest.mark.parametrize(("text", "output"), [
    ("Summarize: customer reports the blender lid cracked; agent offered a replacement.", "Lid cracked; replaced."),
    ("Customer asks why the refund is not on the card yet.", "Hi Lea, the refund was issued 3 days ago."),
    ("Will my inactive account be closed?", "membership"),
], ids=["summary", "instruction", "label"])
def test_question_coverage_does_not_judge_what_is_not_a_question_and_its_answer(text, output):
    # a text to summarise, a drafting instruction, a classifier's label: no question was asked or answered
    assert _passes("question_coverage", input=text, output=output) is None


# A clean hour is traffic of an app that works: most of its answers are fine. A scorer that fails a majority of
# such responses measures something other than failure (the bug of issue 19: 0.91 and 0.94 failing), so each
# scorer's failing share of a clean hour must stay below half; the figures measured are ~2-6 % on the generator
# and 0-21 % on the second app (paraphrased questions a lexical check cannot match).
def _failing_shares(frame, routes) -> dict[str, float]:
    shares = {}
    for name in ("context_relevance", "question_coverage"):
        scored = frame[(frame["scorer"] == name) & frame["route"].isin(routes) & frame["score"].notna()]
        assert len(scored) >= 15, (name, len(scored))
        shares[name] = float((~scored["passed"].astype(bool)).mean())
    return shares


def _clean_hour(engine, start):
    settings = OnlineEvalsSettings()
    return scoring.score_hour(engine, start, start + timedelta(hours=1), settings, scoring.scorers_for(settings),
                              workers=1).frame


def test_a_clean_hour_of_the_generator_fails_a_minority_of_rag_answers(store):
    start = datetime(2026, 3, 3, 10)
    load_traffic(store.engine, start, 1, rate=0.03, seed=11)
    shares = _failing_shares(_clean_hour(store.engine, start), ["rag_qa"])
    assert all(share < 0.5 for share in shares.values()), shares


def test_a_clean_hour_of_the_second_app_fails_a_minority_of_its_help_center_answers(store, tmp_path):
    # kb_answer searches the help center with the question; /triage's similar_tickets returns three past
    # tickets drawn at random (second_app/generator.py), so its off-topic retrievals are real misses, not counted
    start = datetime(2026, 3, 4, 10)
    db.create_tables(store.engine)
    ingest_hours(store.engine, tmp_path, SupportBot(Profile(requests_per_hour=60, scale=0.1, seed=3)), start, 1)
    shares = _failing_shares(_clean_hour(store.engine, start), ["kb_answer"])
    assert all(share < 0.5 for share in shares.values()), shares
