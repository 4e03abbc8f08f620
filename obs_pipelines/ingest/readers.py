"""Stream OTLP trace records out of files: JSON lines, JSON, gzip, OTLP/HTTP protobuf.

`iter_records(paths)` yields one `Record` per ExportTraceServiceRequest (a JSONL line, a JSON array
element, a JSON document, or a group of `resourceSpans` of a protobuf file), each with its source path and
location. Nothing is loaded whole: lines are read one by one, JSON arrays and concatenated documents are
decoded incrementally, protobuf requests are split on their top-level `resource_spans` field.

A record that cannot be read (truncated JSON, invalid UTF-8, not an object, corrupt protobuf) is yielded
with `error` set and the raw text in `raw`: the caller stores it as a reject. Reading never raises on bad
content; a file that cannot be opened at all gives one error record.

Hostile files are bounded by `IngestLimits`: a line / value / message longer than `max_line_bytes` is
skipped without being held in memory (its head, size and sha256 are kept); gzip is inflated here, chunk by
chunk, so a bomb stops at `max_decompressed_bytes` or `max_compression_ratio`, and damage (trailing
garbage, truncation, corrupt data) ends the stream cleanly: every complete record before it is yielded,
then one error record naming the byte offsets and what was lost.

One module per format under `ingest/formats/`; this module expands paths, picks the reader of a file and
re-exports the public names (callers import them from here).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from obs_pipelines.ingest.formats.common import (
    Oversize,
    Record,
    cap_payload,
    json_depth,
    raw_text,
)
from obs_pipelines.ingest.formats.json_values import iter_json
from obs_pipelines.ingest.formats.jsonl import (
    decode_jsonl_line,
    is_jsonl_file,
    iter_jsonl,
    iter_line_chunks,
    read_lines,
)
from obs_pipelines.ingest.formats.protobuf import PROTOBUF_GROUP_SPANS, iter_protobuf
from obs_pipelines.ingest.formats.stream import (
    GZIP_MAGIC,
    GzipInflate,
    Opened,
    inner_name,
    open_stream,
    sniff,
)
from obs_pipelines.ingest.limits import DEFAULT_LIMITS, IngestLimits

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PROTOBUF_SUFFIXES = (".pb", ".bin", ".protobuf")
INGESTIBLE_SUFFIXES = JSON_SUFFIXES + PROTOBUF_SUFFIXES + (".gz",)


# ---- path expansion ------------------------------------------------------------------------------


def _is_candidate(p: Path) -> bool:
    name = p.name
    if name.startswith(".") or name.endswith((".tmp", ".part")):
        return False
    return name.lower().endswith(INGESTIBLE_SUFFIXES)


def expand_paths(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    """Files named by `paths`: files as given, directories recursively (ingestible suffixes only),
    glob patterns expanded (recursive `**` allowed). Sorted, de-duplicated, in argument order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in paths:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file() and _is_candidate(q)):
                add(f)
        elif p.exists():
            add(p)
        elif glob.has_magic(text):
            for m in sorted(glob.glob(text, recursive=True)):
                q = Path(m)
                if q.is_dir():
                    for f in sorted(r for r in q.rglob("*") if r.is_file() and _is_candidate(r)):
                        add(f)
                elif q.is_file():
                    add(q)
        else:
            add(p)  # missing: reported as an error record by iter_file
    return out


# ---- files ---------------------------------------------------------------------------------------


def detect_format(path: Path, stream, gzipped: bool) -> str:
    name = inner_name(path, gzipped)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(PROTOBUF_SUFFIXES):
        return "protobuf"
    first = sniff(stream)
    return "json" if first in (b"{", b"[") else "protobuf"


def iter_file(path: str | os.PathLike, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """Records of one file (format from the name, gzip from the magic bytes, else sniffed), then one
    error record if the file is damaged or breaks a limit (everything before the damage is read)."""
    p = Path(path)
    source = str(p)
    try:
        opened = open_stream(p, limits)
    except OSError as exc:
        yield Record(source, "file", error=f"cannot open: {exc}", raw="")
        return
    try:
        stream = opened.stream
        fmt = detect_format(p, stream, opened.gzipped)
        reader = {"jsonl": iter_jsonl, "json": iter_json, "protobuf": iter_protobuf}[fmt]
        it = reader(stream, source, limits)
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (OSError, EOFError, ValueError) as exc:  # I/O error: what was read so far stays read
                yield Record(source, "file", error=f"read error: {type(exc).__name__}: {exc}", raw="")
                break
            yield rec
        damage = opened.damage()
        if damage is not None:
            yield damage_record(source, damage)
    finally:
        opened.close()


def damage_record(source: str, damage: str) -> Record:
    return Record(source, "file", error=damage_reason(damage), raw="")


def damage_reason(damage: str) -> str:
    return f"read error: {damage}"


def iter_records(paths, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """Records of every file named by `paths` (files, directories, globs)."""
    for p in expand_paths(paths):
        yield from iter_file(p, limits)


__all__ = [
    "GZIP_MAGIC",
    "PROTOBUF_GROUP_SPANS",
    "INGESTIBLE_SUFFIXES",
    "GzipInflate",
    "Opened",
    "Oversize",
    "cap_payload",
    "damage_reason",
    "damage_record",
    "json_depth",
    "open_stream",
    "read_lines",
    "decode_jsonl_line",
    "is_jsonl_file",
    "iter_line_chunks",
    "raw_text",
    "Record",
    "detect_format",
    "expand_paths",
    "iter_file",
    "iter_json",
    "iter_jsonl",
    "iter_protobuf",
    "iter_records",
]
