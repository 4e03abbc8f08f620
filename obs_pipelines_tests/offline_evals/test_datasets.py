"""Datasets: dedup, balance, PII scrubbing, content-hash versions."""

from __future__ import annotations

import random

from obs_pipelines.offline_evals import datasets, pii
from obs_pipelines.scorers.safety import luhn_valid


def case(text: str, tags=("error",), when: str = "2026-11-02 10:00", expected=None, context=()) -> dict:
    return {"case_id": datasets.case_id(text, context, expected), "input": text, "output": "out",
            "expected": expected, "context": list(context), "tags": list(tags), "trace_id": None, "route": None,
            "metadata": {}, "selected_at": when}


def test_inputs_equal_after_normalisation_are_one_case_with_both_tags():
    merged = datasets.deduplicate([case("What is the refund policy?", ["error"], expected="30 days"),
                                   case("  what is the REFUND policy", ["negative_feedback"], expected="30 days")])
    assert len(merged) == 1
    assert merged[0]["tags"] == ["error", "negative_feedback"]


def test_the_same_question_with_another_context_or_expected_answer_is_another_case():
    # a person sees three cases: one question asked against two documents, and once with a known answer
    cases = [case("What is the refund window?", context=["Refunds within 30 days."]),
             case("What is the refund window?", context=["Refunds within 14 days (EU store)."]),
             case("What is the refund window?", context=["Refunds within 30 days."], expected="30 days")]
    assert len({c["case_id"] for c in cases}) == 3
    assert len(datasets.deduplicate(cases, similarity=92)) == 3  # near-duplicate merging respects them too
    # and whitespace / case in the context does not make a new case
    assert datasets.case_id("q", ["Refunds  within 30 DAYS."]) == datasets.case_id("q", ["refunds within 30 days."])


def test_near_duplicates_merge_and_distinct_inputs_stay():
    cases = [case("How do I reset my password for the mobile app?", when="2026-11-02 11:00"),
             case("How do I reset my pasword for the mobile app?", ["agent_loop"], when="2026-11-02 10:00"),
             case("Which payment methods do you accept?")]
    kept = datasets.deduplicate(cases, similarity=92)
    assert len(kept) == 2
    merged = next(c for c in kept if "password" in c["input"])  # the newer one is kept
    assert merged["tags"] == ["agent_loop", "error"]


def test_balance_caps_each_tag_and_keeps_rare_tags():
    cases = [case(f"error number {i}", ["error"], when=f"2026-11-02 {i % 24:02d}:00") for i in range(50)]
    cases += [case(f"loop number {i}", ["agent_loop"]) for i in range(3)]
    chosen = datasets.balance(cases, per_tag=10, max_cases=12)
    tags = datasets.tag_counts(chosen)
    assert tags == {"agent_loop": 3, "error": 9}  # the size cap leaves room for every rare case


def test_version_is_a_content_hash_independent_of_order_and_provenance():
    a = [case("first question"), case("second question", ["agent_loop"])]
    b = [dict(c, trace_id="f" * 32, selected_at="2030-01-01") for c in reversed(a)]
    assert datasets.content_hash(a) == datasets.content_hash(b)
    assert len(datasets.content_hash(a)) == 16
    changed = [a[0], dict(a[1], expected="a correction")]
    assert datasets.content_hash(changed) != datasets.content_hash(a)


def _planted(rng: random.Random) -> list[tuple[str, str]]:
    """200 values of the kinds the scrubber must catch, with the kind expected in their place."""
    values = []
    for i in range(40):
        values.append((f"user{i}.{rng.randrange(10**6)}@mail{i % 7}.example.com", "<EMAIL>"))
        values.append((f"+1 415 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}", "<PHONE>"))
        while True:
            digits = "4" + "".join(str(rng.randrange(10)) for _ in range(15))
            if luhn_valid(digits):
                break
        values.append((" ".join(digits[j:j + 4] for j in range(0, 16, 4)), "<CARD>"))
        values.append(("sk-" + "".join(rng.choice("abcdefghijkLMNOP0123456789") for _ in range(40)), "<OPENAI_KEY>"))
        values.append((f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}", "<SSN>"))
    return values


def test_none_of_200_planted_pii_values_survives_scrubbing():
    planted = _planted(random.Random(3))
    assert len(planted) == 200
    texts = [f"Hi, I am stuck. My details: {value}. Please help with order 12345." for value, _ in planted]
    counts: dict[str, int] = {}
    scrubbed = [pii.scrub(t, counts) for t in texts]
    for (value, placeholder), text in zip(planted, scrubbed):
        assert value not in text
        # a key may be named by its vendor pattern or by the entropy check: either way it is gone and typed
        assert placeholder in text or (placeholder == "<OPENAI_KEY>" and "<HIGH_ENTROPY_STRING>" in text)
    assert all("order 12345" in t for t in scrubbed)  # ordinary numbers stay
    assert sum(counts.values()) == 200


def test_a_scrubbed_case_keeps_no_pii_in_any_field():
    dirty = case("mail me at jane.doe@corp.example.com")
    dirty.update(output="call +44 20 7946 0958", expected="key sk-abcdefghijklmnopqrstuvwxyz123456",
                 context=["card 4111 1111 1111 1111 on file"])
    clean = datasets.scrub_case(dirty)
    assert clean["input"] == "mail me at <EMAIL>"
    assert clean["output"] == "call <PHONE>"
    assert clean["expected"] == "key <OPENAI_KEY>"
    assert clean["context"] == ["card <CARD> on file"]


def test_the_same_content_saved_twice_keeps_its_version(store):
    cases = [case("first question"), case("second question")]
    version, created = datasets.save_version(store.engine, "prod", cases, "production")
    again, created_again = datasets.save_version(store.engine, "prod", list(reversed(cases)), "production")
    assert (again, created, created_again) == (version, True, False)
    assert datasets.versions(store.engine, "prod")["version"].tolist() == [version]
    loaded_version, loaded = datasets.load_version(store.engine, "prod")
    assert loaded_version == version
    assert [c["input"] for c in loaded] == [c["input"] for c in sorted(cases, key=lambda c: c["case_id"])]


def test_the_latest_version_is_the_last_built_content(store):
    old, _ = datasets.save_version(store.engine, "prod", [case("a question")], "production")
    new, _ = datasets.save_version(store.engine, "prod", [case("another question")], "production")
    assert datasets.latest_version(store.engine, "prod") == new
    datasets.save_version(store.engine, "prod", [case("a question")], "production")  # data went back
    assert datasets.latest_version(store.engine, "prod") == old
    assert datasets.load_version(store.engine, "prod", old[:6])[0] == old  # a prefix names a version


def test_two_processes_saving_the_same_content_get_one_version(store):
    from concurrent.futures import ThreadPoolExecutor

    cases = [case(f"question {i}") for i in range(50)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: datasets.save_version(store.engine, "prod", cases, "production"), range(4)))
    assert len({v for v, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(datasets.load_version(store.engine, "prod")[1]) == 50
