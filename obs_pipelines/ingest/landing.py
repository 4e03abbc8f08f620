"""The landing directory: pure logic behind the landing-directory sensor and the file moves after ingest.

Convention (docs/ingest.md): drop OTLP files anywhere under the landing directory. A file is ingested once
it is *ready*: unchanged for `quiet_seconds` (its mtime is that old) or accompanied by a `<name>.done`
marker. Names starting with "." or ending in .tmp / .part are never read, so writing under such a name and
renaming is the safest way to land a file. After a successful run the file moves to `processed/` (a file
nothing could be read from to `failed/`, with `<name>.reason.txt`), keeping its path below the landing dir.
A run that failed (database down, a killed worker) is retried with exponential backoff, at most
`max_attempts` times; touch the file to start another round.

No dagster here: `ingest/defs.py` asks the instance for run statuses and passes them in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INGESTIBLE_SUFFIXES = (".jsonl", ".json", ".gz", ".pb", ".bin", ".protobuf")
PROCESSED_DIR = "processed"
FAILED_DIR = "failed"
DONE_SUFFIX = ".done"
REASON_SUFFIX = ".reason.txt"
# a requested run that never shows up in the instance (request dropped, run deleted) counts as failed
LOST_RUN_SECONDS = 600.0

# run outcomes as the sensor reports them to `plan_requests`
SUCCESS, FAILURE, PENDING = "success", "failure", "pending"


@dataclass(frozen=True)
class LandingPolicy:
    quiet_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 60.0
    archive: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> LandingPolicy:
        return cls(
            quiet_seconds=settings.landing_quiet_seconds,
            max_attempts=settings.landing_max_attempts,
            retry_backoff_seconds=settings.landing_retry_backoff_seconds,
            archive=settings.landing_archive,
        )


@dataclass(frozen=True)
class LandedFile:
    """One run to request: ingest `path` (content `sha256`) under `run_key`."""

    path: str
    sha256: str
    run_key: str
    attempt: int = 1


def path_text(path: str | Path) -> str:
    """A file name as UTF-8 text: a name that is not UTF-8 (POSIX allows any bytes) gets its odd bytes as
    backslash escapes (b"caf\\xe9" -> "caf\\xe9"), so tags, run config, logs and the database can hold it."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_hex(path: str | Path) -> str:
    """The exact bytes of a file name that `path_text` cannot keep, as hex ("" when it can)."""
    return "" if path_text(path) == str(path) else os.fsencode(path).hex()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---- the scan -----------------------------------------------------------------------------------------


def _candidates(root: Path):
    """(path, has .done marker) for ingestible files, outside processed/ and failed/."""
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in (PROCESSED_DIR, FAILED_DIR)]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = set(filenames)
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(INGESTIBLE_SUFFIXES):
                continue
            yield Path(dirpath) / name, name + DONE_SUFFIX in names


def scan_ready_files(
    landing_dir: str | Path, hash_cache: dict[str, list], now: float, quiet_seconds: float
) -> tuple[dict[str, list], int]:
    """Ready files as path -> [size, mtime_ns, sha256], and how many files are still being written.

    `hash_cache` is the previous scan's result: a file with the same size and mtime is not hashed again.
    A file that is not ready yet is not hashed at all (it may be growing).
    """
    root = Path(landing_dir)
    ready: dict[str, list] = {}
    waiting = 0
    if not root.is_dir():
        return ready, waiting
    for path, marked in _candidates(root):
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away meanwhile
            continue
        if not marked and now - stat.st_mtime < quiet_seconds:
            waiting += 1
            continue
        key = str(path)
        cached = hash_cache.get(key)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            sha = cached[2]
        else:
            sha = file_sha256(path)
        ready[key] = [stat.st_size, stat.st_mtime_ns, sha]
    return ready, waiting


# ---- the cursor and the plan ------------------------------------------------------------------------
# cursor = {"files": {path: [size, mtime_ns, sha]}, "jobs": {sha: job}, "seq": n}
# job = {"path", "key" (run key of the latest attempt), "attempt", "round" (first attempt of this round),
#        "state": running | retry | done | gave_up, "at" (requested at / retry due at), "mtime_ns"}


def load_cursor(cursor: str | None) -> dict:
    data = json.loads(cursor) if cursor else {}
    if data and "files" not in data:
        # the first format: path -> [size, mtime_ns, sha]; those files were requested, take them as done
        data = {"files": data, "jobs": {v[2]: {"path": p, "state": "done"} for p, v in data.items()}}
    return {"files": data.get("files", {}), "jobs": data.get("jobs", {}), "seq": data.get("seq", 0)}


def dump_cursor(state: dict) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def running_run_keys(state: dict) -> list[str]:
    """Run keys whose outcome the sensor must look up before planning."""
    return [job["key"] for job in state["jobs"].values() if job.get("state") == "running"]


def _first_run_key(sha: str) -> str:
    # the first attempt's key is the content hash alone, so Dagster never ingests one content twice by accident
    return f"ingest:{sha}"


def plan_requests(
    state: dict, ready: dict[str, list], outcomes: dict[str, str], now: float, policy: LandingPolicy
) -> tuple[list[LandedFile], dict, list[str]]:
    """Which runs to request now, the next cursor state, and notes worth logging.

    `outcomes` maps the run keys of `running_run_keys(state)` to SUCCESS / FAILURE / PENDING; a key without
    an entry has no run in the instance (yet).
    """
    jobs = {sha: dict(job) for sha, job in state["jobs"].items()}
    seq = state["seq"]
    notes: list[str] = []

    for job in jobs.values():
        if job.get("state") != "running":
            continue
        outcome = outcomes.get(job["key"])
        if outcome == SUCCESS:
            job["state"] = "done"
        elif outcome == FAILURE or (outcome is None and now - job["at"] > LOST_RUN_SECONDS):
            tries = job["attempt"] - job["round"] + 1
            if tries >= policy.max_attempts:
                job["state"] = "gave_up"
                notes.append(f"{job['path']}: gave up after {tries} failed runs; touch the file to retry")
            else:
                job["state"] = "retry"
                job["at"] = now + policy.retry_backoff_seconds * 2 ** (tries - 1)
                notes.append(f"{job['path']}: run {job['key']} failed; retry {tries + 1} after {job['at']:.0f}")

    requests: list[LandedFile] = []
    for path, (_, mtime_ns, sha) in sorted(ready.items()):
        job = jobs.get(sha)
        if job is None or job.get("state") is None:
            key, attempt, first = _first_run_key(sha), 1, 1
        elif job["state"] == "retry" and now >= job["at"]:
            attempt, first = job["attempt"] + 1, job["round"]
            seq += 1
            key = f"ingest:{sha}:retry-{seq}"
        elif job["state"] == "gave_up" and mtime_ns != job.get("mtime_ns"):
            attempt = first = job["attempt"] + 1
            seq += 1
            key = f"ingest:{sha}:retry-{seq}"
        elif job["state"] == "done" and policy.archive and os.path.exists(path):
            # still here after its content's run succeeded: a copy under another name, a re-drop (Dagster
            # skipped the content-hash key as used), or landed before archiving was on. Ingest again (all
            # duplicates) so this file is moved too and the landing directory keeps nothing forever.
            attempt = first = job.get("attempt", 1) + 1
            seq += 1
            key = f"ingest:{sha}:copy-{seq}"
        else:
            continue
        jobs[sha] = {
            "path": path,
            "key": key,
            "attempt": attempt,
            "round": first,
            "state": "running",
            "at": now,
            "mtime_ns": mtime_ns,
        }
        requests.append(LandedFile(path=path, sha256=sha, run_key=key, attempt=attempt))

    # forget a content once its file left the directory (moved after ingest, or deleted); a re-dropped
    # copy starts again at the content-hash key, whose old run the instance still knows
    jobs = {sha: job for sha, job in jobs.items() if os.path.exists(job["path"])}
    return requests, {"files": ready, "jobs": jobs, "seq": seq}, notes


def summarize(state: dict, waiting: int, now: float) -> str:
    """One line for a tick that requests nothing."""
    counts = {"running": 0, "retry": 0, "gave_up": 0}
    for job in state["jobs"].values():
        if job.get("state") in counts:
            counts[job["state"]] += 1
    parts = [f"{waiting} file(s) not quiet yet"] if waiting else []
    parts += [f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n]
    return "no new files" + (": " + ", ".join(parts) if parts else "")


# ---- after a run --------------------------------------------------------------------------------------


def outcome_dir(stored: int, duplicate: int, rejected: int) -> str:
    """processed/, or failed/ for a file nothing could be read from (every record rejected)."""
    return FAILED_DIR if stored == 0 and duplicate == 0 and rejected > 0 else PROCESSED_DIR


def _free_name(dest: Path) -> Path:
    """dest, or `name~N.suffixes` when a file of that name was archived before."""
    if not dest.exists():
        return dest
    base, dot, rest = dest.name.partition(".")
    n = 1
    while True:
        candidate = dest.with_name(f"{base}~{n}{dot}{rest}")
        if not candidate.exists():
            return candidate
        n += 1


def archive_file(landing_dir: str | Path, path: str | Path, subdir: str, reason: str | None = None) -> Path:
    """Move an ingested file (and its .done marker) to landing_dir/subdir/<its relative path>; returns
    where it went. `reason` is written beside it as <name>.reason.txt."""
    root = Path(landing_dir).resolve()
    src = Path(path).resolve()
    try:
        rel = src.relative_to(root)
    except ValueError:  # not below the landing dir (a symlinked file): keep its name only
        rel = Path(src.name)
    dest = _free_name(root / subdir / rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dest)
    marker = src.with_name(src.name + DONE_SUFFIX)
    if marker.exists():
        os.rename(marker, dest.with_name(dest.name + DONE_SUFFIX))
    if reason is not None:
        dest.with_name(dest.name + REASON_SUFFIX).write_text(reason)
    return dest
