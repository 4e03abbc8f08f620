"""Skipping windows whose inputs did not change (issue 23: a re-run over a scored month redid every daily
rollup and every alert check).

Every ``db.replace_windows`` stamps the windows it wrote (``window_writes``: table, window, rows, written_at),
in the same transaction. A step that reads tables (a daily asset, an alert rule) fingerprints a window's
inputs as a hash of the stamps of the windows it reads, plus whatever else decides its output (its settings,
a code version, live counts of raw tables) and keeps the fingerprint of what it stored (``step_inputs``). A
re-run finding the same fingerprint leaves the window as it is; a changed input hour changes the fingerprint
of every window that reads it, and of no other. A fingerprint is recorded after the output is written: a
crash in between only costs a recomputation.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db, locks
from obs_pipelines.store.schema import step_inputs, window_writes


def digest(*parts) -> str:
    """A short hash of JSON-able parts (datetimes as text)."""
    return hashlib.sha1(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:20]


def stamps(engine: Engine, tables: Sequence[str], start: datetime, end: datetime) -> list[tuple]:
    """(window_start, table, row_count, written_at) of the windows of ``tables`` starting in [start, end),
    in order."""
    query = (sa.select(window_writes.c.window_start, window_writes.c.table_name, window_writes.c.row_count,
                       window_writes.c.written_at)
             .where(window_writes.c.table_name.in_(list(tables)), window_writes.c.window_start >= start,
                    window_writes.c.window_start < end)
             .order_by(window_writes.c.window_start, window_writes.c.table_name))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query).all()]


def window_fingerprints(engine: Engine, tables: Sequence[str], starts: Sequence[datetime], length: timedelta,
                        lookback: timedelta = timedelta(0), salt=None) -> dict[datetime, str]:
    """Per window start s: the digest of ``salt`` and the stamps of ``tables`` in [s - lookback, s + length)
    (one read for all the windows)."""
    if not starts:
        return {}
    found = stamps(engine, tables, min(starts) - lookback, max(starts) + length)
    keys = [_naive(row[0]) for row in found]
    out = {}
    for start in starts:
        low = bisect.bisect_left(keys, start - lookback)
        own = bisect.bisect_left(keys, start)
        high = bisect.bisect_left(keys, start + length)
        # a window none of whose own tables was ever stamped (written some other way) is never taken as unchanged
        out[start] = digest(salt, [list(row) for row in found[low:high]]) if high > own else None
    return out


def _naive(value) -> datetime:
    return db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


class WindowSkips:
    """The windows of one step whose fingerprint is the one stored with their output (left as they are), the
    others to compute; each stored fingerprint may carry a short outcome after '|' (an alert rule: passed /
    failed), so a skipped window still counts in the step's summary."""

    def __init__(self, engine: Engine, step: str, prints: Mapping[datetime, str | None], force: bool = False):
        self.engine, self.step, self.prints = engine, step, dict(prints)
        before = {} if force else stored(engine, step, [s for s, p in prints.items() if p is not None])
        self.kept = {s: v.partition("|")[2] for s, v in before.items()
                     if self.prints.get(s) is not None and v.partition("|")[0] == self.prints[s]}

    def unchanged(self, start: datetime) -> bool:
        return start in self.kept

    def outcome(self, start: datetime) -> str:
        return self.kept.get(start, "")

    def changed_runs(self, length: timedelta) -> list[tuple[datetime, datetime]]:
        """The changed windows as runs of consecutive windows [first, last + length)."""
        runs: list[list[datetime]] = []
        for start in sorted(s for s in self.prints if s not in self.kept):
            if runs and runs[-1][1] == start:
                runs[-1][1] = start + length
            else:
                runs.append([start, start + length])
        return [(a, b) for a, b in runs]

    def record(self, outcomes: Mapping[datetime, str]) -> None:
        """Store the fingerprints of the windows just computed (with their outcomes)."""
        record(self.engine, self.step, {s: f"{self.prints[s]}|{o}" for s, o in outcomes.items()
                                        if self.prints.get(s) is not None})


def stored(engine: Engine, step: str, starts: Iterable[datetime]) -> dict[datetime, str]:
    """The fingerprints recorded for ``step`` at these window starts."""
    starts = list(starts)
    if not starts:
        return {}
    query = sa.select(step_inputs.c.window_start, step_inputs.c.fingerprint).where(
        step_inputs.c.step == step, step_inputs.c.window_start >= min(starts),
        step_inputs.c.window_start <= max(starts))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    wanted = set(starts)
    return {_naive(start): print_ for start, print_ in rows if _naive(start) in wanted}


def record(engine: Engine, step: str, prints: Mapping[datetime, str]) -> None:
    """Record what ``step``'s output of each window was computed from (after the output is written)."""
    if not prints:
        return
    now = db.utcnow()
    with locks.begin(engine) as conn:
        for chunk in _chunks(sorted(prints), 500):
            conn.execute(sa.delete(step_inputs).where(step_inputs.c.step == step,
                                                      step_inputs.c.window_start.in_(chunk)))
            conn.execute(sa.insert(step_inputs), [{"step": step, "window_start": s, "fingerprint": prints[s],
                                                   "computed_at": now} for s in chunk])


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = ["WindowSkips", "digest", "record", "stamps", "stored", "window_fingerprints"]
