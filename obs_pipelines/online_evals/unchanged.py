"""Which days the daily assets need not compute again (issue 23: a re-run over a scored month redid every daily
rollup and clustering): a day's output is computed from its hours of ``eval_scores`` (their write stamps,
store/fingerprints.py) and the day's raw inputs read live (span count, newest ingest, feedback count:
``scoring.hour_inputs`` over the day), plus the settings and code version of the asset (``salt``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.scoring import hour_inputs
from obs_pipelines.online_evals.tables import eval_scores
from obs_pipelines.store import fingerprints

DAY = timedelta(days=1)
# bump when the daily rollup's or the clusters' code changes what they write for the same inputs
DAILY_CODE_VERSION = 1


def day_fingerprints(engine: Engine, starts: Sequence[datetime], salt) -> dict[datetime, str | None]:
    """Per day start: the fingerprint of what the day's output is computed from (None: compute it)."""
    scored = fingerprints.window_fingerprints(engine, [eval_scores.name], starts, DAY,
                                              salt=[DAILY_CODE_VERSION, salt])
    return {start: None if hours is None else fingerprints.digest(hours, hour_inputs(engine, start, start + DAY))
            for start, hours in scored.items()}


__all__ = ["DAILY_CODE_VERSION", "day_fingerprints"]
