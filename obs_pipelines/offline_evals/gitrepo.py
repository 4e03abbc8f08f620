"""The git facts an experiment is tied to: the commit, branch and dirty flag of a run, and the commits a gate
compares (this commit, the merge base with the main branch, or a named ref)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def git(*args: str, cwd: Path | None = None) -> str | None:
    """Output of a git command, or None when git is missing, fails or this is not a repository."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(cwd: Path | None = None) -> GitState:
    """Commit, branch and dirty flag of the repository around ``cwd`` (all None outside a repository)."""
    commit = git("rev-parse", "HEAD", cwd=cwd)
    if commit is None:
        return GitState()
    status = git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return GitState(commit, git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd),
                    bool(status) if status is not None else None)


def resolve_commit(ref: str, cwd: Path | None = None) -> str | None:
    """The full SHA of ``ref`` (a branch, tag, SHA or expression such as HEAD~1), None when unknown."""
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd) or None


def merge_base(ref: str, other: str = "HEAD", cwd: Path | None = None) -> str | None:
    """The merge base of ``other`` with ``ref``, else with ``origin/<ref>`` (CI checkouts often have only the
    remote branch); None when neither is known."""
    for name in (ref, f"origin/{ref}"):
        if resolve_commit(name, cwd):
            found = git("merge-base", other, name, cwd=cwd)
            if found:
                return found
    return None
