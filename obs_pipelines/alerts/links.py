"""Links into the Dagster UI (1.13) that the alerts carry."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from obs_pipelines.hours import hour_key


def partition_link(base_url: str, asset: str, window_start: datetime) -> str:
    """The asset's page opened on its partitions view at the window's hour: the UI's own partition links are
    ``?view=partitions&partition=<key, URI-encoded>`` (without ``view=partitions`` the overview opens)."""
    key = quote(hour_key(window_start), safe="")
    return f"{base_url.rstrip('/')}/assets/{quote(asset)}?view=partitions&partition={key}"
