"""The trace store's Alembic lineage: env.py, versions/ (one file per revision), helpers for revisions.

Applied by `obs_pipelines.store.migrate`; how to add a revision: README.md beside this file.
"""
