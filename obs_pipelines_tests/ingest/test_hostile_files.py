"""Hostile input files (issue 10, points 4-7): a clear reject, never a crash, a hang or a silent loss.

Every test puts the hostile file in a run with good files (or good lines around it) and checks that the
good data lands, that the reject says what happened, and that the accounting holds
(read == stored + duplicate + rejected)."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib

import pytest

from obs_pipelines.ingest import runner
from obs_pipelines.ingest.limits import IngestLimits
from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines.settings import Settings
from obs_pipelines_tests.ingest.otlp_builders import reject_rows, request, span, span_rows, write_jsonl

# a gzip "bomb": this many bytes of zeros, as repeated gzip members of 64 MiB each (~64 KiB compressed)
BOMB_BYTES = 8 * 2**30
_ZERO_MEMBER = 64 * 2**20


def good(i: int) -> dict:
    """A one-span request with its own trace id."""
    return request(span(f"good {i}", trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}"))


def good_lines(n: int, first: int = 0) -> bytes:
    return b"".join(json.dumps(good(first + i)).encode() + b"\n" for i in range(n))


def gzip_bomb(prefix: bytes = b"", total: int = BOMB_BYTES, fill: bytes = b"\0") -> bytes:
    """`prefix` then `total` bytes of `fill` repeated (zeros), gzip-compressed, as repeated members of 64 MiB
    (so the test never holds more than 64 MiB of it)."""
    member = gzip.compress(fill * (_ZERO_MEMBER // len(fill)), compresslevel=9)
    head = gzip.compress(prefix) if prefix else b""
    return head + member * (total // _ZERO_MEMBER)


def ingest(store, *paths, **kw):
    summary = ingest_paths(store.engine, list(paths), **kw)
    assert summary.read == summary.stored + summary.duplicate + summary.rejected
    rejects = reject_rows(store.engine)
    assert summary.rejected == len(rejects)
    return summary, span_rows(store.engine), rejects


def good_file(tmp_path, name: str = "good.jsonl", first: int = 1000):
    path = tmp_path / name
    path.write_bytes(good_lines(3, first))
    return path


# ---- 4. crashes ---------------------------------------------------------------------------------------


def test_a_json_line_nested_1025_deep_is_rejected_and_the_lines_after_it_land(store, tmp_path):
    deep = "[" * 1025 + "]" * 1025
    path = write_jsonl(tmp_path / "deep.jsonl", good(0), deep, good(1))
    summary, rows, rejects = ingest(store, path, workers=0)
    assert (summary.stored, summary.rejected) == (2, 1)
    assert "nested deeper than 1024" in rejects[0]["reason"] and rejects[0]["location"] == "line 2"


def test_a_json_file_nested_too_deep_for_the_stdlib_parser_is_rejected_not_raised(store, tmp_path):
    path = tmp_path / "deep.json"
    lines = [json.dumps(good(0)), "[" * 5000 + "]" * 5000, json.dumps(good(1))]
    path.write_text("\n".join(lines) + "\n")
    summary, rows, rejects = ingest(store, path, workers=0)
    assert (summary.stored, summary.rejected) == (2, 1)
    assert "nested deeper" in rejects[0]["reason"]


def test_the_depth_limit_of_a_json_file_is_1024_as_its_reject_says_not_pythons_1000(store, tmp_path):
    # 1010 levels: within max_json_depth (1024), so not a depth reject (Python's own limit is 1000);
    # 1025 levels: rejected, and the reason names the real limit
    path = tmp_path / "deep.json"
    within, beyond = "[" * 1010 + "]" * 1010, "[" * 1025 + "]" * 1025
    path.write_text("\n".join([json.dumps(good(0)), within, beyond, json.dumps(good(1))]) + "\n")
    summary, _, rejects = ingest(store, path, workers=0)
    assert summary.stored == 2
    reasons = {r["location"]: r["reason"] for r in rejects}
    assert "nested deeper" not in reasons["line 2"]
    assert "nested deeper than 1024 levels" in reasons["line 3"]


def test_a_lower_json_depth_limit_is_enforced(store, tmp_path):
    nested = request(span(attrs={"deep": {"a": {"b": {"c": {"d": "e"}}}}}))
    path = write_jsonl(tmp_path / "d.jsonl", good(0), nested)
    summary, _, rejects = ingest(store, path, workers=0, limits=IngestLimits(max_json_depth=12))
    assert (summary.stored, summary.rejected) == (1, 1)
    assert "max_json_depth" in rejects[0]["reason"]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


@pytest.mark.parametrize("field", [1, 2], ids=["resource_spans", "unknown_field"])
def test_a_13_byte_protobuf_declaring_a_2_62_byte_field_is_rejected_and_the_other_files_land(store, tmp_path, field):
    forged = bytes([field << 3 | 2]) + varint(2**62) + b"abc"
    assert len(forged) == 13
    (tmp_path / "a_forged.pb").write_bytes(forged)
    summary, rows, rejects = ingest(store, tmp_path / "a_forged.pb", good_file(tmp_path), workers=0)
    assert summary.stored == 3 and summary.files == 2
    assert len(rejects) == 1 and "truncated" in rejects[0]["reason"]
    assert rejects[0]["source"].endswith("a_forged.pb")


def test_protobuf_field_number_zero_is_not_read_byte_by_byte(store, tmp_path):
    (tmp_path / "zeros.pb").write_bytes(b"\0" * (4 * 2**20))
    summary, _, rejects = ingest(store, tmp_path / "zeros.pb", workers=0)
    assert "field number 0" in rejects[0]["reason"]  # stopped at the first field, not after 4 MiB of them


@pytest.mark.parametrize("workers", [0, 2], ids=["in_process", "workers"])
def test_a_jsonl_gzip_bomb_stops_at_the_ratio_limit_and_keeps_the_lines_before_it(store, tmp_path, workers, monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_MIN_BYTES", 0)
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip_bomb(good_lines(5)))
    summary, rows, rejects = ingest(store, bomb, good_file(tmp_path), workers=workers)
    assert summary.stored == 8 and summary.files == 2  # 5 lines before the zeros + the good file
    reasons = [r["reason"] for r in rejects]
    assert any("max_compression_ratio" in r and "compressed byte" in r for r in reasons), reasons
    assert all(len(r["payload"]) < 70_000 for r in rejects)  # the zeros are not kept


# ---- 5. hangs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, fill, reason",
    [
        ("bomb.json.gz", b"\0", "max_compression_ratio"),
        ("bomb.json.gz", b" ", "max_compression_ratio"),  # whitespace: the JSON reader keeps reading
        ("bomb.pb.gz", b"\0", "field number 0"),
        ("bomb.pb.gz", b"\x10\x00", "unknown top-level fields"),  # valid protobuf, read field by field
        ("bomb.gz", b"\0", "field number 0"),
    ],
)
def test_a_gzip_bomb_of_any_format_is_stopped_quickly(store, tmp_path, name, fill, reason):
    (tmp_path / name).write_bytes(gzip_bomb(fill=fill))
    summary, rows, rejects = ingest(store, tmp_path / name, good_file(tmp_path), workers=0)
    assert summary.stored == 3
    assert any(reason in r["reason"] for r in rejects), [r["reason"] for r in rejects]


def test_the_decompressed_size_limit_stops_a_file_and_keeps_what_came_before(store, tmp_path):
    path = tmp_path / "big.jsonl.gz"
    data = good_lines(200)
    path.write_bytes(gzip.compress(data))
    limits = IngestLimits(max_decompressed_bytes=len(data) // 2)
    summary, rows, rejects = ingest(store, path, workers=0, limits=limits)
    assert 90 <= summary.stored < 200
    assert any("max_decompressed_bytes" in r["reason"] for r in rejects)


# ---- 6. silent loss -----------------------------------------------------------------------------------


@pytest.fixture(params=[0, 2], ids=["in_process", "workers"])
def workers(request, monkeypatch):
    monkeypatch.setattr(runner, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(runner, "CHUNK_BYTES", 50_000)
    return request.param


def test_trailing_garbage_after_a_gzip_file_loses_no_span(store, tmp_path, workers):
    data = good_lines(2000)
    compressed = gzip.compress(data)
    path = tmp_path / "garbage.jsonl.gz"
    path.write_bytes(compressed + b"not gzip here!!")  # 15 bytes
    summary, rows, rejects = ingest(store, path, workers=workers)
    assert summary.stored == 2000
    assert len(rejects) == 1
    reason = rejects[0]["reason"]
    assert "trailing garbage" in reason and f"compressed byte {len(compressed)}" in reason
    assert "15 bytes" in reason and rejects[0]["source"] == str(path)


def test_trailing_zero_padding_after_a_gzip_file_is_ignored(store, tmp_path):
    path = tmp_path / "padded.jsonl.gz"
    path.write_bytes(gzip.compress(good_lines(10)) + b"\0" * 1000)
    summary, _, rejects = ingest(store, path, workers=0)
    assert (summary.stored, summary.rejected) == (10, 0)


def test_a_truncated_gzip_file_stores_every_complete_line_and_names_the_offset(store, tmp_path, workers):
    data = good_lines(3000)
    compressed = gzip.compress(data)
    cut = compressed[: len(compressed) * 2 // 3]
    (tmp_path / "cut.jsonl.gz").write_bytes(cut)
    recoverable = zlib.decompressobj(31).decompress(cut)
    complete = recoverable.count(b"\n")
    summary, rows, rejects = ingest(store, tmp_path / "cut.jsonl.gz", workers=workers)
    assert summary.stored == complete
    damage = [r for r in rejects if "truncated gzip" in r["reason"]]
    assert len(damage) == 1
    assert f"decompressed byte {len(recoverable)}" in damage[0]["reason"]
    assert "compressed byte" in damage[0]["reason"] and "lost" in damage[0]["reason"]
    # the partial last line is kept as a reject of its own, with its text
    partial = recoverable[recoverable.rindex(b"\n") + 1 :]
    if partial:
        assert any(r["payload"] == partial.decode() for r in rejects)


def test_a_corrupt_gzip_member_keeps_the_members_before_it(store, tmp_path):
    first, second = gzip.compress(good_lines(50)), bytearray(gzip.compress(good_lines(50, 50)))
    second[len(second) // 2] ^= 0xFF
    (tmp_path / "corrupt.jsonl.gz").write_bytes(first + bytes(second))
    summary, _, rejects = ingest(store, tmp_path / "corrupt.jsonl.gz", workers=0)
    assert summary.stored >= 50
    assert any("corrupt gzip data" in r["reason"] for r in rejects)


# ---- 7. reject only what is bad; capped payloads; limits are settings; one bad file alone -------------


def test_an_out_of_range_integer_resource_attribute_keeps_every_span_of_its_request(store, tmp_path):
    req = request(*[span(f"s{i}", span_id=f"{i + 1:016x}") for i in range(1000)])
    attrs = req["resourceSpans"][0]["resource"]["attributes"]
    attrs += [{"key": "huge", "value": {"intValue": "99999999999999999999999"}},
              {"key": "inf", "value": {"intValue": 1e999}}]  # fmt: skip
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(req).replace('"Infinity"', "1e999").replace("Infinity", "1e999") + "\n")
    summary, rows, rejects = ingest(store, path, workers=0)
    assert (summary.stored, summary.rejected) == (1000, 0)
    resource = next(iter(rows.values()))["attributes"]["otel.resource"]
    assert resource["huge"] == "99999999999999999999999" and resource["inf"] == "inf"


def test_a_mapping_failure_of_a_whole_request_keeps_its_payload(store, tmp_path, monkeypatch):
    def broken(payload):
        raise RuntimeError("mapping bug")

    monkeypatch.setattr(runner, "map_request", broken)
    path = write_jsonl(tmp_path / "m.jsonl", good(0))
    summary, _, rejects = ingest(store, path, workers=0)
    assert rejects[0]["reason"].startswith("mapping error") and "good 0" in rejects[0]["payload"]


def test_a_long_reject_payload_is_capped_with_its_size_and_sha256(store, tmp_path):
    line = '{"resourceSpans": "' + "x" * 200_000  # unterminated: invalid JSON
    path = write_jsonl(tmp_path / "long.jsonl", good(0), line, good(1))
    summary, _, rejects = ingest(store, path, workers=0, limits=IngestLimits(max_reject_payload_bytes=1000))
    assert summary.stored == 2
    payload = rejects[0]["payload"]
    assert len(payload.encode()) <= 1000 and payload.startswith(line[:800])
    assert f"of {len(line)} bytes" in payload and hashlib.sha256(line.encode()).hexdigest() in payload


@pytest.mark.parametrize("name", ["long.jsonl", "long.json"])
def test_a_line_over_max_line_bytes_is_skipped_with_a_reject_and_the_next_lines_land(store, tmp_path, name, workers):
    line = json.dumps(request(span(attrs={"input.value": "y" * 50_000})))
    path = tmp_path / name
    path.write_text(json.dumps(good(0)) + "\n" + line + "\n" + json.dumps(good(1)) + "\n")
    limits = IngestLimits(max_line_bytes=10_000, max_reject_payload_bytes=2_000)
    summary, _, rejects = ingest(store, path, workers=workers, limits=limits)
    assert (summary.stored, summary.rejected) == (2, 1)
    assert "max_line_bytes (10000)" in rejects[0]["reason"]
    payload = rejects[0]["payload"]
    assert payload.startswith(line[:1000]) and len(payload.encode()) <= 2_000
    assert f"of {len(line)} bytes" in payload and hashlib.sha256(line.encode()).hexdigest() in payload


def test_ingest_limits_are_a_setting_with_safe_defaults():
    defaults = Settings().ingest_limits
    assert defaults == IngestLimits()
    assert defaults.max_json_depth == 1024 and defaults.max_compression_ratio > 50
    limits = Settings(ingest_limits={"max_line_bytes": 1000}).ingest_limits
    assert limits.max_line_bytes == 1000 and limits.max_reject_payload_bytes == defaults.max_reject_payload_bytes
    with pytest.raises(ValueError):
        Settings(ingest_limits={"max_line_byte": 1000})  # unknown key


def test_an_unexpected_error_in_one_file_rejects_that_file_and_the_others_land(store, tmp_path, monkeypatch):
    from obs_pipelines.ingest import readers

    real = readers.iter_jsonl

    def fails_on_b(stream, source, limits):
        if source.endswith("b.jsonl"):
            yield from real(stream, source, limits)
            raise MemoryError("simulated")
        yield from real(stream, source, limits)

    monkeypatch.setattr(readers, "iter_jsonl", fails_on_b)
    paths = [good_file(tmp_path, "a.jsonl", 0), good_file(tmp_path, "b.jsonl", 10), good_file(tmp_path, "c.jsonl", 20)]
    summary, rows, rejects = ingest(store, *paths, workers=0)
    assert summary.stored == 9 and summary.files == 3
    assert len(rejects) == 1 and rejects[0]["source"].endswith("b.jsonl")
    assert "MemoryError: simulated" in rejects[0]["reason"]


def test_an_error_in_a_forked_worker_rejects_that_file_and_the_others_land(store, tmp_path, monkeypatch):
    import gc

    monkeypatch.setattr(runner, "PARALLEL_MIN_BYTES", 0)
    real = runner._map_lines

    def fails_on_b(source, first, lines, limits):
        if source.endswith("b.jsonl"):
            raise RecursionError("simulated in a worker")
        return real(source, first, lines, limits)

    monkeypatch.setattr(runner, "_map_lines", fails_on_b)  # inherited by the forked workers
    paths = [good_file(tmp_path, "a.jsonl", 0), good_file(tmp_path, "b.jsonl", 10), good_file(tmp_path, "c.jsonl", 20)]
    summary, rows, rejects = ingest(store, *paths, workers=2)
    assert summary.stored == 6 and summary.files == 3
    assert len(rejects) == 1 and rejects[0]["source"].endswith("b.jsonl")
    assert "simulated in a worker" in rejects[0]["reason"]
    assert gc.isenabled()  # the parallel path turned the GC off for its file: it is back on
