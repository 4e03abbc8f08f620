"""The Dagster code every phase shares: partitions and a run's window (partitions.py, windows.py), each phase's
jobs, schedule and automation (phase_jobs.py), the TraceStore resource (resource.py), the raw `spans` asset and
its arrival sensor (raw_assets.py), per-partition reporting, automation conditions and the table-schema
metadata of the UI. The only shared package that imports dagster; the phases' logic and store/ never do."""
