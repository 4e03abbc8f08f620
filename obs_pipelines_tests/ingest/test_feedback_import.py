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


# ---- hostile and foreign files (issue 20.6) ------------------------------------------------------------------
HEADER = "trace_id,name,value,comment\n"


def test_a_100_mb_csv_field_is_rejected_and_the_next_good_row_is_kept(store, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as out:  # row 2: a quoted comment of 100 MB (with line breaks), row 3: a good row
        out.write(HEADER + f'{TRACE},thumbs,up,"')
        chunk = ("x" * 1023 + "\n") * 1024
        out.writelines(chunk for _ in range(100))
        out.write(f'"\n{TRACE},rating,4,fine\n')
    summary = import_feedback(store.engine, path)
    assert (summary.read, summary.stored, summary.rejected) == (2, 1, 1)
    assert table(store, "feedback")["name"].tolist() == ["rating"]
    reject = table(store, "ingest_rejects").iloc[0]
    assert reject["location"] == "line 2" and "longer than the limit" in reject["reason"]


def test_a_row_with_a_nul_is_rejected_and_the_rest_of_the_file_lands(store, tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes((HEADER + f"{TRACE},thumbs,up,bad\x00byte\n{TRACE},rating,5,ok\n").encode())
    summary = import_feedback(store.engine, path)
    assert (summary.stored, summary.rejected) == (1, 1)
    reject = table(store, "ingest_rejects").iloc[0]
    assert "NUL" in reject["reason"] and reject["payload"].endswith("bad\\u0000byte")


def test_an_excel_csv_utf8_file_with_a_bom_is_read(store, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + f"{TRACE},thumbs,up,très bien\r\n").encode())
    summary = import_feedback(store.engine, path)
    assert (summary.stored, summary.rejected) == (1, 0)
    assert table(store, "feedback")["comment"].tolist() == ["très bien"]


def test_a_semicolon_csv_as_excel_writes_it_in_many_locales_is_read(store, tmp_path):
    path = tmp_path / "semicolons.csv"
    path.write_text(f"trace_id;name;value;comment\n{TRACE};rating;4;ok, thanks\n")
    assert import_feedback(store.engine, path).stored == 1
    assert table(store, "feedback")["comment"].tolist() == ["ok, thanks"]


def test_a_latin1_file_is_detected_and_read_not_mangled(store, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + f"{TRACE},thumbs,down,plain ascii first\n{TRACE},thumbs,up,très bien à 5€\n")
                     .encode("cp1252"))
    summary = import_feedback(store.engine, path)
    assert (summary.stored, summary.rejected) == (2, 0)
    assert table(store, "feedback")["comment"].tolist() == ["plain ascii first", "très bien à 5€"]


def test_a_utf16_file_with_a_bom_is_read(store, tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes((HEADER + f"{TRACE},thumbs,up,日本語\n").encode("utf-16"))
    assert import_feedback(store.engine, path).stored == 1
    assert table(store, "feedback")["comment"].tolist() == ["日本語"]


def test_a_non_utf8_row_in_a_utf8_file_is_rejected_not_decoded_with_replacements(store, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps({"trace_id": TRACE, "name": "thumbs", "value": 1, "comment": "déjà"}, ensure_ascii=False)
    path.write_bytes(good.encode() + b"\n" + b'{"trace_id": "' + TRACE.encode() + b'", "name": "x\xe9"}\n')
    summary = import_feedback(store.engine, path)
    assert (summary.stored, summary.rejected) == (1, 1)
    assert "not valid UTF-8" in table(store, "ingest_rejects")["reason"].iloc[0]


def test_importing_a_file_with_rejects_again_does_not_repeat_its_rejects(store, tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps({"trace_id": TRACE, "name": "thumbs", "value": 1}) + "\n{oops\n")
    import_feedback(store.engine, path)
    again = import_feedback(store.engine, path)
    assert (again.stored, again.duplicate, again.rejected) == (0, 1, 1)  # reported, not stored twice
    assert len(table(store, "ingest_rejects")) == 1


def test_a_file_larger_than_a_batch_lands_whole_and_deduplicates_across_batches(store, tmp_path):
    # 7 rows in batches of 3; rows 1 and 6 are the same judgement: stored once
    path = tmp_path / "many.jsonl"
    rows = [{"trace_id": TRACE, "name": "rating", "value": v} for v in (1, 2, 3, 4, 5, 1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = import_feedback(store.engine, path, batch_rows=3)
    assert (summary.read, summary.stored, summary.duplicate) == (7, 6, 1)
    assert sorted(table(store, "feedback")["value"].tolist()) == [1, 2, 3, 4, 5, 6]
