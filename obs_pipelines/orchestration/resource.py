"""The `TraceStore` Dagster resource: a thin, configurable handle on the store functions in `store/db.py` (here,
not in store/, so the store stays free of Dagster)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from dagster import ConfigurableResource
from sqlalchemy.engine import Engine

from obs_pipelines.store import db


class TraceStore(ConfigurableResource):
    """Where raw spans and every derived table live.

    `db_url` comes from `OBS_PIPELINES_DB_URL` (see `settings.py`); the default is a SQLite file under
    `./.obs_pipelines/`. PostgreSQL URLs must name the driver: `postgresql+psycopg2://...`.
    """

    db_url: str

    @property
    def engine(self) -> Engine:
        return db.make_engine(self.db_url)

    @property
    def is_postgres(self) -> bool:
        return db.is_postgres(self.engine)

    def create_tables(self, meta: sa.MetaData | None = None) -> None:
        """Upgrade the store to the newest migration (once per process), then make `meta`'s ad-hoc tables."""
        db.create_tables(self.engine, meta if meta is not None else db.metadata)

    def read_window(
        self,
        table: sa.Table,
        start: datetime,
        end: datetime,
        columns: Sequence[str] | None = None,
        time_column: str = "start_time",
    ) -> pd.DataFrame:
        return db.read_window(self.engine, table, start, end, columns, time_column)

    def replace_window(
        self,
        table: sa.Table,
        start: datetime,
        end: datetime,
        frame: pd.DataFrame,
        time_column: str = "window_start",
    ) -> int:
        return db.replace_window(self.engine, table, start, end, frame, time_column)

    def replace_windows(
        self,
        start: datetime,
        end: datetime,
        frames: Mapping[sa.Table, pd.DataFrame],
        time_column: str = "window_start",
    ) -> dict[str, int]:
        return db.replace_windows(self.engine, start, end, frames, time_column)

    def insert_spans(self, rows: Sequence[dict]) -> int:
        return db.insert_spans(self.engine, rows)
