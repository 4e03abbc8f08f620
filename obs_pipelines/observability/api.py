"""The observability phase's published entry point: what another phase may call of it besides its tables
(`tables.py`). docs/architecture.md states the rule; test_house_rules.py enforces it.

Alerts' diagnosis (alerts/source.py) reads this phase's hourly tables from the store; for an hour the phase has
not written yet it computes them here, in memory, exactly as the hourly job would write them, instead of
waiting for that run (which the alerts' diagnosis job then launches)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.hourly import hourly_tables
from obs_pipelines.pricing import PriceTable


def hour_tables(engine: Engine, start: datetime, end: datetime, settings: ObservabilitySettings,
                prices: PriceTable) -> dict[str, pd.DataFrame]:
    """Every hourly table of [start, end) by table name, shaped as the hourly job writes it; nothing is
    written."""
    return hourly_tables(engine, start, end, settings, prices)[0]
