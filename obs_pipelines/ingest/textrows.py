"""Rows of a user's text file (CSV with a header, or JSON lines), streamed with bounded memory.

- Encoding: a UTF-8 BOM (Excel's "CSV UTF-8") is dropped; UTF-16 with a BOM is decoded as such; otherwise
  UTF-8, and a file whose first non-UTF-8 line comes before any non-ASCII UTF-8 is read as Windows-1252
  (latin-1's superset; where the two differ it is the common one), said in `encoding`. A line that is not
  valid in the file's encoding is a reject with the reason, never decoded with replacement characters.
- Size: a row longer than `max_row_bytes` is skipped without being held in memory (a CSV row ends where its
  quotes balance), reported as a reject; the next row is read as usual.
- NUL: a row holding one is a reject (PostgreSQL cannot store it in text).
Each row comes as `Row(line, value, error, raw)`: `value` a dict (CSV: header -> text), a decoded JSON value,
or None with `error` saying why and `raw` the row's text as read (cut to `max_raw_chars`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

MIB = 1 << 20
DEFAULT_MAX_ROW_BYTES = MIB  # one row (a feedback judgement with its comment): far above a real one
READ_LIMIT = 64 * 1024  # bytes per readline call: a huge line is consumed in pieces of this size


@dataclass
class Row:
    line: int  # first physical line of the row (1-based)
    value: Any = None
    error: str | None = None
    raw: str = ""


class _Decoder:
    """Per-line decoding with the file's encoding, settled on the first line that needs it."""

    def __init__(self, head: bytes) -> None:
        self.encoding = "utf-8"
        self.skip = 0
        self._seen_utf8 = False  # a non-ASCII UTF-8 line seen: the file is UTF-8, not Windows-1252
        if head.startswith(codecs.BOM_UTF8):
            self.encoding, self.skip, self._seen_utf8 = "utf-8", 3, True
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding, self.skip = "utf-16", 0

    def decode(self, data: bytes) -> str:
        if self.encoding == "utf-8":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if self._seen_utf8:
                    raise ValueError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at {exc.start}), in a "
                                     "file whose earlier rows are UTF-8") from None
                self.encoding = "cp1252"  # latin-1 / Windows-1252 export: settled for the rest of the file
            else:
                if not data.isascii():
                    self._seen_utf8 = True
                return text
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            return data.decode("latin-1") if self.encoding == "cp1252" else _raise(exc, self.encoding)


def _raise(exc: UnicodeDecodeError, encoding: str) -> str:
    raise ValueError(f"not valid {encoding} (byte 0x{exc.object[exc.start]:02x} at {exc.start})") from None


Line = tuple[bytes | None, int, int]  # (the line's bytes or None when too long, its size, its count of '"')


def _physical_lines(stream: BinaryIO, max_row_bytes: int) -> Iterator[Line]:
    """Each line; None instead of its bytes when it is longer than max_row_bytes (read through in pieces,
    never held, its quotes still counted so a CSV row's end is found)."""
    while True:
        piece = stream.readline(READ_LIMIT)
        if not piece:
            return
        if piece.endswith(b"\n") or len(piece) < READ_LIMIT:
            yield piece, len(piece), piece.count(b'"')
            continue
        parts, size, quotes = [piece], len(piece), piece.count(b'"')
        while not piece.endswith(b"\n"):
            piece = stream.readline(READ_LIMIT)
            if not piece:
                break
            size += len(piece)
            quotes += piece.count(b'"')
            if parts is not None:
                parts.append(piece)
                if size > max_row_bytes:
                    parts = None
        yield (b"".join(parts) if parts is not None else None), size, quotes


def _utf16_lines(stream: BinaryIO, max_row_bytes: int) -> Iterator[Line]:
    """UTF-16 files re-encoded line by line as UTF-8 (their newlines are two bytes wide)."""
    text = io.TextIOWrapper(stream, encoding="utf-16", newline="")
    while True:
        line = text.readline(READ_LIMIT)
        if not line:
            return
        data = line.encode("utf-8", "surrogatepass")
        yield (data if len(data) <= max_row_bytes else None), len(data), data.count(b'"')


def _lines(stream: BinaryIO, decoder: _Decoder, max_row_bytes: int) -> Iterator[Line]:
    if decoder.encoding == "utf-16":
        decoder.encoding = "utf-8"
        return _utf16_lines(stream, max_row_bytes)
    stream.read(decoder.skip)
    return _physical_lines(stream, max_row_bytes)


def _too_long(size: int, limit: int) -> str:
    return f"row of {size} bytes is longer than the limit ({limit} bytes); skipped"


def _text_or_error(decoder: _Decoder, data: bytes) -> tuple[str | None, str | None]:
    try:
        text = decoder.decode(data)
    except ValueError as exc:
        return None, str(exc)
    if "\x00" in text:
        return text, "contains a NUL character (no database text can hold it)"
    return text, None


def _shown(text: str | None, data: bytes | None, max_raw_chars: int) -> str:
    if text is None:
        text = (data or b"").decode("latin-1")  # as the bytes were: each one a character
    return text.rstrip("\r\n")[:max_raw_chars].replace("\x00", "\\u0000")


def _head(stream: BinaryIO) -> bytes:
    """The first bytes of a buffered stream without consuming them (b"" when it cannot peek)."""
    peek = getattr(stream, "peek", None)  # BinaryIO declares no peek; buffered readers and gzip files have it
    return peek(4)[:4] if peek is not None else b""


def jsonl_rows(stream: BinaryIO, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
               max_raw_chars: int = 64 * 1024) -> Iterator[Row]:
    decoder = _Decoder(_head(stream))
    for number, (data, size, _) in enumerate(_lines(stream, decoder, max_row_bytes), start=1):
        if data is None:
            yield Row(number, error=_too_long(size, max_row_bytes))
            continue
        if not data.strip():
            continue
        text, error = _text_or_error(decoder, data)
        if error is None:
            try:
                return_value = json.loads(cast(str, text))  # no error: the text was decoded
            except (json.JSONDecodeError, RecursionError):
                error = "not a JSON object"
            else:
                yield Row(number, value=return_value, raw=_shown(text, data, max_raw_chars))
                continue
        yield Row(number, error=error, raw=_shown(text, data, max_raw_chars))


def csv_rows(stream: BinaryIO, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
             max_raw_chars: int = 64 * 1024) -> Iterator[Row]:
    """Rows of a CSV file with a header row (comma, or semicolon when the header has only those), as dicts."""
    decoder = _Decoder(_head(stream))
    csv.field_size_limit(max(csv.field_size_limit(), max_row_bytes))  # fields up to the row limit
    header: list[str] | None = None
    delimiter = ","
    parts: list[bytes] | None = []
    size, start, open_ = 0, 1, False
    for number, (data, piece_size, quotes) in enumerate(_lines(stream, decoder, max_row_bytes), start=1):
        if not open_:
            parts, size, start = [], 0, number
        size += piece_size
        open_ ^= quotes % 2 == 1  # a row goes on past a line end while a quoted field is open
        if data is None or parts is None or size > max_row_bytes:
            parts = None
        else:
            parts.append(data)
        if open_:
            continue
        if parts is None:
            yield Row(start, error=_too_long(size, max_row_bytes))
            continue
        record = b"".join(parts)
        if not record.strip():
            continue
        text, error = _text_or_error(decoder, record)
        if error is not None:
            yield Row(start, error=error, raw=_shown(text, record, max_raw_chars))
            continue
        text = cast(str, text)  # no error: the text was decoded
        if header is None:
            if ";" in text and "," not in text:
                delimiter = ";"
            header = [h.strip() for h in next(csv.reader([text], delimiter=delimiter))]
            continue
        try:
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter))
        except (csv.Error, StopIteration) as exc:
            yield Row(start, error=f"not a CSV row: {exc}", raw=_shown(text, record, max_raw_chars))
            continue
        # a row shorter or longer than the header: the fields that have a column name
        yield Row(start, value={h: v for h, v in zip(header, fields, strict=False) if h},
                  raw=_shown(text, record, max_raw_chars))
    if open_:
        yield Row(start, error="a quoted field is never closed (the file ends inside it)",
                  raw=_shown(None, b"".join(parts or []), max_raw_chars))
