"""Which files in the landing directory are new: pure logic behind the landing-directory sensor."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

INGESTIBLE_SUFFIXES = (".jsonl", ".json", ".gz", ".pb", ".bin", ".protobuf")


@dataclass(frozen=True)
class LandedFile:
    path: str
    sha256: str


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def scan_landing_dir(landing_dir: str | Path, cursor: str | None) -> tuple[list[LandedFile], str]:
    """Files whose content was not seen at the previous scan, and the next cursor.

    The cursor maps path -> [size, mtime_ns, sha256] so unchanged files are not hashed again; a file
    is new when its content hash is not among those seen before (a renamed copy is not new).
    Files still being written (ending in .tmp / .part, or dotfiles) are skipped. Files that left the
    directory drop out of the cursor so it stays small; the run_key (the content hash) still stops
    Dagster from launching a second run for content it has ingested, and ingest itself is idempotent.
    """
    previous: dict[str, list] = json.loads(cursor) if cursor else {}
    seen_hashes = {entry[2] for entry in previous.values()}
    current: dict[str, list] = {}
    new_files: list[LandedFile] = []
    root = Path(landing_dir)
    if not root.is_dir():
        return [], json.dumps(previous, sort_keys=True)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith(".") or not path.name.endswith(INGESTIBLE_SUFFIXES):
            continue
        stat = path.stat()
        key = str(path)
        cached = previous.get(key)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            sha = cached[2]
        else:
            sha = file_sha256(path)
        current[key] = [stat.st_size, stat.st_mtime_ns, sha]
        if sha not in seen_hashes:
            seen_hashes.add(sha)
            new_files.append(LandedFile(path=key, sha256=sha))
    return new_files, json.dumps(current, sort_keys=True)
