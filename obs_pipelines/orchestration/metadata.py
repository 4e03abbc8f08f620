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
