"""`dataset import`: a JSONL file of cases made by hand (or by `dataset export`) stored as a dataset version.

Streaming and bounded: the file is read one line at a time (a line longer than ``max_line_bytes`` is skipped
unread, never held), each case goes into a staging SQLite file next to the temporary directory, and the
version's hash and rows are streamed from there in case_id order. Memory does not grow with the file.

Each line is either a case or a **reject** with its line number and reason (not JSON, not UTF-8, a NUL, a
field of the wrong type, a line too long): one bad line never stops the import. A UTF-8 byte-order mark (as
Excel writes) is skipped; a UTF-16 file is refused as a whole with what to do.

Identity (``datasets.case_id``): input + context + expected, or the line's explicit ``id`` (``case_id`` of an
export). Two lines with the same identity **merge** (tags unite, the first line's other fields are kept) and
the merge is reported; two lines with the same question but another context or expected answer stay two
cases, and are reported too. An explicit id used twice for different content is a reject.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy.engine import Engine

from obs_pipelines.offline_evals import datasets

MAX_LINE_BYTES = 16 * 2**20  # one case a line; a larger line is a reject (its bytes are skipped, not held)
LISTED = 20  # rejects / merges / shared questions kept in the report (all are counted)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class RowError(ValueError):
    """Why one line is not a case."""


@dataclass
class ImportReport:
    lines: int = 0  # non-blank lines read
    cases: int = 0  # distinct cases kept
    rejected: int = 0
    merged: int = 0
    shared_questions: int = 0  # questions that are in more than one case (other context / expected)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first LISTED
    merges: list[tuple[int, int, str]] = field(default_factory=list)  # (line, merged into line, case_id)
    questions: list[tuple[str, list[int]]] = field(default_factory=list)  # (input, its lines)
    sink: TextIO | None = None  # every reject as a JSON line, when asked for

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < LISTED:
            self.rejects.append((line, reason))
        if self.sink is not None:
            self.sink.write(json.dumps({"line": line, "reason": reason}) + "\n")


def _lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line break), or None for a line over ``max_line_bytes``."""
    number = 0
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of the long line, a chunk at a time
                line = stream.readline(2**20)
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def _strings(value: Any, name: str) -> list[str]:
    """A string or a list of strings as a list (null: empty)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RowError(f"'{name}' must be a string or a list of strings, not {type(value).__name__}"
                   + (" with other items" if isinstance(value, list) else ""))


# a NUL (PostgreSQL refuses it in text) or a lone surrogate ("\\ud800" is valid JSON but no UTF-8 can hold it)
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _bad_char(value: Any) -> str | None:
    """The first NUL or lone surrogate in any string of ``value`` (keys included), else None."""
    if isinstance(value, str):
        found = _BAD_CHAR.search(value)
        return found.group() if found else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _bad_char(key) or _bad_char(item)
        if found:
            return found
    return None


def parse_line(raw: bytes, encoding: str | None) -> dict:
    """One line as a case (without scrubbing); RowError with the reason otherwise."""
    if b"\x00" in raw:
        raise RowError("NUL byte in the line")
    try:
        text = raw.decode(encoding or "utf-8")
    except UnicodeDecodeError as exc:
        hint = " (latin-1 / Windows-1252? re-run with --encoding latin-1)" if not encoding else ""
        raise RowError(f"not {encoding or 'UTF-8'}: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}{hint}") \
            from None
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise RowError("not JSON (nested too deep)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RowError(f"not JSON ({str(exc)[:120]})") from None
    if not isinstance(item, dict):
        raise RowError(f"a line must be a JSON object, not {type(item).__name__}")
    if not isinstance(item.get("input"), str):
        raise RowError("'input' must be a string")
    for key, value in item.items():
        char = _bad_char(key) or _bad_char(value)
        if char == "\x00":
            raise RowError(f"NUL character in '{key[:40]}'")
        if char is not None:
            raise RowError(f"lone surrogate U+{ord(char):04X} in '{key[:40]}' (not encodable as UTF-8)")
    explicit = item.get("id", item.get("case_id"))
    if isinstance(explicit, bool) or not isinstance(explicit, (str, int, type(None))):
        raise RowError("'id' must be a string or an integer")
    metadata = item.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RowError(f"'metadata' must be an object, not {type(metadata).__name__}")
    for name in ("trace_id", "route"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise RowError(f"'{name}' must be a string")
    context = _strings(item.get("context"), "context")
    expected = item.get("expected")
    return {
        "explicit_id": None if explicit is None else str(explicit),
        "input": item["input"], "output": datasets.case_text(item.get("output")),
        "expected": datasets.case_text(expected), "context": context,
        "tags": sorted(set(_strings(item.get("tags"), "tags"))),
        "trace_id": item.get("trace_id"), "route": item.get("route"), "metadata": metadata or {},
    }


class _Staging:
    """Cases by identity in a temporary SQLite file (the dedup and the case_id order without memory)."""

    def __init__(self, folder: str) -> None:
        self.conn = sqlite3.connect(str(Path(folder) / "staging.sqlite"))
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("CREATE TABLE cases (case_id TEXT PRIMARY KEY, line INTEGER, content TEXT, "
                          "question TEXT, body TEXT)")

    def add(self, case: dict, content: str, line: int, report: ImportReport) -> None:
        """``content``: the identity the case's input, context and expected output give (what must agree for
        two lines with one explicit id to be the same case)."""
        found = self.conn.execute("SELECT line, content, body FROM cases WHERE case_id = ?",
                                  (case["case_id"],)).fetchone()
        if found is None:
            self.conn.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?)",
                              (case["case_id"], line, content, datasets.question_key(case["input"]),
                               json.dumps(case, ensure_ascii=False)))
            return
        first_line, first_content, body = found
        if first_content != content:
            raise RowError(f"id {case['case_id']!r} is already the case of line {first_line} with another input, "
                           "context or expected output")
        kept = json.loads(body)
        if set(case["tags"]) - set(kept["tags"]):
            kept["tags"] = sorted(set(kept["tags"]) | set(case["tags"]))
            self.conn.execute("UPDATE cases SET body = ? WHERE case_id = ?",
                              (json.dumps(kept, ensure_ascii=False), case["case_id"]))
        report.merged += 1
        if len(report.merges) < LISTED:
            report.merges.append((line, first_line, case["case_id"]))

    def cases(self) -> Iterator[dict]:
        for (body,) in self.conn.execute("SELECT body FROM cases ORDER BY case_id"):
            yield json.loads(body)

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0]

    def shared_questions(self, report: ImportReport) -> None:
        report.shared_questions = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT question FROM cases GROUP BY question HAVING COUNT(*) > 1)").fetchone()[0]
        # with MIN(), SQLite takes the bare column (body) from the row of the first line
        rows = self.conn.execute(
            "SELECT MIN(line), body, GROUP_CONCAT(line) FROM cases WHERE question IN (SELECT question FROM cases "
            "GROUP BY question HAVING COUNT(*) > 1 LIMIT ?) GROUP BY question ORDER BY MIN(line)", (LISTED,)).fetchall()
        for _first, body, lines in rows:
            report.questions.append((json.loads(body)["input"], sorted(int(n) for n in lines.split(","))))

    def tag_counts(self) -> dict[str, int]:
        return datasets.tag_counts(self.cases())

    def close(self) -> None:
        self.conn.close()


def read_cases(path: Path, staging: _Staging, report: ImportReport, *, scrub_pii: bool, encoding: str | None,
               max_line_bytes: int) -> None:
    """Every line of ``path`` into ``staging`` or ``report.rejects``."""
    with Path(path).open("rb") as stream:
        head = stream.read(3)
        if head[:2] in _UTF16_BOMS:
            raise datasets.DatasetError(f"{path}: UTF-16 (byte-order mark): save it as UTF-8 and import again")
        if head != b"\xef\xbb\xbf":  # the UTF-8 byte-order mark Excel writes: skipped
            stream.seek(0)
        for number, raw in _lines(stream, max_line_bytes):
            if raw is None:
                report.reject(number, f"line longer than {max_line_bytes} bytes")
                continue
            if not raw.strip():
                continue
            report.lines += 1
            try:
                case = parse_line(raw, encoding)
                if scrub_pii:
                    case = datasets.scrub_case(case)
                explicit = case.pop("explicit_id")
                content = datasets.case_id(case["input"], case["context"], case["expected"])
                case["case_id"] = explicit or content
                staging.add(case, content, number, report)
            except RowError as exc:
                report.reject(number, str(exc))


def import_jsonl(engine: Engine, dataset: str, path: Path, *, scrub_pii: bool = True, encoding: str | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES,
                 rejects_path: str | Path | None = None) -> tuple[str | None, bool, ImportReport]:
    """Store the cases of ``path`` as a version of ``dataset``: (version, created, report); version None when
    no line was a case. ``rejects_path``: every reject (line, reason) as JSONL, rewritten on each import."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(Path(rejects_path).open("w", encoding="utf-8")) if rejects_path else None
        return _import(engine, dataset, Path(path), ImportReport(sink=sink), scrub_pii=scrub_pii, encoding=encoding,
                       max_line_bytes=max_line_bytes)


def _import(engine: Engine, dataset: str, path: Path, report: ImportReport, *, scrub_pii: bool,
            encoding: str | None, max_line_bytes: int) -> tuple[str | None, bool, ImportReport]:
    with tempfile.TemporaryDirectory(prefix="obs-dataset-import-") as folder:
        staging = _Staging(folder)
        try:
            read_cases(Path(path), staging, report, scrub_pii=scrub_pii, encoding=encoding,
                       max_line_bytes=max_line_bytes)
            report.cases = staging.count()
            if not report.cases:
                return None, False, report
            staging.shared_questions(report)
            version = datasets.content_hash_sorted(staging.cases())
            created = datasets.store_version(engine, dataset, version, staging.cases, report.cases,
                                             staging.tag_counts(), f"import:{Path(path).name}")[1]
            return version, created, report
        finally:
            staging.close()

