"""The alert rules as asset checks on the tables they read, one evaluation per rule and partition, and the
hours a re-run need not judge again."""

import json
import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from obs_pipelines import formatting
from obs_pipelines.alerts import results as results_queue
from obs_pipelines.alerts import source
from obs_pipelines.alerts.evaluate import (
    HOUR,
    RuleResult,
    by_window,
    evaluate,
    history_needed,
    hour_starts,
)
from obs_pipelines.alerts.links import partition_link
from obs_pipelines.hours import hour_key
from obs_pipelines.observability.tables import HOURLY_TABLES as OBSERVABILITY_TABLES
from obs_pipelines.orchestration.partitions import rescore_requested
from obs_pipelines.orchestration.reporting import check_evaluation
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import check_run_window
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import Settings
from obs_pipelines.store import db, fingerprints

RULES_JOB = "alerts_rules_job"
DIAGNOSIS_JOB = "alerts_diagnosis_job"
# the observability phase's hourly tables (its published tables.py), error causes first: a diagnosis run
# writes them for an alert's hour; the first one tells whether the hour has them
OBSERVABILITY_HOURLY = ["error_causes_hourly", *(t for t in OBSERVABILITY_TABLES if t != "error_causes_hourly")]
MAX_GROUPS_IN_METADATA = 50
CHUNK = timedelta(hours=24)  # a rule check reads and judges this many hours at a time (memory bounded by it)
SEVERITY = {"critical": dg.AssetCheckSeverity.ERROR, "warning": dg.AssetCheckSeverity.WARN,
            "info": dg.AssetCheckSeverity.WARN}
log = logging.getLogger("obs_pipelines.alerts")



def rule_metric(rule) -> str:
    """The rule's measure as alerts name it: the metric, burn_rate(slo) or statistic(scorer)."""
    if rule.kind == "burn_rate":
        return f"burn_rate({rule.slo})"
    if rule.kind == "eval_score":
        return f"{rule.statistic}({rule.scorer})"
    return rule.metric


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _result_dict(result: RuleResult, attribution: list | None = None, exemplars: list | None = None) -> dict:
    return {"group": result.group, "value": _clean(result.value), "threshold": _clean(result.threshold),
            "samples": _clean(result.samples), "judged": result.judged, "passed": result.passed,
            "baseline": _clean(result.baseline), "attribution": attribution or [],
            "exemplar_trace_ids": exemplars or []}


def _severity_of(result: RuleResult) -> float:
    """How far past its threshold a breach is, relative to the threshold (to put the worst first)."""
    if result.value is None or result.threshold is None:
        return 0.0
    return abs(result.value - result.threshold) / max(abs(result.threshold), 1e-12)


def breach_text(metric: str, entry: dict) -> str:
    """``provider=openai: error_rate 84% (threshold 25%, 440 samples)``."""
    where = ", ".join(f"{k}={v}" for k, v in entry["group"].items()) or "overall"
    text = (f"{where}: {metric} {formatting.metric_value(metric, entry['value'])} "
            f"(threshold {formatting.metric_value(metric, entry['threshold'])}")
    if entry.get("samples") is not None:
        text += f", {formatting.number(entry['samples'])} samples"
    return text + ")"


def hour_metadata(engine, rule, results: list[RuleResult], link: str,
                  diagnosis: source.Diagnosis | None = None) -> tuple[bool, dict, dict]:
    """Whether the hour passed, the check's metadata, and the attribution and exemplar traces found (by id()
    of the result; for the queue row). The metadata, most useful first: what broke (a sentence with the
    figures formatted), the worst breach's value and threshold (rounded: the UI plots them), its group,
    attribution and exemplar traces, then the counts, the breached groups (a tree) and the link. The good
    groups are not in it: the alert sensor reads every judged group from the results queue (results.py)."""
    breached = sorted((r for r in results if not r.passed), key=_severity_of, reverse=True)
    found = {id(r): (source.attribution(engine, rule, r, diagnosis),
                     source.exemplar_trace_ids(engine, rule, r, diagnosis=diagnosis))
             for r in breached[:MAX_GROUPS_IN_METADATA]}
    entries = [_result_dict(r, *found[id(r)]) for r in breached[:MAX_GROUPS_IN_METADATA]]
    metric = rule_metric(rule)
    judged = sum(r.judged for r in results)
    metadata: dict = {}
    if breached:
        worst = entries[0]
        more = f" (and {len(breached) - 1} more group(s))" if len(breached) > 1 else ""
        metadata["breach"] = dg.MetadataValue.text(breach_text(metric, worst) + more)
        for name in ("value", "threshold"):
            if worst[name] is not None:
                metadata[name] = formatting.rounded(worst[name])
        metadata.update({
            "group": dg.MetadataValue.json(worst["group"]),
            "attribution": dg.MetadataValue.json(worst["attribution"]),
            "exemplar_trace_ids": dg.MetadataValue.json(worst["exemplar_trace_ids"]),
        })
    else:
        metadata["breach"] = dg.MetadataValue.text(f"none: {judged} group(s) judged within the rule"
                                                   if judged else "no group had enough samples to judge")
    metadata.update({
        "groups_breached": len(breached),
        "groups_judged": judged,
        # history-relative rules: groups not judged yet for lack of history (said, never a silent pass)
        "groups_not_enough_history": sum(r.detail.get("not_judged", "").startswith("not enough history")
                                         for r in results),
        "metric": dg.MetadataValue.text(metric),
        "results": dg.MetadataValue.json(json.loads(json.dumps(entries, default=str))),
        "link": dg.MetadataValue.url(link),
    })
    return not breached, metadata, found


# ---- the rules as asset checks ----------------------------------------------------------------------------
def rule_tables(settings: Settings, asset_keys: Iterable[str]) -> dict[str, list]:
    """Rules by the table (= asset) they read; rules on tables no shipped phase defines are left out, with
    a log line (they come back once the phase ships its table)."""
    present = set(asset_keys)
    out: dict[str, list] = {}
    for rule in settings.alerts.parsed_rules():
        if rule.table not in present:
            log.warning(f"alert rule {rule.name!r} skipped: table {rule.table!r} is not an asset of this code "
                        "location (its phase is not enabled or not shipped yet)")
            continue
        out.setdefault(rule.table, []).append(rule)
    return out


def build_rule_checks(settings: Settings, table: str, rules: list, hourly: dg.HourlyPartitionsDefinition,
                      diagnose: bool = False) -> dg.AssetChecksDefinition:
    """The rules on one table, evaluated hour by hour over the run's window: one evaluation per rule and
    hour (so the UI shows which hours broke which rule after a range run) plus one summary per rule; every
    judged group's result is queued in the store for the alert sensor (results.py)."""

    @dg.multi_asset_check(
        name=f"alerts_{table}_rules",
        specs=[dg.AssetCheckSpec(rule.name, asset=table, description=rule.description or
                                 f"Alert rule ({rule.kind}) on {table}: {rule_metric(rule)}.") for rule in rules],
        description=f"Alert rules on {table}, hour by hour; the alert sensor turns failures into alerts.",
    )
    def rule_checks(context: dg.AssetCheckExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        start, end = check_run_window(context, hourly)
        present = sa.inspect(engine).has_table(table)
        # with the observability phase on, a breach carries its attribution at once (computed when the phase's
        # tables of the hour are not written yet; the diagnosis run writes them)
        diagnosis = (source.Diagnosis(engine, settings.observability, load_prices(settings.price_overrides))
                     if diagnose else None)
        for rule in rules:
            if not present:
                context.log.warning(f"alert rule {rule.name} skipped: table {table} does not exist in the store yet")
                yield dg.AssetCheckResult(asset_key=table, check_name=rule.name, passed=True,
                                          metadata={"skipped": f"table {table} does not exist yet"})
                continue
            skips = _unchanged_hours(context, engine, rule, table, start, end)  # (issue 23, store/fingerprints.py)
            results = {}
            for first, last in skips.changed_runs(HOUR):
                results.update(_judged_by_window(engine, rule, first, last))
            failing: list[str] = []
            evaluations, queued, now, outcomes = [], [], db.utcnow(), {}
            for hour in hour_starts(start, end):
                if skips.unchanged(hour):  # judged before from the same rows: that evaluation stands
                    if skips.outcome(hour) == "failed":
                        failing.append(hour_key(hour))
                    continue
                link = partition_link(settings.alerts.ui_base_url, table, hour)
                passed, metadata, found = hour_metadata(engine, rule, results.get(hour, []), link, diagnosis)
                evaluations.append(check_evaluation(dg.AssetKey(table), rule.name, hour_key(hour), passed,
                                                    SEVERITY[rule.severity], metadata))
                queued.append(results_queue.row(rule.name, rule_metric(rule), hour, hour + HOUR, results.get(hour, []),
                                                link, found, context.run.run_id, now))
                if not passed:
                    failing.append(hour_key(hour))
                outcomes[hour] = "passed" if passed else "failed"
            # the alert sensor's input: queued before the evaluations are reported (one insert per rule)
            results_queue.queue(engine, queued)
            skips.record(outcomes)
            yield from evaluations
            yield dg.AssetCheckResult(asset_key=table, check_name=rule.name, passed=not failing,
                                      severity=SEVERITY[rule.severity],
                                      metadata={"partitions_checked": len(hour_starts(start, end)),
                                                "partitions_unchanged": len(skips.kept),
                                                "failing_partitions": failing[:50]})

    return rule_checks


# ---- issue 23 (online evals helper): hours whose inputs did not change are not judged again -----------------
def _unchanged_hours(context, engine, rule, table: str, start: datetime, end: datetime) -> fingerprints.WindowSkips:
    """An hour is judged from the rule and the table's windows it reads (the hour and the rule's history): when
    their write stamps (db.replace_windows) are those of the hour's last judgment, it stands (its outcome kept
    for the summary). A run of the rules job (an explicit request to judge) or tagged obs_pipelines/rescore=true
    judges every hour again."""
    hours = hour_starts(start, end)
    judged = fingerprints.window_fingerprints(engine, [table], hours, HOUR, history_needed(rule),
                                              salt=rule.model_dump(mode="json"))
    # the cause and exemplars are part of the judgment: an hour whose diagnosis tables were written since is
    # judged again, so its alert shows what they now hold. The day's failure clusters are not part of it: they
    # are written after the day's hours are judged, so each re-run would judge the whole day again; an hour
    # names its day's cluster when judged after the clusters exist (the rules job, or rescore=true)
    diagnosis = fingerprints.window_fingerprints(engine, DIAGNOSIS_TABLES, hours, HOUR)
    prints = {h: None if judged[h] is None else fingerprints.digest(judged[h], diagnosis[h]) for h in hours}
    force = context.run.job_name == RULES_JOB or rescore_requested(context.run.tags)
    return fingerprints.WindowSkips(engine, f"alerts:{rule.name}", prints, force=force)


# the hourly tables the causes and exemplars of any family read (alerts/source.py, causes.py)
DIAGNOSIS_TABLES = ("agent_paths", "cost_attribution_hourly", "error_causes_hourly", "eval_scores",
                    "latency_attribution_hourly", "request_rollup_hourly", "retrieval_rollup_hourly",
                    "score_rollup_hourly")


def _judged_by_window(engine, rule, start: datetime, end: datetime) -> dict:
    """The rule's results per hour of [start, end), read and judged a chunk of hours at a time: a backfill of a
    month reads one chunk (plus the history the rule compares with) at a time, never the whole range; a chunk
    is at least as long as that history, so no row is read more than twice."""
    chunk = max(CHUNK, history_needed(rule))
    out: dict = {}
    first = start
    while first < end:
        last = min(first + chunk, end)
        out.update(by_window(evaluate(rule, source.read_rule_frame(engine, rule, first, last), first, last)))
        first = last
    return out
