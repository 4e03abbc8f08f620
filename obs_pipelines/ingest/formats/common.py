"""What every format reader shares: the `Record` it yields, JSON decoding within the depth limit, the
caps on a reject's payload and the escaping of raw text."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import orjson

from obs_pipelines.ingest.limits import (
    ORJSON_MAX_DEPTH,
    IngestLimits,
    json_recursion_room,
)

CHUNK = 1 << 20  # bytes read at a time


@dataclass(slots=True)
class Record:
    source: str
    location: str
    payload: object = None  # decoded ExportTraceServiceRequest (dict) when readable
    error: str | None = None  # why the record could not be read
    raw: str | None = None  # the raw text of an unreadable record


# ---- decoding helpers ----------------------------------------------------------------------------


def escape_raw(data: bytes | str) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "backslashreplace")
    return data.replace("\x00", "\\u0000") if "\x00" in data else data


def fix_surrogates(obj):
    """Replace lone surrogates (from \\ud800 escapes that only the stdlib parser accepts)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(obj, list):
        return [fix_surrogates(x) for x in obj]
    if isinstance(obj, dict):
        return {fix_surrogates(k): fix_surrogates(v) for k, v in obj.items()}
    return obj


def too_deep(limit: int) -> str:
    return f"JSON nested deeper than {limit} levels (limit max_json_depth)"


def decode_json(data: bytes, max_depth: int = ORJSON_MAX_DEPTH) -> tuple[object, str | None]:
    """(value, error) of one JSON text; orjson first, the stdlib for what orjson refuses but is legal
    enough to keep (lone surrogate escapes, NaN). orjson stops at depth 1024 on its own, so only a lower
    `max_depth` costs a scan of every record."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    else:
        if max_depth < ORJSON_MAX_DEPTH and json_depth(data) > max_depth:
            return None, too_deep(max_depth)
        return value, None
    if first_error.startswith("depth limit exceeded"):
        return None, too_deep(min(max_depth, ORJSON_MAX_DEPTH))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8: {exc}"
    try:
        with json_recursion_room():
            value = fix_surrogates(json.loads(text))
    except RecursionError:  # the stdlib parser recurses: deep nesting must not escape as a crash
        return None, too_deep(min(max_depth, ORJSON_MAX_DEPTH))
    except ValueError:
        return None, f"invalid JSON: {first_error}"
    if max_depth < ORJSON_MAX_DEPTH and json_depth(data) > max_depth:
        return None, too_deep(max_depth)
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
        return escape_raw(self.head) + truncation_note(len(self.head), self.size, self.sha256)


def check_payload(value) -> str | None:
    if type(value) is not dict:
        return f"not a JSON object (got {type(value).__name__})"
    return None


def raw_text(data: bytes | str) -> str:
    """Raw record text for `ingest_rejects` (undecodable bytes backslash-escaped, NUL escaped)."""
    if isinstance(data, bytes):
        data = data.rstrip(b"\r\n")
    return escape_raw(data)
