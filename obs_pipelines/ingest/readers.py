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
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from obs_pipelines.ingest.limits import DEFAULT_LIMITS, ORJSON_MAX_DEPTH, IngestLimits, json_recursion_room

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PROTOBUF_SUFFIXES = (".pb", ".bin", ".protobuf")
INGESTIBLE_SUFFIXES = JSON_SUFFIXES + PROTOBUF_SUFFIXES + (".gz",)
# resourceSpans of a protobuf request mapped together (route / user propagation works inside a group)
PROTOBUF_GROUP_SPANS = 20_000
_CHUNK = 1 << 20
_GZ_READ = 128 * 1024  # compressed bytes read at a time


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


def _too_deep(limit: int) -> str:
    return f"JSON nested deeper than {limit} levels (limit max_json_depth)"


def _decode_json(data: bytes, max_depth: int = ORJSON_MAX_DEPTH) -> tuple[object, str | None]:
    """(value, error) of one JSON text; orjson first, the stdlib for what orjson refuses but is legal
    enough to keep (lone surrogate escapes, NaN). orjson stops at depth 1024 on its own, so only a lower
    `max_depth` costs a scan of every record."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    else:
        if max_depth < ORJSON_MAX_DEPTH and json_depth(data) > max_depth:
            return None, _too_deep(max_depth)
        return value, None
    if first_error.startswith("depth limit exceeded"):
        return None, _too_deep(min(max_depth, ORJSON_MAX_DEPTH))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8: {exc}"
    try:
        with json_recursion_room():
            value = _fix_surrogates(json.loads(text))
    except RecursionError:  # the stdlib parser recurses: deep nesting must not escape as a crash
        return None, _too_deep(min(max_depth, ORJSON_MAX_DEPTH))
    except ValueError:
        return None, f"invalid JSON: {first_error}"
    if max_depth < ORJSON_MAX_DEPTH and json_depth(data) > max_depth:
        return None, _too_deep(max_depth)
    return value, None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes | str) -> int:
    """Deepest nesting of [ and { in a JSON text (strings skipped; brackets only are walked in Python)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for b in brackets:
        if b == 91 or b == 123:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


# ---- payload caps ----------------------------------------------------------------------------------


_NOTE_ROOM = 160  # bytes kept free for the truncation note, so a capped payload stays within the cap


def truncation_note(kept: int, size: int, sha256: str) -> str:
    return f" ...[truncated: kept {kept} of {size} bytes, sha256 {sha256}]"


def head_bytes(max_bytes: int) -> int:
    """Bytes of a too-long payload kept before its truncation note."""
    return max(0, max_bytes - _NOTE_ROOM)


def cap_payload(text: str, max_bytes: int) -> str:
    """`text` if it fits in `max_bytes` (UTF-8), else its head plus its size and sha256 (in all at most
    `max_bytes`)."""
    if len(text) * 4 <= max_bytes:  # cannot exceed: skip encoding on the common path
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    head = data[: head_bytes(max_bytes)].decode("utf-8", "ignore")
    return head + truncation_note(len(head.encode("utf-8", "surrogatepass")), len(data), hashlib.sha256(data).hexdigest())


@dataclass(slots=True)
class Oversize:
    """A line / value too long to hold: how long it was, its sha256 and its first bytes."""

    size: int
    sha256: str
    head: bytes

    def reason(self, limits: IngestLimits) -> str:
        return f"record of {self.size} bytes exceeds max_line_bytes ({limits.max_line_bytes}); skipped"

    def payload(self) -> str:
        return _raw_text(self.head) + truncation_note(len(self.head), self.size, self.sha256)


def _check_payload(value) -> str | None:
    if type(value) is not dict:
        return f"not a JSON object (got {type(value).__name__})"
    return None


# ---- formats -------------------------------------------------------------------------------------


class GzipInflate(io.RawIOBase):
    """The decompressed bytes of a gzip file (all members), within `limits`.

    Never raises on bad data: damage (corrupt or truncated data, trailing garbage, a limit reached) ends
    the stream and is described in `damage`, with the byte offsets, so whatever came before it is read
    (a BufferedReader loses the bytes of a read that raises). zlib checks each member's CRC and length.
    """

    def __init__(self, fh, limits: IngestLimits):
        self._fh = fh
        self._limits = limits
        self._d = zlib.decompressobj(31)
        self._in = b""  # compressed bytes read but not yet given to zlib
        self._member_started = False
        self._done = False
        self.read_bytes = 0  # compressed bytes read from the file
        self.out_bytes = 0  # decompressed bytes produced
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._done:
            data = self._inflate(len(b))
            if data:
                n = len(data)
                b[:n] = data
                return n
        return 0

    def _read(self) -> bytes:
        data = self._fh.read(_GZ_READ)
        self.read_bytes += len(data)
        return data

    def _offset(self) -> int:
        """Compressed byte offset (in the file) of the input zlib has not used yet."""
        return self.read_bytes - len(self._in) - len(self._d.unconsumed_tail) - len(self._d.unused_data)

    def _stop(self, what: str, lost: str | None = None) -> None:
        self._done = True
        if lost is None:
            rest = max(0, os.fstat(self._fh.fileno()).st_size - self._offset())
            lost = f"lost: the remaining {rest} compressed bytes of the file, not read"
        self.damage = f"{what} at compressed byte {self._offset()} (decompressed byte {self.out_bytes}); {lost}"

    def _inflate(self, n: int) -> bytes:
        d = self._d
        if d.eof:
            return self._next_member()
        src = d.unconsumed_tail or self._in or self._read()
        self._in = b""
        if not src:  # end of file
            tail = d.flush()
            if self._member_started and not d.eof:
                self.out_bytes += len(tail)
                self._stop("truncated gzip file: the data ends inside a member",
                           "lost: whatever followed; every complete line before it was read")  # fmt: skip
            else:
                self._done = True
            return tail
        self._member_started = True
        try:
            out = d.decompress(src, n)
        except zlib.error as exc:
            self._in = src  # so that the offset points at the bad input
            self._stop(f"corrupt gzip data ({exc})")
            return b""
        return self._within_limits(out)

    def _within_limits(self, out: bytes) -> bytes:
        """`out`, cut at max_decompressed_bytes; stops the stream when a limit is reached."""
        lim = self._limits
        allowed = lim.max_decompressed_bytes - self.out_bytes
        if len(out) > allowed:
            out = out[: max(0, allowed)]
            self.out_bytes += len(out)
            self._stop(f"decompressed size over max_decompressed_bytes ({lim.max_decompressed_bytes})")
            return out
        self.out_bytes += len(out)
        if self.out_bytes > lim.ratio_min_bytes and self.out_bytes > lim.max_compression_ratio * self.read_bytes:
            self._stop(f"compression ratio over max_compression_ratio ({lim.max_compression_ratio:g})")
        return out

    def _next_member(self) -> bytes:
        """After a member: another member, the end, zero padding (ignored, as gzip does) or garbage."""
        rest = self._d.unused_data + self._in
        self._d = zlib.decompressobj(31)
        self._member_started = False
        while len(rest) < 2:
            more = self._read()
            if not more:
                break
            rest += more
        self._in = rest
        if not rest:
            self._done = True
        elif rest[:2] == GZIP_MAGIC:
            pass  # the next member
        elif not rest.strip(b"\x00") and self._only_zeros_left():
            self._done = True
        else:
            rest = max(0, os.fstat(self._fh.fileno()).st_size - self._offset())
            self._stop("trailing garbage after the last gzip member",
                       f"lost: nothing (the {rest} bytes of garbage are ignored, all data before them was read)")  # fmt: skip
        return b""

    def _only_zeros_left(self) -> bool:
        while True:
            more = self._read()
            self._in = more
            if not more:
                return True
            if more.strip(b"\x00"):
                return False


@dataclass
class Opened:
    """A file opened for reading: `stream` (buffered, peekable) and, for gzip, its inflater."""

    stream: io.BufferedReader
    inflate: GzipInflate | None
    fh: object

    @property
    def gzipped(self) -> bool:
        return self.inflate is not None

    def damage(self) -> str | None:
        return self.inflate.damage if self.inflate is not None else None

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.fh.close()


def open_stream(path: Path, limits: IngestLimits = DEFAULT_LIMITS) -> Opened:
    fh = open(path, "rb")
    try:
        head = fh.peek(2)[:2]
        if head == GZIP_MAGIC:
            inflate = GzipInflate(fh, limits)
            return Opened(io.BufferedReader(inflate, buffer_size=_CHUNK), inflate, fh)
        return Opened(fh, None, fh)
    except BaseException:
        fh.close()
        raise


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


def decode_jsonl_line(line: bytes, max_depth: int = ORJSON_MAX_DEPTH) -> tuple[object, str | None]:
    """(payload, error) of one JSON line: the decoded object, or why it is not a readable record."""
    value, error = _decode_json(line, max_depth)
    if error is None:
        error = _check_payload(value)
    return value, error


def raw_text(data: bytes | str) -> str:
    """Raw record text for `ingest_rejects` (undecodable bytes backslash-escaped, NUL escaped)."""
    if isinstance(data, bytes):
        data = data.rstrip(b"\r\n")
    return _raw_text(data)


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
        chunk = readline(_CHUNK)
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
            yield Record(source, f"line {lineno}", error=line.reason(limits), raw=line.payload())
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


def _iter_values(stream, source: str, array: bool, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """JSON values one after the other (concatenated / pretty-printed / JSONL), or the elements of one
    top-level array, decoded incrementally. After an undecodable value, reading resumes at the next line.
    A value (or a line skipped after an error) longer than `max_line_bytes` is skipped unread."""
    decoder = json.JSONDecoder()
    max_bytes = limits.max_line_bytes
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

    def skip_long() -> str:
        """Read through to the next newline, keeping only the head, size and sha256 of the text."""
        nonlocal buf, pos
        cap = head_bytes(limits.max_reject_payload_bytes)
        head = buf[pos : pos + cap].encode("utf-8", "surrogatepass")[:cap]
        h = hashlib.sha256()
        size = 0
        while True:
            nl = buf.find("\n", pos)
            part = buf[pos : nl if nl >= 0 else len(buf)].encode("utf-8", "surrogatepass")
            h.update(part)
            size += len(part)
            if nl >= 0:
                pos = nl
                break
            buf, pos = "", 0
            if not fill():
                break
        return _raw_text(head) + truncation_note(len(head), size, h.hexdigest())

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
        error = None
        while True:
            try:
                with json_recursion_room():  # the stdlib decoder recurses; Python's limit is below orjson's
                    value, end = decoder.raw_decode(buf, pos)
                break
            except RecursionError:
                error = _too_deep(limits.max_json_depth)
            except json.JSONDecodeError as exc:
                error = f"invalid JSON: {exc.msg}"
                # near the end of the buffer (or a string still open there): maybe just not read yet
                if not eof and (exc.pos >= len(buf) - 16 or exc.msg.startswith("Unterminated string")):
                    if len(buf) - pos > max_bytes:
                        error = f"JSON value longer than max_line_bytes ({max_bytes}); skipped"
                    elif fill(min(want, max_bytes)):
                        want *= 2
                        continue
            # a real error (or a value truncated by the end of file): skip to the next line
            nl = buf.find("\n", pos)
            while nl < 0 and len(buf) - pos <= max_bytes and fill():
                nl = buf.find("\n", pos)
            loc = f"element {index}" if array else f"line {line}"
            if nl >= 0 or eof:
                end = nl if nl >= 0 else len(buf)
                raw = _raw_text(buf[pos:end])
            else:  # no newline within the limit: read through to it without keeping it
                raw = skip_long()
                end = pos
            yield Record(source, loc, error=error, raw=raw)
            pos = end
            index += 1
            end = -1
            break
        if end < 0:
            continue
        text_lines = buf.count("\n", pos, end)
        loc = f"element {index}" if array else f"line {line}"
        error = None
        # the decoder's recursion room goes a little past the limit: the limit itself is checked here
        # (str.count first: a cheap bound that spares the scan of almost every record)
        if (buf.count("[", pos, end) + buf.count("{", pos, end) > limits.max_json_depth
                and json_depth(buf[pos:end]) > limits.max_json_depth):
            value, error = None, _too_deep(limits.max_json_depth)
        if error is None:
            with json_recursion_room():
                value = _fix_surrogates(value)
            error = _check_payload(value)
        if error is None and end - pos > max_bytes:  # decoded from what one read brought in: still too long
            value = None
            size = len(buf[pos:end].encode("utf-8", "surrogatepass"))
            error = f"record of {size} bytes exceeds max_line_bytes ({max_bytes}); skipped"
        if error is not None:
            yield Record(source, loc, error=error, raw=_raw_text(buf[pos:end]))
        else:
            yield Record(source, loc, payload=value)
        line += text_lines
        pos = end
        index += 1


def iter_json(stream, source: str, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    yield from _iter_values(stream, source, _sniff(stream) == b"[", limits)


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
    if field == 0:  # illegal in protobuf: not protobuf data (a run of zeros, text ...)
        raise ValueError("field number 0")
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


def _read_exact(stream, length: int, limits: IngestLimits = DEFAULT_LIMITS) -> bytes:
    """`length` bytes, read in chunks: a forged length (2**62) meets the end of the file, not a
    MemoryError."""
    if length > limits.max_line_bytes:
        raise ValueError(f"message of {length} bytes exceeds max_line_bytes ({limits.max_line_bytes})")
    if length <= _CHUNK:
        data = stream.read(length)
    else:
        parts = []
        left = length
        while left:
            part = stream.read(min(left, _CHUNK))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
    if len(data) != length:
        raise ValueError(f"truncated message: {len(data)} of {length} bytes")
    return data


def _skip(stream, length: int) -> None:
    """Pass over `length` bytes without holding them (ignored fields, over-long messages)."""
    left = length
    while left:
        part = stream.read(min(left, _CHUNK))
        if not part:
            raise ValueError(f"truncated message: {length - left} of {length} bytes")
        left -= len(part)


# ResourceSpans up to this size are parsed whole; bigger ones are walked field by field (one Span at a time)
PROTOBUF_WHOLE_MAX = 16 * 2**20
# a request has only field 1 at the top level: a long run of other fields is not OTLP (and is read slowly)
PROTOBUF_MAX_UNKNOWN_FIELDS = 1000


def iter_protobuf(stream, source: str, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    """An ExportTraceServiceRequest, streamed: its top-level field 1 (repeated ResourceSpans) is read one
    message at a time and converted with json_format.MessageToDict; groups of resourceSpans up to about
    PROTOBUF_GROUP_SPANS spans make one record. A ResourceSpans bigger than PROTOBUF_WHOLE_MAX is walked
    field by field, one Span at a time (its resource must precede its scope spans, as serializers write)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.trace.v1 import trace_pb2

    whole_max = min(PROTOBUF_WHOLE_MAX, limits.max_line_bytes)
    group: list[dict] = []
    group_spans = 0
    first = 0
    index = 0
    unknown = 0
    while True:
        try:
            f = _read_field(stream)
            if f is None:
                break
            field, wire, length, _ = f
            if wire != 2 or field != 1:
                unknown += 1
                if unknown > PROTOBUF_MAX_UNKNOWN_FIELDS:
                    raise ValueError(f"over {PROTOBUF_MAX_UNKNOWN_FIELDS} unknown top-level fields in a row (not OTLP)")
                if wire != 0:
                    _skip(stream, length)
                continue  # unknown top-level field: ignored, like protobuf parsers do
            unknown = 0
            if length > whole_max:
                if group:
                    yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
                    group, group_spans = [], 0
                yield from _iter_big_resource_spans(stream, length, source, index, limits)
                index += 1
                first = index
                continue
            data = _read_exact(stream, length, limits)
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
        if group_spans >= PROTOBUF_GROUP_SPANS or len(group) >= PROTOBUF_GROUP_SPANS:  # empty ones count too
            yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})
            group, group_spans, first = [], 0, index
    if group:
        yield Record(source, _group_loc(first, index), payload={"resourceSpans": group})


def _iter_big_resource_spans(
    stream, length: int, source: str, index: int, limits: IngestLimits = DEFAULT_LIMITS
) -> Iterator[Record]:
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
            msg.ParseFromString(_read_exact(stream, flen, limits))
            resource = json_format.MessageToDict(msg)
            continue
        if not (wire == 2 and field == 2):
            if wire != 0:
                _skip(stream, flen)
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
            if gwire == 2 and gfield == 2 and glen > limits.max_line_bytes:
                _skip(stream, glen)
                yield Record(source, f"{loc}.spans[{n_span}]", raw="",
                             error=f"protobuf Span of {glen} bytes exceeds max_line_bytes ({limits.max_line_bytes}); skipped")  # fmt: skip
                n_span += 1
                continue
            if gwire != 0 and not (gwire == 2 and gfield in (1, 2)):
                _skip(stream, glen)
                continue
            data = _read_exact(stream, glen, limits) if gwire != 0 else b""
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
