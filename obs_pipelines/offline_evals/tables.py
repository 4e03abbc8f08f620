"""Tables written by the offline evals phase (SQLAlchemy Core, their own MetaData).

- ``regression_cases``: the cases each daily partition curated from production, per dataset (replaced day by
  day with ``db.replace_window``; grain: window_start + dataset + case_id).
- ``dataset_versions`` / ``dataset_version_cases``: immutable versions named by the hash of their content.
  A version is written once and never changed; building the same content again only moves
  ``last_built_at`` (which makes it the dataset's latest version again).
- ``experiments`` / ``experiment_results``: one row per `obs-pipelines eval run`, one row per case of it.

``TABLE_COLUMNS`` describes every column (name / type / description) for the Dagster table schemas.
"""

from __future__ import annotations

import sqlalchemy as sa

from obs_pipelines.store.tables import TableSpecs

offline_evals_metadata = sa.MetaData()


_CASE = [
    ("case_id", "text", "Identity of the case: hash of the normalised input, context and expected output (or "
                        "the id an imported line gives)."),
    ("input", "text", "The request's input (PII replaced by typed placeholders such as <EMAIL>)."),
    ("output", "text", "The production output (scrubbed)."),
    ("expected", "text", "Expected output when known (a feedback correction), else null."),
    ("context", "text", "Retrieved context documents of the trace, a JSON list of strings (scrubbed)."),
    ("tags", "text", "Why the case was selected, sorted and comma-separated: low_score, error, "
                     "negative_feedback, alert_exemplar, agent_loop, empty_retrieval, or import tags."),
    ("trace_id", "text", "The production trace the case comes from (null for imported cases)."),
    ("route", "text", "Route of the trace."),
    ("metadata", "text", "JSON object: selection details (error type, score, feedback ...)."),
]
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "regression_cases": [
        ("window_start", "datetime", "Start of the day the case was selected from (UTC, inclusive)."),
        ("window_end", "datetime", "End of that day (UTC, exclusive)."),
        ("dataset", "text", "Dataset name (settings: offline_evals.datasets)."),
        *_CASE,
        ("selected_at", "datetime", "Start time of the trace the case was taken from (UTC)."),
        ("computed_at", "datetime", "When the row was computed (UTC)."),
    ],
    "dataset_versions": [
        ("dataset", "text", "Dataset name."),
        ("version", "text", "Content hash of the version's cases (first 16 hex digits of a SHA-256)."),
        ("case_count", "int", "Cases in the version."),
        ("tag_counts", "text", "JSON object: cases per tag."),
        ("source", "text", "production (curated by the asset) or import:<file name>."),
        ("window_start", "datetime", "First day of the curated window (null for imports)."),
        ("window_end", "datetime", "End of the curated window (null for imports)."),
        ("created_at", "datetime", "When this content was first built (UTC)."),
        ("last_built_at", "datetime", "When this content was last built (UTC): the newest is the latest version."),
    ],
    "dataset_version_cases": [
        ("dataset", "text", "Dataset name."),
        ("version", "text", "The version the case belongs to."),
        ("position", "int", "Order of the case in the version."),
        *_CASE,
    ],
    "experiments": [
        ("experiment_id", "text", "Unique id of the experiment."),
        ("name", "text", "Optional name given to the run."),
        ("dataset", "text", "Dataset name."),
        ("dataset_version", "text", "The dataset version the task ran on."),
        ("task", "text", "module:function of the task."),
        ("scorers", "text", "JSON object: scorer name -> scorer version."),
        ("git_commit", "text", "HEAD commit of the repository the run started in (null outside git)."),
        ("git_branch", "text", "Current branch (HEAD when detached)."),
        ("git_dirty", "bool", "Uncommitted changes in the working tree."),
        ("started_at", "datetime", "Start of the run (UTC)."),
        ("finished_at", "datetime", "End of the run (UTC)."),
        ("case_count", "int", "Cases run."),
        ("error_count", "int", "Cases whose task raised or timed out."),
        ("mean_scores", "text", "JSON object: scorer -> mean score over the cases (errors count as error_score)."),
        ("mean_latency_ms", "float", "Mean task latency in ms."),
        ("total_cost_usd", "float", "Sum of the costs the task reported (null when none did)."),
        ("concurrency", "int", "Task calls in flight."),
        ("timeout_s", "float", "Per-call timeout in seconds."),
    ],
    "experiment_results": [
        ("experiment_id", "text", "The experiment."),
        ("case_id", "text", "The case."),
        ("output", "text", "What the task returned (text, or JSON of a structured output)."),
        ("error", "text", "Exception type and message, or 'timeout after N s'; null on success."),
        ("latency_ms", "float", "Task latency in ms."),
        ("cost_usd", "float", "Cost the task reported (a dict output with cost_usd), else null."),
        ("scores", "text", "JSON object: scorer -> score in [0, 1] or null (does not apply)."),
        ("score_reasons", "text", "JSON object: scorer -> reason of a null score, when there is one."),
    ],
}


_SPECS = TableSpecs(offline_evals_metadata)


def _table(name: str, *extra: sa.SchemaItem) -> sa.Table:
    return _SPECS.table(name, COLUMNS[name], None, *extra, window_index=False, nullable=None)


regression_cases = _table("regression_cases", sa.Index("ix_regression_cases_dataset", "dataset", "window_start"))
dataset_versions = _table("dataset_versions", sa.PrimaryKeyConstraint("dataset", "version",
                                                                      name="dataset_versions_pk"))
dataset_version_cases = _table("dataset_version_cases", sa.PrimaryKeyConstraint(
    "dataset", "version", "case_id", name="dataset_version_cases_pk"))
experiments = _table("experiments", sa.PrimaryKeyConstraint("experiment_id", name="experiments_pk"))
experiment_results = _table("experiment_results", sa.PrimaryKeyConstraint(
    "experiment_id", "case_id", name="experiment_results_pk"))

TABLE_COLUMNS = _SPECS.columns
CASE_FIELDS = tuple(c for c, _t, _d in _CASE)
