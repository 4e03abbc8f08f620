"""`dataset import`: every bad line is a reject with its reason (the good lines are kept), merges and shared
questions are reported, and the file is read a line at a time. Both databases."""

from __future__ import annotations

import json

import pytest

from obs_pipelines.offline_evals import datasets, importing


def _write(path, lines: list[bytes | str], bom: bytes = b"") -> None:
    path.write_bytes(bom + b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))


def _import(store, path, **kw):
    return importing.import_jsonl(store.engine, "d", path, **kw)


GOOD = json.dumps({"input": "Where is my order?", "expected": "in transit"})


def test_each_bad_line_is_rejected_with_its_reason_and_the_good_lines_are_kept(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    _write(path, [
        GOOD,
        "Caf\xe9 opening hours?".encode("latin-1").join([b'{"input": "', b'"}']),  # latin-1, not UTF-8
        json.dumps({"input": "q3", "context": {"doc": "a"}}),  # context neither a string nor a list
        json.dumps({"input": "q4", "tags": [1, 2]}),  # tags of numbers
        json.dumps({"input": "q5\u0000"}),  # a NUL escaped in JSON (PostgreSQL refuses it in text)
        b'{"input": "q6\x00"}',  # a raw NUL byte
        json.dumps({"input": "x" * 300}),  # longer than the limit below
        "not json",
        json.dumps(["a list"]),
        json.dumps({"expected": "no input"}),
        json.dumps({"input": "q11", "metadata": "not an object"}),
        "",  # blank lines are skipped, not rejected
        '{"input": "q13 \\ud800"}',  # a lone surrogate: valid JSON, no UTF-8 can store it
        '{"input": "q14", "n": ' + "9" * 5000 + "}",  # more digits than Python turns into an int
        json.dumps({"input": "q15", "metadata": {"k\u0000": 1}}),  # a NUL in a nested key
        json.dumps({"input": "the last line is fine"}),
    ])
    version, created, report = _import(store, path, max_line_bytes=200)
    reasons = dict(report.rejects)
    assert reasons[2] == ("not UTF-8: byte 0xe9 at column 15 (latin-1 / Windows-1252? re-run with "
                          "--encoding latin-1)")
    assert reasons[3] == "'context' must be a string or a list of strings, not dict"
    assert reasons[4] == "'tags' must be a string or a list of strings, not list with other items"
    assert reasons[5] == "NUL character in 'input'"
    assert reasons[6] == "NUL byte in the line"
    assert reasons[7] == "line longer than 200 bytes"
    assert reasons[8].startswith("not JSON")
    assert reasons[9] == "a line must be a JSON object, not list"
    assert reasons[10] == "'input' must be a string"
    assert reasons[11] == "'metadata' must be an object, not str"
    assert reasons[13] == "lone surrogate U+D800 in 'input' (not encodable as UTF-8)"
    assert reasons[14] == "line longer than 200 bytes"
    assert reasons[15] == "NUL character in 'metadata'"
    assert (report.rejected, report.cases, created) == (13, 2, True)
    _v, cases = datasets.load_version(store.engine, "d", version)
    assert sorted(c["input"] for c in cases) == ["Where is my order?", "the last line is fine"]


def test_a_latin1_file_imports_when_its_encoding_is_named(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    _write(path, ['{"input": "Café opening hours?"}'.encode("latin-1")])
    version, _created, report = _import(store, path, encoding="latin-1")
    assert report.rejected == 0
    assert datasets.load_version(store.engine, "d", version)[1][0]["input"] == "Café opening hours?"


def test_an_excel_utf8_file_with_a_byte_order_mark_imports_every_line(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    _write(path, [GOOD, json.dumps({"input": "second"})], bom=b"\xef\xbb\xbf")
    _version, _created, report = _import(store, path)
    assert (report.cases, report.rejected) == (2, 0)


def test_a_utf16_file_is_refused_with_what_to_do(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_bytes((GOOD + "\n").encode("utf-16"))
    with pytest.raises(datasets.DatasetError, match="UTF-16 .* save it as UTF-8"):
        _import(store, path)


def test_the_same_case_twice_merges_and_the_merge_is_reported(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    _write(path, [json.dumps({"input": "Where is my order?", "expected": "in transit", "tags": ["a"]}),
                  json.dumps({"input": "where is my ORDER", "expected": "in transit", "tags": ["b"]})])
    version, _created, report = _import(store, path)
    assert (report.cases, report.merged, report.merges) == (1, 1, [(2, 1, report.merges[0][2])])
    (case,) = datasets.load_version(store.engine, "d", version)[1]
    assert case["tags"] == ["a", "b"] and case["input"] == "Where is my order?"  # the first line's text


def test_the_same_question_with_another_context_or_expected_stays_two_cases_and_is_reported(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    # one question, two help-center articles with different answers: two test cases, not one
    _write(path, [json.dumps({"input": "How long do I have to return an item?", "context": ["30 days"],
                              "expected": "30 days"}),
                  json.dumps({"input": "How long do I have to return an item?", "context": ["14 days (EU)"],
                              "expected": "14 days"})])
    _version, _created, report = _import(store, path)
    assert (report.cases, report.merged, report.shared_questions) == (2, 0, 1)
    assert report.questions == [("How long do I have to return an item?", [1, 2])]


def test_an_explicit_id_is_the_identity_and_reused_for_other_content_is_a_reject(store, tmp_path):
    path = tmp_path / "cases.jsonl"
    _write(path, [json.dumps({"id": "refund-1", "input": "Refund?"}),
                  json.dumps({"id": "refund-1", "input": "Another question"}),
                  json.dumps({"id": "refund-2", "input": "Refund?"})])
    version, _created, report = _import(store, path)
    assert report.rejects == [(2, "id 'refund-1' is already the case of line 1 with another input, context or "
                                  "expected output")]
    assert sorted(c["case_id"] for c in datasets.load_version(store.engine, "d", version)[1]) == ["refund-1",
                                                                                                  "refund-2"]


def test_every_reject_is_written_to_the_rejects_file_and_a_file_of_rejects_only_has_no_version(store, tmp_path):
    path, rejects = tmp_path / "cases.jsonl", tmp_path / "rejects.jsonl"
    _write(path, ["not json"] * 30)
    version, created, report = _import(store, path, rejects_path=rejects)
    assert (version, created, report.rejected, len(report.rejects)) == (None, False, 30, importing.LISTED)
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [w["line"] for w in written] == list(range(1, 31))
    assert datasets.versions(store.engine, "d").empty


def test_an_export_imports_back_as_the_same_version(store, tmp_path):
    cases = [{"case_id": datasets.case_id(f"q{i}", [f"doc {i}"], f"a{i}"), "input": f"q{i}", "output": None,
              "expected": f"a{i}", "context": [f"doc {i}"], "tags": ["t"]} for i in range(5)]
    version, _ = datasets.save_version(store.engine, "src", cases, "test")
    out = tmp_path / "out.jsonl"
    datasets.export_jsonl(datasets.load_version(store.engine, "src", version)[1], out)
    assert _import(store, out)[0] == version


def test_an_integer_python_cannot_convert_is_a_reject_not_a_traceback():
    raw = ('{"input": "q", "n": ' + "9" * 5000 + "}").encode()  # Python refuses ints over 4,300 digits
    with pytest.raises(importing.RowError, match="not JSON"):
        importing.parse_line(raw, None)
