"""Error causes: where each error of a window originated (a failed span that no failed child explains), its
class, and the ``error_causes_hourly`` rows (class x provider x model x route x failing step).

Classes come from monitoring's classifier (provider capacity errors — 5xx, Anthropic 529 /
``overloaded_error``, ``ServiceUnavailable``, ``UNAVAILABLE`` — are ``provider_5xx``, an outage; 429 and quota
errors are ``rate_limit``), with the settings' ``error_rules`` (regex -> class) tried first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

# The classifier is shared with monitoring. It belongs in store/ (both phases need it); until it moves there
# this is the one place observability reaches it.
from obs_pipelines.store.errors import classify_errors
from obs_pipelines.store.traces import NULL_LABEL

EXAMPLES = 3
OUTAGE_CLASS = "provider_5xx"


def classify(errors: pd.DataFrame, rules: Sequence = ()) -> pd.Series:
    """Error class of each failed span: the first matching settings rule, else the built-in classifier."""
    classes = classify_errors(errors)
    if not rules or errors.empty:
        return classes
    text = (errors["error_type"].fillna("").astype(str) + " | "
            + errors["error_message"].fillna("").astype(str)).str.lower()
    conditions = [text.str.contains(rule.pattern, regex=True).to_numpy(dtype=bool) for rule in rules]
    ruled = np.select(conditions, [rule.error_class for rule in rules], default="")
    return classes.where(ruled == "", pd.Series(ruled, index=errors.index))


def origin_errors(spans: pd.DataFrame, rules: Sequence = ()) -> pd.DataFrame:
    """The failed spans where an error originated (no failed child span), with ``error_class``."""
    failed = spans[spans["status"] == "error"]
    failed_parents = pd.MultiIndex.from_frame(failed[["trace_id", "parent_span_id"]].dropna())
    own = pd.MultiIndex.from_frame(failed[["trace_id", "span_id"]])
    origins = failed[~own.isin(failed_parents)].copy()
    origins["error_class"] = classify(origins, rules) if len(origins) else pd.Series(dtype="object")
    return origins


def _examples(trace_ids: pd.Series) -> str:
    return json.dumps(sorted(set(trace_ids))[:EXAMPLES])


def _label(values: pd.Series) -> pd.Series:
    return values.astype("object").where(values.notna(), NULL_LABEL)


def error_causes(spans: pd.DataFrame, routes: pd.Series, rules: Sequence = ()) -> pd.DataFrame:
    """``error_causes_hourly`` rows (without window columns). ``routes``: request route by trace_id (errors
    of spans whose trace is not a request of the window are counted under the spans' own route label)."""
    columns = ["error_class", "provider", "model", "route", "failing_step", "error_count", "share",
               "example_trace_ids", "message"]
    origins = origin_errors(spans, rules)
    if origins.empty:
        return pd.DataFrame(columns=columns)
    origins["route"] = origins["trace_id"].map(routes).fillna(NULL_LABEL)
    origins["provider"] = _label(origins["provider"])
    origins["model"] = _label(origins["model"])
    origins["failing_step"] = _label(origins["name"])
    keys = ["error_class", "provider", "model", "route", "failing_step"]
    grouped = origins.groupby(keys, sort=True)
    out = grouped.agg(error_count=("trace_id", "size"), example_trace_ids=("trace_id", _examples)).reset_index()
    # the representative message: the most frequent one of the cause (ties: the smallest)
    messages = (origins.assign(message=origins["error_message"].fillna("").str.slice(0, 500))
                .groupby([*keys, "message"]).size().rename("n").reset_index()
                .sort_values([*keys, "n", "message"], ascending=[True] * len(keys) + [False, True])
                .drop_duplicates(keys))
    out = out.merge(messages[[*keys, "message"]], on=keys, how="left")
    out["share"] = out["error_count"] / out["error_count"].sum()
    return out.sort_values(["error_count", *keys], ascending=[False] + [True] * len(keys))[columns].reset_index(
        drop=True)
