"""Figures of a day's curation and versions, as plain values for the asset metadata (no dagster here)."""

from __future__ import annotations

import json

import pandas as pd

from obs_pipelines.offline_evals import datasets
from obs_pipelines.offline_evals.curate import Curated


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def curation_metadata(curated: dict[str, Curated], rows: int) -> dict:
    """rows written, and per dataset: cases per tag, traces per source, skipped sources, PII replaced."""
    return {
        "rows": rows,
        "cases_by_dataset": json.dumps({n: len(c.cases) for n, c in curated.items()}),
        "cases_by_tag": json.dumps({n: datasets.tag_counts(c.cases) for n, c in curated.items()}),
        "traces_by_source": json.dumps({n: c.selected for n, c in curated.items()}),
        "skipped_sources": json.dumps({n: c.skipped for n, c in curated.items() if c.skipped}),
        "pii_replaced": json.dumps({n: c.scrubbed for n, c in curated.items()}),
        "duplicates_merged": sum(c.duplicates for c in curated.values()),
    }


def version_metadata(built: dict[str, tuple[str, bool, list[dict]]]) -> dict:
    """The version of each dataset as of the day, whether it is new, and its size."""
    metadata: dict = {}
    for name, (version, created, cases) in built.items():
        metadata[f"{name}/version"] = version
        metadata[f"{name}/new_version"] = created
        metadata[f"{name}/cases"] = len(cases)
        metadata[f"{name}/tags"] = json.dumps(datasets.tag_counts(cases))
    return metadata
