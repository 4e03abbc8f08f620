"""Every file form (JSONL, JSON, JSON array, gzip, OTLP protobuf) and every value form (hex / base64 ids,
enum names / integers, int64 strings / numbers) gives the same rows; re-ingesting stores nothing new;
directories and globs are expanded."""

from __future__ import annotations

import copy
import gzip
import json
import shutil

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from obs_pipelines.ingest.mapping import map_request
from obs_pipelines.ingest.readers import expand_paths, iter_file
from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines_tests.ingest.otlp_builders import comparable, hex_to_b64, span_rows
from obs_pipelines_tests.real_trace_counts import real_counts

TRACES_FILE = "framework-traces.otlp.jsonl"


def _requests(real_traces_dir) -> list[dict]:
    return [json.loads(line) for line in (real_traces_dir / TRACES_FILE).read_text().splitlines()]


def _all_spans(req: dict):
    for rs in req["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            yield from ss["spans"]


def _mapped(requests) -> dict:
    rows = {}
    for req in requests:
        out, rejects = map_request(req)
        assert rejects == []
        for r in out:
            rows[(r["trace_id"], r["span_id"])] = r
    return rows


def _to_protobuf(req: dict) -> bytes:
    """The request as an OTLP/HTTP protobuf body (ids given as hex in JSON -> bytes)."""
    req = copy.deepcopy(req)
    for sp in _all_spans(req):
        for key in ("traceId", "spanId", "parentSpanId"):
            if sp.get(key):
                sp[key] = hex_to_b64(sp[key])
    msg = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(req, msg)
    return msg.SerializeToString()


@pytest.fixture
def jsonl_rows(store, real_traces_dir):
    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    return {k: comparable(v) for k, v in span_rows(store.engine).items()}


# ---- value forms (pure mapping) ---------------------------------------------------------------------


def test_base64_ids_give_the_same_rows_as_hex(real_traces_dir):
    reqs = _requests(real_traces_dir)
    b64 = copy.deepcopy(reqs)
    for req in b64:
        for sp in _all_spans(req):
            for key in ("traceId", "spanId", "parentSpanId"):
                if sp.get(key):
                    sp[key] = hex_to_b64(sp[key])
    assert _mapped(b64) == _mapped(reqs)


def test_uppercase_hex_ids_give_the_same_rows(real_traces_dir):
    reqs = _requests(real_traces_dir)
    upper = copy.deepcopy(reqs)
    for req in upper:
        for sp in _all_spans(req):
            for key in ("traceId", "spanId", "parentSpanId"):
                if sp.get(key):
                    sp[key] = sp[key].upper()
    assert _mapped(upper) == _mapped(reqs)


def test_enum_names_give_the_same_rows_as_integers(real_traces_dir):
    reqs = _requests(real_traces_dir)
    names = copy.deepcopy(reqs)
    kind_names = {0: "SPAN_KIND_UNSPECIFIED", 1: "SPAN_KIND_INTERNAL", 2: "SPAN_KIND_SERVER", 3: "SPAN_KIND_CLIENT"}
    for req in names:
        for sp in _all_spans(req):
            sp["kind"] = kind_names[sp["kind"]]
            sp["status"] = {"code": "STATUS_CODE_ERROR", "message": "boom"}
    for req in reqs:
        for sp in _all_spans(req):
            sp["status"] = {"code": 2, "message": "boom"}
    rows = _mapped(names)
    assert rows == _mapped(reqs)
    assert {r["status"] for r in rows.values()} == {"error"}


def test_client_and_server_span_kinds_are_kept_by_name():
    from obs_pipelines_tests.ingest.otlp_builders import request, span

    (by_int,), _ = map_request(request(span(kind=3)))
    (by_name,), _ = map_request(request(span(kind="SPAN_KIND_CLIENT")))
    assert by_int == by_name
    assert by_int["attributes"]["otel.span_kind"] == "client"


def test_int64_as_numbers_give_the_same_rows_as_int64_as_strings(real_traces_dir):
    reqs = _requests(real_traces_dir)
    numbers = copy.deepcopy(reqs)
    for req in numbers:
        for sp in _all_spans(req):
            sp["startTimeUnixNano"] = int(sp["startTimeUnixNano"])
            sp["endTimeUnixNano"] = int(sp["endTimeUnixNano"])
            for a in sp.get("attributes", []):
                if "intValue" in a["value"]:
                    a["value"]["intValue"] = int(a["value"]["intValue"])
    strings = copy.deepcopy(reqs)
    for req in strings:
        for sp in _all_spans(req):
            for a in sp.get("attributes", []):
                if "intValue" in a["value"]:
                    a["value"]["intValue"] = str(a["value"]["intValue"])
    assert _mapped(numbers) == _mapped(strings)


# ---- file forms (into the store) ---------------------------------------------------------------------


def test_reingesting_the_same_file_stores_nothing_new(store, real_traces_dir):
    first = ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    again = ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    real = real_counts()
    assert first.stored == real.stored
    assert (again.read, again.stored, again.duplicate, again.rejected) == (real.read, 0, real.read, 0)


def test_reingesting_records_no_new_arrivals(store, real_traces_dir):
    import sqlalchemy as sa

    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    with store.engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*), sum(span_count) FROM span_arrivals")).one()
    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    with store.engine.connect() as conn:
        after = conn.execute(sa.text("SELECT count(*), sum(span_count) FROM span_arrivals")).one()
    assert before == after and before[1] == real_counts().stored


def test_gzip_jsonl_gives_the_same_rows_as_jsonl(store, real_traces_dir, tmp_path, jsonl_rows):
    gz = tmp_path / "traces.jsonl.gz"
    gz.write_bytes(gzip.compress((real_traces_dir / TRACES_FILE).read_bytes()))
    assert list(iter_file(gz))[0].error is None
    rows = {k: comparable(v) for k, v in _ingest_fresh(store, gz).items()}
    assert rows == jsonl_rows


def test_gzip_is_detected_by_its_magic_bytes_whatever_the_name(store, real_traces_dir, tmp_path, jsonl_rows):
    disguised = tmp_path / "traces.jsonl"
    disguised.write_bytes(gzip.compress((real_traces_dir / TRACES_FILE).read_bytes()))
    rows = {k: comparable(v) for k, v in _ingest_fresh(store, disguised).items()}
    assert rows == jsonl_rows


def test_protobuf_files_give_the_same_rows_as_jsonl(store, real_traces_dir, tmp_path, jsonl_rows):
    for i, req in enumerate(_requests(real_traces_dir)):
        (tmp_path / f"req{i:02d}.pb").write_bytes(_to_protobuf(req))
    rows = {k: comparable(v) for k, v in _ingest_fresh(store, tmp_path).items()}
    assert rows == jsonl_rows


def test_gzipped_protobuf_gives_the_same_rows(real_traces_dir, tmp_path):
    req = _requests(real_traces_dir)[0]
    (tmp_path / "a.pb.gz").write_bytes(gzip.compress(_to_protobuf(req)))
    (tmp_path / "a.jsonl").write_text(json.dumps(req) + "\n")
    pb = [r for rec in iter_file(tmp_path / "a.pb.gz") for r in map_request(rec.payload)[0]]
    js = [r for rec in iter_file(tmp_path / "a.jsonl") for r in map_request(rec.payload)[0]]
    assert pb == js and len(pb) == 6


def test_a_corrupt_protobuf_file_is_rejected(store, tmp_path):
    (tmp_path / "bad.pb").write_bytes(b"\x0a\xff\xff\xff\x0f garbage")
    summary = ingest_paths(store.engine, [tmp_path / "bad.pb"])
    assert summary.rejected == 1 and summary.stored == 0


def test_a_json_array_of_requests_gives_the_same_rows(store, real_traces_dir, tmp_path, jsonl_rows):
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(_requests(real_traces_dir), indent=2))
    rows = {k: comparable(v) for k, v in _ingest_fresh(store, path).items()}
    assert rows == jsonl_rows


def test_a_json_file_of_one_pretty_printed_request_is_read(tmp_path, real_traces_dir):
    req = _requests(real_traces_dir)[1]
    path = tmp_path / "one.json"
    path.write_text(json.dumps(req, indent=2))
    (rec,) = list(iter_file(path))
    assert rec.payload == req


def test_a_json_file_of_json_lines_is_read_line_by_line(tmp_path, real_traces_dir):
    path = tmp_path / "lines.json"
    shutil.copy(real_traces_dir / TRACES_FILE, path)
    recs = list(iter_file(path))
    assert [r.location for r in recs] == [f"line {i}" for i in range(1, 21)]
    assert all(r.error is None for r in recs)


def test_a_truncated_json_line_inside_a_json_file_does_not_hide_the_next_lines(tmp_path, real_traces_dir):
    lines = (real_traces_dir / TRACES_FILE).read_text().splitlines()
    path = tmp_path / "lines.json"
    path.write_text("\n".join([lines[0][:100], *lines[1:]]) + "\n")
    recs = list(iter_file(path))
    assert recs[0].error is not None and recs[0].location == "line 1"
    assert [r.error for r in recs[1:]] == [None] * 19


def test_a_big_json_array_is_streamed_in_chunks(tmp_path, monkeypatch):
    from obs_pipelines.ingest.formats import json_values
    from obs_pipelines_tests.ingest.otlp_builders import request, span

    monkeypatch.setattr(json_values, "CHUNK", 64)  # force many partial reads
    reqs = [request(span(f"s{i}", span_id=f"{i + 1:016x}", attrs={"ü": "é" * i})) for i in range(50)]
    path = tmp_path / "arr.json"
    path.write_text(json.dumps(reqs, ensure_ascii=False))
    recs = list(iter_file(path))
    assert [r.payload for r in recs] == reqs


def test_directories_are_expanded_recursively(store, real_traces_dir, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(real_traces_dir / TRACES_FILE, tmp_path / "a" / "b" / "t.jsonl")
    (tmp_path / "a" / "notes.txt").write_text("not a trace file")
    (tmp_path / "a" / ".hidden.jsonl").write_text("{}")
    assert expand_paths([tmp_path]) == [tmp_path / "a" / "b" / "t.jsonl"]
    summary = ingest_paths(store.engine, [tmp_path])
    assert (summary.files, summary.stored) == (1, real_counts().stored)


def test_globs_are_expanded(store, real_traces_dir, tmp_path):
    for name in ("x1.jsonl", "x2.jsonl", "y.jsonl"):
        shutil.copy(real_traces_dir / TRACES_FILE, tmp_path / name)
    assert [p.name for p in expand_paths([str(tmp_path / "x*.jsonl")])] == ["x1.jsonl", "x2.jsonl"]
    summary = ingest_paths(store.engine, [str(tmp_path / "x*.jsonl")])
    real = real_counts()  # two copies: the second one's spans are all duplicates
    assert (summary.files, summary.read, summary.stored, summary.duplicate) == (
        2, 2 * real.read, real.stored, 2 * real.read - real.stored
    )


def _ingest_fresh(store, path):
    """Ingest `path` into the (fresh) store, after clearing what the jsonl fixture stored."""
    import sqlalchemy as sa

    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM spans"))
    summary = ingest_paths(store.engine, [path])
    assert summary.rejected == 0 and summary.stored == real_counts().stored
    return span_rows(store.engine)


def _one_resource_pb(real_traces_dir) -> tuple[bytes, dict]:
    """All spans of the first trace under one resource and one scope, as protobuf and as JSON."""
    req = _requests(real_traces_dir)[2]  # beeai: 29 spans, one resource, one scope
    assert len(req["resourceSpans"]) == 1 and len(req["resourceSpans"][0]["scopeSpans"]) == 1
    return _to_protobuf(req), req


def test_a_huge_resource_spans_is_read_one_span_at_a_time_with_the_same_rows(tmp_path, real_traces_dir, monkeypatch):
    from obs_pipelines.ingest.formats import protobuf

    data, req = _one_resource_pb(real_traces_dir)
    monkeypatch.setattr(protobuf, "PROTOBUF_WHOLE_MAX", 0)
    (tmp_path / "big.pb").write_bytes(data)
    (rec,) = list(iter_file(tmp_path / "big.pb"))
    assert rec.location == "resourceSpans[0].scopeSpans[0].spans[0:29]"
    assert map_request(rec.payload) == map_request(req)


def test_a_huge_resource_spans_is_emitted_in_groups_of_spans(tmp_path, real_traces_dir, monkeypatch):
    from obs_pipelines.ingest.formats import protobuf

    data, req = _one_resource_pb(real_traces_dir)
    monkeypatch.setattr(protobuf, "PROTOBUF_WHOLE_MAX", 0)
    monkeypatch.setattr(protobuf, "PROTOBUF_GROUP_SPANS", 10)
    (tmp_path / "big.pb").write_bytes(data)
    recs = list(iter_file(tmp_path / "big.pb"))
    assert [len(r.payload["resourceSpans"][0]["scopeSpans"][0]["spans"]) for r in recs] == [10, 10, 9]
    ids = {(r["trace_id"], r["span_id"]) for rec in recs for r in map_request(rec.payload)[0]}
    assert ids == {(r["trace_id"], r["span_id"]) for r in map_request(req)[0]}
    assert {r["service_name"] for rec in recs for r in map_request(rec.payload)[0]} == {"unknown_service"}


def test_a_truncated_huge_resource_spans_is_rejected_after_the_spans_before_the_cut(tmp_path, real_traces_dir, monkeypatch):
    from obs_pipelines.ingest.formats import protobuf

    data, _ = _one_resource_pb(real_traces_dir)
    monkeypatch.setattr(protobuf, "PROTOBUF_WHOLE_MAX", 0)
    monkeypatch.setattr(protobuf, "PROTOBUF_GROUP_SPANS", 10)
    (tmp_path / "cut.pb").write_bytes(data[: len(data) // 2])
    recs = list(iter_file(tmp_path / "cut.pb"))
    assert recs[-1].error is not None and recs[-1].error.startswith("invalid protobuf")
    assert all(r.error is None for r in recs[:-1]) and len(recs) >= 2
