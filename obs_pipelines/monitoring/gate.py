"""The quality gate of an hour: run the data-quality checks on its spans, record them in
``quality_checks_hourly``, and say why the hour may not be rolled up (its blocking checks that failed).

Every rollup materialization goes through it, however it was launched (schedule, sensor, a backfill
that selected only the rollups), so an unvalidated hour is never rolled up.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from obs_pipelines.monitoring import quality
from obs_pipelines.monitoring.tables import quality_checks_hourly
from obs_pipelines.store import db


def check_hour(engine: Engine, start: datetime, end: datetime,
               null_model_share_max: float) -> list[quality.QualityCheckResult]:
    """Every check of the spans starting in [start, end), recorded in ``quality_checks_hourly``."""
    results = quality.check_partition(engine, start, end, null_model_share_max)
    db.replace_window(engine, quality_checks_hourly, start, end, quality.results_frame(results, start, end))
    return results


def blocking_reasons(results: list[quality.QualityCheckResult]) -> list[str]:
    """One readable line per failed blocking check, e.g.
    ``end_not_before_start: 1 of 6,112 spans (end_time >= start_time), e.g. trace ab.. span cd..``."""
    reasons = []
    for r in results:
        if r.passed or r.severity != quality.ERROR:
            continue
        example = r.examples[0] if r.examples else None
        where = f", e.g. trace {example.get('trace_id')} span {example.get('span_id')}" if example else ""
        reasons.append(f"{r.name}: {r.failing_count:,} of {r.row_count:,} spans fail ({r.description}){where}")
    return reasons
