"""The Dagster code every phase shares: partitions, a run's time window, per-partition reporting, automation
conditions and the table-schema metadata of the UI. The only shared package that imports dagster; the phases'
logic never does."""
