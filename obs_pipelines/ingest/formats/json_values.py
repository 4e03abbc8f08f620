"""JSON documents: one value, concatenated / pretty-printed values, or the elements of one top-level
array, decoded incrementally."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from obs_pipelines.ingest.formats.common import (
    CHUNK,
    Record,
    check_payload,
    escape_raw,
    fix_surrogates,
    head_bytes,
    json_depth,
    too_deep,
    truncation_note,
)
from obs_pipelines.ingest.formats.stream import sniff
from obs_pipelines.ingest.limits import (
    DEFAULT_LIMITS,
    IngestLimits,
    json_recursion_room,
)


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

    def fill(min_more: int = CHUNK) -> bool:
        nonlocal buf, pos, eof, pending
        if eof:
            return False
        data = pending + stream.read(max(min_more, CHUNK))
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
        return escape_raw(head) + truncation_note(len(head), size, h.hexdigest())

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
        want = CHUNK
        error = None
        while True:
            try:
                with json_recursion_room():  # the stdlib decoder recurses; Python's limit is below orjson's
                    value, end = decoder.raw_decode(buf, pos)
                break
            except RecursionError:
                error = too_deep(limits.max_json_depth)
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
                raw = escape_raw(buf[pos:end])
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
            value, error = None, too_deep(limits.max_json_depth)
        if error is None:
            with json_recursion_room():
                value = fix_surrogates(value)
            error = check_payload(value)
        if error is None and end - pos > max_bytes:  # decoded from what one read brought in: still too long
            value = None
            size = len(buf[pos:end].encode("utf-8", "surrogatepass"))
            error = f"record of {size} bytes exceeds max_line_bytes ({max_bytes}); skipped"
        if error is not None:
            yield Record(source, loc, error=error, raw=escape_raw(buf[pos:end]))
        else:
            yield Record(source, loc, payload=value)
        line += text_lines
        pos = end
        index += 1


def iter_json(stream, source: str, limits: IngestLimits = DEFAULT_LIMITS) -> Iterator[Record]:
    yield from _iter_values(stream, source, sniff(stream) == b"[", limits)
