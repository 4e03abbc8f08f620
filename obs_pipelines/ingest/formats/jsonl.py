"""JSON lines: one ExportTraceServiceRequest per line; a line longer than `max_line_bytes` is read
through without being held (an `Oversize`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from obs_pipelines.ingest.formats.common import (
    CHUNK,
    Oversize,
    Record,
    check_payload,
    decode_json,
    head_bytes,
    raw_text,
)
from obs_pipelines.ingest.formats.stream import Opened
from obs_pipelines.ingest.limits import DEFAULT_LIMITS, ORJSON_MAX_DEPTH, IngestLimits


def decode_jsonl_line(line: bytes, max_depth: int = ORJSON_MAX_DEPTH) -> tuple[object, str | None]:
    """(payload, error) of one JSON line: the decoded object, or why it is not a readable record."""
    value, error = decode_json(line, max_depth)
    if error is None:
        error = check_payload(value)
    return value, error


def read_lines(stream, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[bytes | Oversize]:
    """Lines of a stream, none longer than `max_line_bytes` in memory: a longer one is read through in
    chunks and given as an `Oversize`. The first line's UTF-8 BOM is dropped."""
    readline = stream.readline
    limit = limits.max_line_bytes + 1  # the newline does not count
    first = True
    while True:
        line = readline(limit)
        if not line:
            return
        if first:
            first = False
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        if len(line) < limit or line[-1] == 10:
            yield line
        else:
            yield _skip_line(readline, line, limits)


def _skip_line(readline, start: bytes, limits: IngestLimits) -> Oversize:
    h = hashlib.sha256(start)
    size = len(start)
    while True:
        chunk = readline(CHUNK)
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
            h.update(chunk)
            size += len(chunk)
            break
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
    return Oversize(size, h.hexdigest(), start[: head_bytes(limits.max_reject_payload_bytes)])


def iter_jsonl(stream, source: str, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    lineno = 0
    depth = limits.max_json_depth
    for line in read_lines(stream, limits):
        lineno += 1
        if type(line) is not bytes:
            oversize = cast(Oversize, line)  # read_lines yields bytes or Oversize
            yield Record(source, f"line {lineno}", error=oversize.reason(limits), raw=oversize.payload())
            continue
        if not line.strip():
            continue
        value, error = decode_jsonl_line(line, depth)
        if error is not None:
            yield Record(source, f"line {lineno}", error=error, raw=raw_text(line))
        else:
            yield Record(source, f"line {lineno}", payload=value)


def iter_line_chunks(
    opened: Opened, chunk_bytes: int, limits: IngestLimits = DEFAULT_LIMITS
) -> Iterator[tuple[int, list[bytes | Oversize]]]:
    """(first line number, lines) of an opened JSON-lines file in chunks of about `chunk_bytes`
    (an over-long line is an `Oversize`). Damage ends the stream early: see `opened.damage()`."""
    lines: list[bytes | Oversize] = []
    size = 0
    first = 1
    lineno = 0
    for line in read_lines(opened.stream, limits):
        lineno += 1
        lines.append(line)
        size += len(line) if type(line) is bytes else 1
        if size >= chunk_bytes:
            yield first, lines
            first, lines, size = lineno + 1, [], 0
    if lines:
        yield first, lines


def is_jsonl_file(path: str | os.PathLike) -> bool:
    """A JSON-lines file by name (optionally gzip-compressed)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith((".jsonl", ".ndjson"))
