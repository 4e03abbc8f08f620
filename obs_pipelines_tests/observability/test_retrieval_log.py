"""The retrieval log's per-span fields, from the documents an app put in a retrieval span's attributes."""

from __future__ import annotations

import json

import pandas as pd

from obs_pipelines.observability.retrieval import retrieval_log

T0 = pd.Timestamp("2026-11-02 10:00:00")


def _log(*attributes) -> pd.DataFrame:
    n = len(attributes)
    spans = pd.DataFrame({"trace_id": [f"t{i}" for i in range(n)], "span_id": [f"s{i}" for i in range(n)],
                          "kind": "retrieval", "name": "vector_search", "start_time": T0, "duration_ms": 12.0,
                          "status": "ok", "route": "rag_qa"})
    texts = pd.DataFrame({"trace_id": spans["trace_id"], "span_id": spans["span_id"], "kind": "retrieval",
                          "input": "where is my order", "attributes": list(attributes)})
    return retrieval_log(spans, texts, pd.Series(dtype="object"), 0.5).set_index("trace_id")


def test_documents_become_ids_scores_ranks_previews_and_flags():
    docs = {"retrieval.documents": [{"id": "a", "score": 0.9, "content": "refund policy"},
                                    {"id": "a", "score": 0.2, "content": "shipping"}]}
    row = _log(json.dumps(docs)).loc["t0"]
    assert (row["document_count"], row["top_score"]) == (2, 0.9)
    assert json.loads(row["document_ids"]) == ["a", "a"] and json.loads(row["scores"]) == [0.9, 0.2]
    assert json.loads(row["ranks"]) == [1, 2] and json.loads(row["previews"]) == ["refund policy", "shipping"]
    assert row["duplicate_documents"] and not row["all_below_threshold"] and not row["no_documents"]


def test_odd_documents_are_read_as_far_as_they_go_and_bad_attributes_are_no_documents():
    # a number id is text, a boolean is no score, a non-object entry is no document; broken JSON: none
    odd = '{"retrieval.documents": [1, {"id": 5, "score": true, "content": null}, {"score": 0.1}]}'
    log = _log(odd, "not json", None)
    assert json.loads(log.loc["t0", "document_ids"]) == ["5", None]
    assert json.loads(log.loc["t0", "scores"]) == [None, 0.1] and log.loc["t0", "all_below_threshold"]
    assert log.loc["t1", "no_documents"] and log.loc["t2", "no_documents"]
