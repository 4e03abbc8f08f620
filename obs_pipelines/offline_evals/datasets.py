"""Regression datasets: deduplication, balancing, content-hash versions, JSONL import / export and the lock file.

A case is a plain dict: ``case_id``, ``input``, ``output`` (production), ``expected`` (or None), ``context``
(list of strings), ``tags`` (list of strings), ``trace_id``, ``route``, ``metadata`` (dict), and while being
curated ``selected_at`` (the trace's start time, newest wins).

A version is immutable and named by the hash of its cases' content (``content_hash``): building the same
cases again gives the same name, so re-materializing unchanged data keeps the version, and a version
pinned in ``obs_datasets.lock`` always means the same cases.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from rapidfuzz import fuzz
from rapidfuzz.process import cdist
from sqlalchemy.engine import Engine

from obs_pipelines.offline_evals.tables import dataset_version_cases, dataset_versions
from obs_pipelines.store import db, migrate

LOCK_FILE = "obs_datasets.lock"
HASH_FIELDS = ("case_id", "input", "output", "expected", "context", "tags")  # what a version's name covers
NEAR_DUPLICATE_BLOCK = 2000  # rows compared at once (memory of the rapidfuzz matrix: block x n floats)
_SPACES = re.compile(r"\s+")
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


class DatasetError(ValueError):
    """A dataset or version that does not exist, or a file that cannot be read; the message says which."""


# ---- identity and deduplication ---------------------------------------------------------------------------
def normalise(text: str | None) -> str:
    """The form inputs are compared in: Unicode NFKC, case-folded, whitespace collapsed, punctuation at the
    edges dropped ("What is X?" and "what is  x" are one case)."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return _PUNCT_EDGES.sub("", _SPACES.sub(" ", text).strip())


def _text_key(value: Any) -> str | None:
    if value is None:
        return None
    return normalise(value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str))


def case_id(text: str | None, context: Sequence[str] = (), expected: Any = None) -> str:
    """A case's identity: the hash of its normalised input, context documents and expected output. Two cases
    with the same question but another context or expected answer are two cases (an explicit id, when a file
    gives one, is used as is)."""
    key = [normalise(text), [normalise(str(d)) for d in context or ()], _text_key(expected)]
    if not key[1] and key[2] is None:  # input only: the hash of the input alone, as before
        return hashlib.sha256(key[0].encode()).hexdigest()[:16]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


def question_key(text: str | None) -> str:
    """The normalised input alone: cases sharing it are the same question (reported, never merged)."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()[:16]


def _merge(keep: dict, other: dict) -> None:
    """Fold a duplicate into the kept case: tags unite, a known expected output is never lost."""
    keep["tags"] = sorted(set(keep["tags"]) | set(other["tags"]))
    if keep.get("expected") is None and other.get("expected") is not None:
        keep["expected"] = other["expected"]


def _newest_first(cases: Iterable[dict]) -> list[dict]:
    return sorted(cases, key=lambda c: (str(c.get("selected_at") or ""), c["case_id"]), reverse=True)


def deduplicate(cases: Iterable[dict], similarity: float = 92.0) -> list[dict]:
    """One case per identity (``case_id``), then one per group of near-duplicates (rapidfuzz ratio of the
    normalised inputs >= ``similarity``, same context and expected output); the newest case of a group is
    kept, with the group's tags."""
    by_id: dict[str, dict] = {}
    for case in _newest_first(cases):
        case = {**case, "tags": sorted(set(case.get("tags") or ()))}
        if case["case_id"] in by_id:
            _merge(by_id[case["case_id"]], case)
        else:
            by_id[case["case_id"]] = case
    kept = list(by_id.values())
    if similarity >= 100 or len(kept) < 2:
        return kept
    texts = [normalise(c["input"]) for c in kept]
    # near-duplicate questions merge only when their context and expected output are the same
    rest = [case_id("", c.get("context") or (), c.get("expected")) for c in kept]
    parent = list(range(len(kept)))  # each case points at the newer case it duplicates (or itself)
    for lo in range(0, len(kept), NEAR_DUPLICATE_BLOCK):
        block = cdist(texts[lo:lo + NEAR_DUPLICATE_BLOCK], texts, scorer=fuzz.ratio, score_cutoff=similarity,
                      workers=-1)
        for i, row in enumerate(block, start=lo):
            earlier = [j for j in row[:i].nonzero()[0] if parent[j] == j and rest[j] == rest[i]]
            if earlier:
                parent[i] = int(earlier[0])
    for i, p in enumerate(parent):
        if p != i:
            _merge(kept[p], kept[i])
    return [c for i, c in enumerate(kept) if parent[i] == i]


def balance(cases: Sequence[dict], per_tag: int, max_cases: int) -> list[dict]:
    """At most ``per_tag`` cases per tag (a case counts for each of its tags) and ``max_cases`` in all,
    taken round-robin over the tags, newest first, so a flood of one kind of failure cannot crowd out the
    rare ones."""
    queues: dict[str, list[dict]] = {}
    for case in _newest_first(cases):
        for tag in case["tags"] or ["(untagged)"]:
            queues.setdefault(tag, []).append(case)
    taken: dict[str, int] = dict.fromkeys(queues, 0)
    chosen: dict[str, dict] = {}
    progress = True
    while progress and len(chosen) < max_cases:
        progress = False
        for tag in sorted(queues, key=lambda t: (len(queues[t]), t)):  # rarest tag first in each round
            queue = queues[tag]
            while queue and queue[0]["case_id"] in chosen:
                queue.pop(0)
            if not queue or taken[tag] >= per_tag or len(chosen) >= max_cases:
                continue
            case = queue.pop(0)
            chosen[case["case_id"]] = case
            for t in case["tags"] or ["(untagged)"]:
                taken[t] = taken.get(t, 0) + 1
            progress = True
    return sorted(chosen.values(), key=lambda c: c["case_id"])


def scrub_case(case: dict, counts: dict[str, int] | None = None) -> dict:
    """The case with PII replaced in every text it carries (input, outputs, expected, context)."""
    # imported here: pii walks the safety scorers' patterns, and a change there must fail a curation run with
    # its ImportError, not the loading of the whole code location
    from obs_pipelines.offline_evals import pii

    out = dict(case)
    for key in ("input", "output"):
        out[key] = pii.scrub(case.get(key), counts)
    if isinstance(case.get("expected"), str):
        out["expected"] = pii.scrub(case["expected"], counts)
    out["context"] = [pii.scrub(str(d), counts) for d in case.get("context") or ()]
    return out


# ---- versions -----------------------------------------------------------------------------------------------
def _canonical(case: dict) -> dict:
    return {
        "case_id": case["case_id"],
        "input": case.get("input"),
        "output": case.get("output"),
        "expected": case.get("expected"),
        "context": list(case.get("context") or ()),
        "tags": sorted(case.get("tags") or ()),
    }


def content_hash(cases: Iterable[dict]) -> str:
    """The version name: SHA-256 of the cases' content in case_id order (not of provenance such as trace ids
    or times), first 16 hex digits."""
    return content_hash_sorted(sorted(cases, key=lambda c: c["case_id"]))


def content_hash_sorted(cases: Iterable[dict]) -> str:
    """``content_hash`` of cases already in case_id order, one case at a time (memory of one case)."""
    digest = hashlib.sha256(b"[")
    for i, case in enumerate(cases):
        item = json.dumps(_canonical(case), sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        digest.update(("," if i else "").encode() + item.encode())
    digest.update(b"]")
    return digest.hexdigest()[:16]


def tag_counts(cases: Iterable[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in cases:
        for tag in case.get("tags") or ():
            counts[tag] = counts.get(tag, 0) + 1
    return dict(sorted(counts.items()))


def save_version(engine: Engine, dataset: str, cases: Sequence[dict], source: str,
                 window: tuple[datetime, datetime] | None = None, now: datetime | None = None) -> tuple[str, bool]:
    """Store ``cases`` as a version of ``dataset`` unless that content is already stored; either way it
    becomes the dataset's latest version. Returns (version, created)."""
    ordered = sorted(cases, key=lambda c: c["case_id"])
    return store_version(engine, dataset, content_hash_sorted(ordered), lambda: iter(ordered), len(ordered),
                         tag_counts(ordered), source, window, now)


INSERT_BATCH = 2000  # case rows per INSERT (memory of one batch, not of the version)


def store_version(engine: Engine, dataset: str, version: str, cases: Callable[[], Iterable[dict]], count: int,
                  tags: dict[str, int], source: str, window: tuple[datetime, datetime] | None = None,
                  now: datetime | None = None) -> tuple[str, bool]:
    """``save_version`` for cases streamed in case_id order (``cases()`` iterates them; called only when the
    version is new): the version row and its cases in one transaction, inserted a batch at a time."""
    migrate.ensure_tables(engine, [dataset_versions, dataset_version_cases])
    now = now or db.utcnow()
    key = (dataset_versions.c.dataset == dataset) & (dataset_versions.c.version == version)

    def touch() -> None:
        with engine.begin() as conn:
            conn.execute(sa.update(dataset_versions).where(key).values(last_built_at=now))

    with engine.connect() as conn:
        exists = conn.execute(sa.select(sa.func.count()).select_from(dataset_versions).where(key)).scalar_one()
    if exists:
        touch()
        return version, False
    try:
        with engine.begin() as conn:  # the version row and its cases together, or neither
            conn.execute(sa.insert(dataset_versions), [{
                "dataset": dataset, "version": version, "case_count": count, "tag_counts": json.dumps(tags),
                "source": source, "window_start": window[0] if window else None,
                "window_end": window[1] if window else None, "created_at": now, "last_built_at": now,
            }])
            batch: list[dict] = []
            for i, case in enumerate(cases()):
                batch.append({**case_row(case), "dataset": dataset, "version": version, "position": i})
                if len(batch) >= INSERT_BATCH:
                    conn.execute(sa.insert(dataset_version_cases), batch)
                    batch = []
            if batch:
                conn.execute(sa.insert(dataset_version_cases), batch)
    except sa.exc.IntegrityError:  # another process stored the same content meanwhile: same version
        touch()
        return version, False
    return version, True


def case_row(case: dict) -> dict:
    return {
        "case_id": case["case_id"], "input": case.get("input"), "output": case.get("output"),
        "expected": case_text(case.get("expected")), "context": json.dumps(list(case.get("context") or ())),
        "tags": ",".join(sorted(case.get("tags") or ())), "trace_id": case.get("trace_id"),
        "route": case.get("route"), "metadata": json.dumps(case.get("metadata") or {}, default=str),
    }


def case_text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else json.dumps(value)


def case_from_row(row: dict) -> dict:
    """A stored case row (regression_cases / dataset_version_cases) as a case dict."""
    return {
        "case_id": row["case_id"], "input": row.get("input"), "output": row.get("output"),
        "expected": row.get("expected"), "context": json.loads(row.get("context") or "[]"),
        "tags": [t for t in (row.get("tags") or "").split(",") if t], "trace_id": row.get("trace_id"),
        "route": row.get("route"), "metadata": json.loads(row.get("metadata") or "{}"),
    }


def versions(engine: Engine, dataset: str | None = None) -> pd.DataFrame:
    """Stored versions, newest built first."""
    migrate.ensure_tables(engine, [dataset_versions])
    query = sa.select(dataset_versions).order_by(dataset_versions.c.last_built_at.desc(),
                                                 dataset_versions.c.created_at.desc())
    if dataset is not None:
        query = query.where(dataset_versions.c.dataset == dataset)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in dataset_versions.c])


def latest_version(engine: Engine, dataset: str) -> str:
    found = versions(engine, dataset)
    if found.empty:
        raise DatasetError(f"dataset {dataset!r} has no version yet (materialize dataset_versions, or "
                           f"`obs-pipelines dataset import {dataset} FILE`)")
    return str(found["version"].iloc[0])


def load_version(engine: Engine, dataset: str, version: str | None = None) -> tuple[str, list[dict]]:
    """(version, cases) of ``dataset``: ``version`` (a unique prefix is enough), else the latest."""
    version = resolve_version(engine, dataset, version) if version else latest_version(engine, dataset)
    query = (sa.select(dataset_version_cases)
             .where(dataset_version_cases.c.dataset == dataset, dataset_version_cases.c.version == version)
             .order_by(dataset_version_cases.c.position))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return version, [case_from_row(dict(r)) for r in rows]


def resolve_version(engine: Engine, dataset: str, prefix: str) -> str:
    known = versions(engine, dataset)["version"].astype(str).tolist()
    matches = [v for v in known if v.startswith(prefix)]
    if len(matches) != 1:
        listed = ", ".join(known[:10]) or "none"
        what = "no" if not matches else "more than one"
        raise DatasetError(f"dataset {dataset!r} has {what} version {prefix!r} (versions: {listed})")
    return matches[0]


# ---- files --------------------------------------------------------------------------------------------------
def export_jsonl(cases: Iterable[dict], path: Path) -> int:
    """One case a line (input, expected, output, context, tags, case_id, trace_id, route, metadata)."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps({k: case.get(k) for k in ("case_id", "input", "expected", "output", "context",
                                                           "tags", "trace_id", "route", "metadata")},
                                 ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


# ---- the lock file ------------------------------------------------------------------------------------------
def read_lock(path: Path) -> dict[str, dict]:
    """Dataset name -> {"version": ..., ...} from ``obs_datasets.lock`` (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not a lock file ({exc.msg})") from None
    return dict(data.get("datasets") or {})


def write_lock(path: Path, dataset: str, version: str, case_count: int) -> None:
    """Pin ``dataset`` at ``version`` in the lock file (other pins are kept). Sorted, one key a line: a pin
    is a one-line diff in review, and reverting the commit reverts the dataset."""
    pins = read_lock(path)
    pins[dataset] = {"version": version, "cases": case_count}
    text = json.dumps({"comment": "dataset versions pinned by `obs-pipelines dataset pin`; commit this file",
                       "datasets": dict(sorted(pins.items()))}, indent=2, sort_keys=True)
    Path(path).write_text(text + "\n")


def pinned_version(lock_path: Path, dataset: str) -> str | None:
    pin = read_lock(lock_path).get(dataset)
    return str(pin["version"]) if pin else None


def find_lock(start: Path | None = None) -> Path:
    """``obs_datasets.lock`` at the root of the git repository around ``start`` (the working directory),
    else in ``start`` itself."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder / LOCK_FILE
    return start / LOCK_FILE
