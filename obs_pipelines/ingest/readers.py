"""Stream OTLP trace records out of files: JSON lines, JSON, gzip, OTLP/HTTP protobuf.

`iter_records(paths)` yields one `Record` per ExportTraceServiceRequest (a JSONL line, a JSON array
element, a JSON document, or a group of `resourceSpans` of a protobuf file), each with its source path and
location. Nothing is loaded whole: lines are read one by one, JSON arrays and concatenated documents are
decoded incrementally, protobuf requests are split on their top-level `resource_spans` field.

A record that cannot be read (truncated JSON, invalid UTF-8, not an object, corrupt protobuf) is yielded
with `error` set and the raw text in `raw`: the caller stores it as a reject. Reading never raises on bad
content; a file that cannot be opened at all gives one error record.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PROTOBUF_SUFFIXES = (".pb", ".bin", ".protobuf")
INGESTIBLE_SUFFIXES = JSON_SUFFIXES + PROTOBUF_SUFFIXES + (".gz",)
# resourceSpans of a protobuf request mapped together (route / user propagation works inside a group)
PROTOBUF_GROUP_SPANS = 20_000
_CHUNK = 1 << 20


@dataclass(slots=True)
class Record:
    source: str
    location: str
    payload: object = None  # decoded ExportTraceServiceRequest (dict) when readable
    error: str | None = None  # why the record could not be read
    raw: str | None = None  # the raw text of an unreadable record


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


# ---- decoding helpers ----------------------------------------------------------------------------


def _raw_text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "backslashreplace")
    return data.replace("\x00", "\\u0000") if "\x00" in data else data


def _fix_surrogates(obj):
    """Replace lone surrogates (from \\ud800 escapes that only the stdlib parser accepts)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(obj, list):
        return [_fix_surrogates(x) for x in obj]
    if isinstance(obj, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in obj.items()}
    return obj


def _decode_json(data: bytes) -> tuple[object, str | None]:
    """(value, error) of one JSON text; orjson first, the stdlib for what orjson refuses but is legal
    enough to keep (lone surrogate escapes, NaN)."""
    try:
        return orjson.loads(data), None
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8: {exc}"
    try:
        return _fix_surrogates(json.loads(text)), None
    except ValueError:
        return None, f"invalid JSON: {first_error}"


def _check_payload(value) -> str | None:
    if type(value) is not dict:
        return f"not a JSON object (got {type(value).__name__})"
    return None


# ---- formats -------------------------------------------------------------------------------------


def _open_binary(path: Path):
    fh = open(path, "rb")
    head = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb"), True
    return fh, False


def _inner_name(path: Path, gzipped: bool) -> str:
    name = path.name.lower()
    if gzipped and name.endswith(".gz"):
        name = name[:-3]
    return name


def _sniff(stream) -> bytes:
    """First non-whitespace byte, without consuming (stream must be a BufferedReader / GzipFile)."""
    head = stream.peek(4096)
    stripped = head.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    return stripped[:1]


def decode_jsonl_line(line: bytes) -> tuple[object, str | None]:
    """(payload, error) of one JSON line: the decoded object, or why it is not a readable record."""
    value, error = _decode_json(line)
    if error is None:
        error = _check_payload(value)
    return value, error


def raw_text(data: bytes | str) -> str:
    """Raw record text for `ingest_rejects` (undecodable bytes backslash-escaped, NUL escaped)."""
    if isinstance(data, bytes):
        data = data.rstrip(b"\r\n")
    return _raw_text(data)


def iter_jsonl(stream, source: str) -> Iterator[Record]:
    lineno = 0
    for line in stream:
        lineno += 1
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        value, error = decode_jsonl_line(line)
        if error is not None:
            yield Record(source, f"line {lineno}", error=error, raw=raw_text(line))
        else:
            yield Record(source, f"line {lineno}", payload=value)


def iter_line_chunks(path: str | os.PathLike, chunk_bytes: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) of a JSON-lines file (gzip or not) in chunks of about `chunk_bytes`.
    Read errors (truncated gzip ...) propagate: the caller records them."""
    raw_stream, gzipped = _open_binary(Path(path))
    stream = io.BufferedReader(raw_stream, buffer_size=_CHUNK) if gzipped else raw_stream
    try:
        lines: list[bytes] = []
        size = 0
        first = 1
        lineno = 0
        for line in stream:
            lineno += 1
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            lines.append(line)
            size += len(line)
            if size >= chunk_bytes:
                yield first, lines
                first, lines, size = lineno + 1, [], 0
        if lines:
            yield first, lines
    finally:
        stream.close()
        raw_stream.close()


def is_jsonl_file(path: str | os.PathLike) -> bool:
    """A JSON-lines file by name (optionally gzip-compressed)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith((".jsonl", ".ndjson"))


def _iter_values(stream, source: str, array: bool) -> Iterator[Record]:
    """JSON values one after the other (concatenated / pretty-printed / JSONL), or the elements of one
    top-level array, decoded incrementally. After an undecodable value, reading resumes at the next line."""
    decoder = json.JSONDecoder()
    buf = ""
    pos = 0
    eof = False
    line = 1  # line number of buf[pos]
    index = 0
    started = not array
    pending = b""

    def fill(min_more: int = _CHUNK) -> bool:
        nonlocal buf, pos, eof, pending
        if eof:
            return False
        data = pending + stream.read(max(min_more, _CHUNK))
        if not data:
            eof = True
            if pending:
                buf = buf[pos:] + pending.decode("utf-8", "replace")
                pos = 0
                pending = b""
                return True
            return False
        # keep an incomplete UTF-8 sequence for the next read
        cut = len(data)
        for back in range(1, 4):
            if cut - back < 0:
                break
            b = data[cut - back]
            if b & 0xC0 == 0x80:
                continue
            if b & 0x80:
                need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4
                if back < need:
                    cut -= back
            break
        pending = data[cut:]
        buf = buf[pos:] + data[:cut].decode("utf-8", "replace")
        pos = 0
        return True

    def skip_ws() -> bool:
        nonlocal pos, line
        while True:
            n = len(buf)
            while pos < n and buf[pos] in " \t\r\n\ufeff":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < n:
                return True
            if not fill():
                return False

    while True:
        if not skip_ws():
            if array and started:
                yield Record(source, f"element {index}", error="truncated JSON array (missing ']')", raw="")
            return
        ch = buf[pos]
        if array:
            if not started:
                if ch != "[":
                    yield Record(source, f"line {line}", error="expected a JSON array", raw=buf[pos : pos + 200])
                    return
                started = True
                pos += 1
                continue
            if ch == "]":
                pos += 1
                array = False  # anything after the array: more values
                started = True
                continue
            if ch == "," and index > 0:
                pos += 1
                continue
        want = _CHUNK
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                # near the end of the buffer (or a string still open there): maybe just not read yet
                if not eof and (exc.pos >= len(buf) - 16 or exc.msg.startswith("Unterminated string")):
                    if fill(want):
                        want *= 2
                        continue
                # a real error (or a value truncated by the end of file): skip to the next line
                nl = buf.find("\n", pos)
                while nl < 0 and fill():
                    nl = buf.find("\n", pos)
                end = nl if nl >= 0 else len(buf)
                loc = f"element {index}" if array else f"line {line}"
                yield Record(source, loc, error=f"invalid JSON: {exc.msg}", raw=_raw_text(buf[pos:end]))
                pos = end
                index += 1
                value = None
                end = -1
                break
        if end < 0:
            continue
        text_lines = buf.count("\n", pos, end)
        loc = f"element {index}" if array else f"line {line}"
        value = _fix_surrogates(value)
        error = _check_payload(value)
        if error is not None:
            yield Record(source, loc, error=error, raw=_raw_text(buf[pos:end]))
        else:
            yield Record(source, loc, payload=value)
        line += text_lines
        pos = end
        index += 1


def iter_json(stream, source: str) -> Iterator[Record]:
    first = _sniff(stream)
    if first == b"[":
        yield from _iter_values(stream, source, array=True)
    else:
        yield from _iter_values(stream, source, array=False)


# ---- protobuf ------------------------------------------------------------------------------------


def _read_varint(stream) -> int | None:
    v = _read_varint_n(stream)
    return None if v is None else v[0]


def _read_varint_n(stream) -> tuple[int, int] | None:
    """(value, bytes read) of a varint; None at a clean end of stream."""
    shift = 0
    result = 0
    n = 0
    while True:
        b = stream.read(1)
        if not b:
            if n == 0:
                return None
            raise ValueError("truncated varint")
        n += 1
        byte = b[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, n
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _read_field(stream) -> tuple[int, int, int, int] | None:
    """(field number, wire type, value or length, bytes of the key and length) of the next field."""
    kv = _read_varint_n(stream)
    if kv is None:
        return None
    key, n = kv
    field, wire = key >> 3, key & 7
    if wire == 2 or wire == 0:
        v = _read_varint_n(stream)
        if v is None:
            raise ValueError("truncated field")
        return field, wire, v[0], n + v[1]
    if wire == 1:
        return field, wire, 8, n
    if wire == 5:
        return field, wire, 4, n
    raise ValueError(f"unsupported wire type {wire}")


def _read_exact(stream, length: int) -> bytes:
    data = stream.read(length)
    if len(data) != length:
        raise ValueError(f"truncated message: {len(data)} of {length} bytes")
    return data


# ResourceSpans up to this size are parsed whole; bigger ones are walked field by field (one Span at a time)
PROTOBUF_WHOLE_MAX = 16 * 2**20


def iter_protobuf(stream, source: str) -> Iterator[Record]:
    """An ExportTraceServiceRequest, streamed: its top-level field 1 (repeated ResourceSpans) is read one
    message at a time and converted with json_format.MessageToDict; groups of resourceSpans up to about
    PROTOBUF_GROUP_SPANS spans make one record. A ResourceSpans bigger than PROTOBUF_WHOLE_MAX is walked
    field by field, one Span at a time (its resource must precede its scope spans, as serializers write)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.trace.v1 import trace_pb2

    group: list[dict] = []
    group_spans = 0
    first = 0
    index = 0
    while True:
        try:
            f = _read_field(stream)
            if f is None:
                break
            field, wire, length, _ = f
            if wire != 2 or field != 1:
                if wire != 0:
                    _read_exact(stream, length)
                continue  # unknown top-level field: ignored, like protobuf parsers do
            if length > PROTOBUF_WHOLE_MAX:
                if group:
                    yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
                    group, group_spans = [], 0
                yield from _iter_big_resource_spans(stream, length, source, index)
                index += 1
                first = index
                continue
            data = _read_exact(stream, length)
        except ValueError as exc:
            yield Record(source, f"resourceSpans[{index}]", error=f"invalid protobuf: {exc}", raw="")
            break
        msg = trace_pb2.ResourceSpans()
        try:
            msg.ParseFromString(data)
        except DecodeError as exc:
            yield Record(
                source,
                f"resourceSpans[{index}]",
                error=f"invalid protobuf ResourceSpans: {exc}",
                raw=_raw_text(data[:4096].hex()),
            )
            index += 1
            continue
        group.append(json_format.MessageToDict(msg))
        group_spans += sum(len(ss.spans) for ss in msg.scope_spans)
        index += 1
        if group_spans >= PROTOBUF_GROUP_SPANS:
            yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
            group, group_spans, first = [], 0, index
    if group:
        yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})


def _iter_big_resource_spans(stream, length: int, source: str, index: int) -> Iterator[Record]:
    """One huge ResourceSpans message, field by field: records of up to PROTOBUF_GROUP_SPANS spans, each a
    request with the resource, the scope, and a slice of that scope's spans. Raises ValueError on
    truncation (the caller records it)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    resource: dict = {}
    remaining = length
    si = 0
    while remaining > 0:
        f = _read_field(stream)
        if f is None:
            raise ValueError("truncated ResourceSpans")
        field, wire, flen, head = f
        remaining -= head + (flen if wire != 0 else 0)
        if wire == 2 and field == 1:
            msg = resource_pb2.Resource()
            msg.ParseFromString(_read_exact(stream, flen))
            resource = json_format.MessageToDict(msg)
            continue
        if not (wire == 2 and field == 2):
            if wire != 0:
                _read_exact(stream, flen)
            continue
        # one ScopeSpans: scope, then its spans one at a time
        scope: dict = {}
        spans: list[dict] = []
        first_span = 0
        n_span = 0
        inner = flen
        loc = f"resourceSpans[{index}].scopeSpans[{si}]"
        while inner > 0:
            g = _read_field(stream)
            if g is None:
                raise ValueError("truncated ScopeSpans")
            gfield, gwire, glen, ghead = g
            inner -= ghead + (glen if gwire != 0 else 0)
            data = _read_exact(stream, glen) if gwire != 0 else b""
            if gwire == 2 and gfield == 1:
                msg = common_pb2.InstrumentationScope()
                msg.ParseFromString(data)
                scope = json_format.MessageToDict(msg)
            elif gwire == 2 and gfield == 2:
                span = trace_pb2.Span()
                try:
                    span.ParseFromString(data)
                except DecodeError as exc:
                    yield Record(source, f"{loc}.spans[{n_span}]", error=f"invalid protobuf Span: {exc}",
                                 raw=_raw_text(data[:4096].hex()))  # fmt: skip
                    n_span += 1
                    continue
                spans.append(json_format.MessageToDict(span))
                n_span += 1
                if len(spans) >= PROTOBUF_GROUP_SPANS:
                    yield _big_record(source, loc, first_span, n_span, resource, scope, spans)
                    spans, first_span = [], n_span
        if spans:
            yield _big_record(source, loc, first_span, n_span, resource, scope, spans)
        si += 1


def _big_record(source, loc, first, end, resource, scope, spans) -> Record:
    payload = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": scope, "spans": spans}]}]}
    return Record(source, f"{loc}.spans[{first}:{end}]", payload=payload)


def _group_loc(first: int, end: int) -> str:
    return f"resourceSpans[{first}]" if end - first == 1 else f"resourceSpans[{first}:{end}]"


# ---- files ---------------------------------------------------------------------------------------


def detect_format(path: Path, stream, gzipped: bool) -> str:
    name = _inner_name(path, gzipped)
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(PROTOBUF_SUFFIXES):
        return "protobuf"
    first = _sniff(stream)
    return "json" if first in (b"{", b"[") else "protobuf"


def iter_file(path: str | os.PathLike) -> Iterator[Record]:
    """Records of one file (format from the name, gzip from the magic bytes, else sniffed)."""
    p = Path(path)
    source = str(p)
    try:
        raw_stream, gzipped = _open_binary(p)
    except OSError as exc:
        yield Record(source, "file", error=f"cannot open: {exc}", raw="")
        return
    stream = io.BufferedReader(raw_stream, buffer_size=_CHUNK) if gzipped else raw_stream
    try:
        try:
            fmt = detect_format(p, stream, gzipped)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            yield Record(source, "file", error=f"cannot read: {exc}", raw="")
            return
        reader = {"jsonl": iter_jsonl, "json": iter_json, "protobuf": iter_protobuf}[fmt]
        it = reader(stream, source)
        while True:
            try:
                rec = next(it)
            except StopIteration:
                break
            except (OSError, EOFError, gzip.BadGzipFile, ValueError) as exc:
                # corrupt / truncated gzip, I/O error: what was read so far stays read
                yield Record(source, "file", error=f"read error: {type(exc).__name__}: {exc}", raw="")
                break
            yield rec
    finally:
        stream.close()
        raw_stream.close()


def iter_records(paths) -> Iterator[Record]:
    """Records of every file named by `paths` (files, directories, globs)."""
    for p in expand_paths(paths):
        yield from iter_file(p)


__all__ = [
    "INGESTIBLE_SUFFIXES",
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
