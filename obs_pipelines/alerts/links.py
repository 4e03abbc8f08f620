"""Links into the Dagster UI (1.13) that the alerts carry."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"


def partition_link(base_url: str, asset: str, window_start: datetime) -> str:
    """The asset's page opened on its partitions view at the window's hour: the UI's own partition links are
    ``?view=partitions&partition=<key, URI-encoded>`` (without ``view=partitions`` the overview opens)."""
    key = quote(window_start.strftime(HOUR_KEY_FORMAT), safe="")
    return f"{base_url.rstrip('/')}/assets/{quote(asset)}?view=partitions&partition={key}"
