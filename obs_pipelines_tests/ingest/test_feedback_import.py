"""`obs-pipelines feedback import`: human feedback files into the feedback table, with rejects like ingest."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa
from click.testing import CliRunner

from obs_pipelines.cli import main
from obs_pipelines.ingest.feedback import import_feedback

TRACE = "ab" * 16
SPAN = "cd" * 8


def table(store, name: str) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY id")).mappings().all())


def test_csv_rows_are_stored_with_thumbs_words_as_numbers(store, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("trace_id,span_id,name,value,comment\n"
                    f"{TRACE.upper()},{SPAN},thumbs,down,\"wrong, and rude\"\n"
                    f"{TRACE},,rating,4,\n")
    summary = import_feedback(store.engine, path)
    assert (summary.read, summary.stored, summary.rejected) == (2, 2, 0)
    rows = table(store, "feedback")
    assert rows["trace_id"].tolist() == [TRACE, TRACE]
    assert rows["value"].tolist() == [0.0, 4.0]
    assert rows["comment"].tolist()[0] == "wrong, and rude"
    assert rows["source"].tolist() == ["ratings.csv", "ratings.csv"]


def test_bad_rows_are_rejected_with_line_and_reason_and_the_good_ones_land(store, tmp_path):
    path = tmp_path / "fb.jsonl"
    lines = [json.dumps({"trace_id": TRACE, "name": "thumbs", "value": "up"}),
             json.dumps({"trace_id": "nothex", "name": "thumbs", "value": 1}),
             "{not json",
             json.dumps({"trace_id": TRACE, "name": "rating", "value": "great!"}),
             json.dumps({"trace_id": TRACE, "value": 1})]
    path.write_text("\n".join(lines) + "\n")
    summary = import_feedback(store.engine, path)
    assert (summary.read, summary.stored, summary.rejected) == (5, 1, 4)
    rejects = table(store, "ingest_rejects")
    assert rejects["location"].tolist() == ["line 2", "line 3", "line 4", "line 5"]
    reasons = rejects["reason"].tolist()
    assert "trace_id 'nothex' is not 32 hex characters" in reasons[0]
    assert "not a JSON object" in reasons[1] and "neither a number" in reasons[2] and "name is missing" in reasons[3]
    assert rejects["payload"].tolist()[1] == "{not json"


def test_importing_the_same_file_twice_adds_nothing(store, tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps({"trace_id": TRACE, "span_id": SPAN, "name": "thumbs", "value": 1}) + "\n")
    assert import_feedback(store.engine, path).stored == 1
    again = import_feedback(store.engine, path)
    assert (again.stored, again.duplicate) == (0, 1)
    assert len(table(store, "feedback")) == 1


def test_the_cli_prints_the_summary_and_fails_when_nothing_could_be_read(store, tmp_path, monkeypatch):
    monkeypatch.setenv("OBS_PIPELINES_DB_URL", store.db_url)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps({"trace_id": TRACE, "name": "thumbs", "value": "up"}) + "\n")
    bad.write_text("{oops\n")
    result = CliRunner().invoke(main, ["feedback", "import", str(good)])
    assert result.exit_code == 0 and "read 1, stored 1, duplicate 0, rejected 0" in result.output
    result = CliRunner().invoke(main, ["feedback", "import", str(bad)])
    assert result.exit_code == 1 and "rejected 1" in result.output
