"""Absolute alert rules for the tests of the alert wiring (checks, sensors, delivery, CLI, daemon): a team that
knows its numbers, here the project generator's (obs_pipelines/synth), writes thresholds like these. They fire on
the first hour of an incident, without history, which is what a test of the plumbing needs; the shipped
history-relative pack of config/example.yaml needs hours of history first (test_incidents*.py cover it).

``with_absolute_rules(data)`` puts them into a settings mapping loaded from the example file."""

from __future__ import annotations

import copy

# measured on the generator's traffic: provider error rate clean 1-4 %, outage 60 %+; 429s under 1 % of spans,
# rate_limit_storm 10 %+; retrieval p95 0.24-0.36 s, latency_spike ~3 s; rag_qa cost $0.0005-0.0009 a call
ABSOLUTE_RULES: list[dict] = [
    {
        "name": "provider_error_rate",
        "kind": "threshold",
        "table": "error_rollup_hourly",
        "group_by": "provider",
        "metric": "error_rate",
        "comparison": ">",
        "threshold": 0.25,
        "sample_column": "span_count",
        "min_samples": 30,
        "severity": "critical"
    },
    {
        "name": "rate_limit_errors",
        "kind": "threshold",
        "table": "error_rollup_hourly",
        "group_by": "error_class",
        "where": {
            "dimension_value": "rate_limit"
        },
        "metric": "error_rate",
        "threshold": 0.05,
        "sample_column": "span_count",
        "min_samples": 100,
        "severity": "warning"
    },
    {
        "name": "route_p95_latency_anomaly",
        "kind": "anomaly",
        "table": "request_rollup_hourly",
        "group_by": "route",
        "metric": "latency_p95_ms",
        "baseline": "trailing_hours",
        "baseline_windows": 6,
        "mad_factor": 4,
        "min_abs_change": 6000,
        "sample_column": "request_count",
        "min_samples": 50,
        "severity": "warning"
    },
    {
        "name": "retrieval_p95_latency",
        "kind": "threshold",
        "table": "step_rollup_hourly",
        "group_by": "span_kind",
        "where": {
            "dimension_value": "retrieval"
        },
        "metric": "latency_p95_ms",
        "threshold": 1500,
        "sample_column": "span_count",
        "min_samples": 20
    },
    {
        "name": "route_cost_per_call_anomaly",
        "kind": "anomaly",
        "table": "usage_rollup_hourly",
        "group_by": "route",
        "metric": "cost_usd / call_count",
        "baseline": "trailing_hours",
        "baseline_windows": 6,
        "mad_factor": 5,
        "min_abs_change": 0.0005,
        "sample_column": "call_count",
        "min_samples": 20
    },
    {
        "name": "error_budget_burn",
        "kind": "burn_rate",
        "slo": "overall_error_rate",
        "windows": [
            {
                "long_hours": 6,
                "short_hours": 1,
                "factor": 6
            }
        ],
        "severity": "critical"
    },
    {
        "name": "empty_retrievals",
        "kind": "threshold",
        "table": "retrieval_rollup_hourly",
        "group_by": [
            "route"
        ],
        "metric": "empty_rate",
        "threshold": 0.3,
        "sample_column": "retrievals",
        "min_samples": 10
    },
    {
        "name": "agent_loops",
        "kind": "threshold",
        "table": "agent_paths",
        "group_by": [
            "route"
        ],
        "metric": "loop_detected",
        "aggregate": "mean",
        "threshold": 0.2,
        "min_samples": 10
    },
    {
        "name": "groundedness_drop",
        "kind": "eval_score",
        "scorer": "groundedness",
        "group_by": [
            "route"
        ],
        "statistic": "mean",
        "comparison": "<",
        "threshold": 0.6,
        "min_samples": 20
    }
]


def with_absolute_rules(data: dict) -> dict:
    """``data`` (a settings mapping) with its alert rules replaced by ABSOLUTE_RULES."""
    data.setdefault("alerts", {})["rules"] = copy.deepcopy(ABSOLUTE_RULES)
    return data
