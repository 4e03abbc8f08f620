"""Table metadata for the UI: column schemas from a phase's column specs, and asset specs of tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import sqlalchemy as sa


def table_schema(columns: Sequence[Mapping[str, str]]) -> dg.TableSchema:
    """The UI's column list from column specs (dicts with name / type / description)."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c["name"], c["type"], description=c.get("description")) for c in columns]
    )


def table_spec(table: sa.Table, columns: Sequence[Mapping[str, str]], *, group: str, description: str, deps,
               automation_condition: dg.AutomationCondition | None = None,
               freshness: dg.FreshnessPolicy | None = None) -> dg.AssetSpec:
    """An asset that is one table of the store: the asset key is the table name."""
    return dg.AssetSpec(
        table.name,
        group_name=group,
        description=description,
        deps=deps,
        kinds={"sql", "pandas"},
        metadata={"dagster/column_schema": table_schema(columns), "dagster/table_name": table.name},
        automation_condition=automation_condition,
        freshness_policy=freshness,
    )


# figures that tell the pipeline's bookkeeping, not the data: listed (and plotted by the UI) after the others
BOOKKEEPING = ("rows", "kept", "arrival_id_seen", "price_version", "computed_at", "partitions_checked")


def readable(metadata: Mapping[str, object]) -> dict[str, object]:
    """A materialization's metadata for people: floats to 4 significant digits (``0.733275412684622`` ->
    ``0.7333``; the UI prints and plots them as given) and the bookkeeping figures last, so the first plots
    of an asset are its data's figures."""
    from obs_pipelines.formatting import rounded

    first = {k: rounded(v) for k, v in metadata.items() if k not in BOOKKEEPING}
    return {**first, **{k: rounded(metadata[k]) for k in BOOKKEEPING if k in metadata}}
