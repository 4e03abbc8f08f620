"""Destinations: a generic JSON webhook (POST the notification with an Idempotency-Key header), Slack
incoming-webhook blocks, and the run log. URLs and tokens come from environment variables only.

A notifier raises ``DeliveryError`` when the destination did not take the notification (non-2xx, network
error, missing env var); the outbox then retries on a later tick.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

from obs_pipelines.alerts.rules import Destination

log = logging.getLogger("obs_pipelines.alerts")
IDEMPOTENCY_HEADER = "Idempotency-Key"
SLACK_SEVERITY = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":information_source:"}


class DeliveryError(Exception):
    """The destination did not accept the notification (retried later)."""


def _env(name: str | None) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise DeliveryError(f"environment variable {name} is not set")
    return value


def _post(url: str, body: dict[str, Any], key: str, timeout: float, token: str | None = None) -> None:
    headers = {IDEMPOTENCY_HEADER: key, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")


def slack_blocks(body: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook message: a header line, then one section per alert with its exemplars."""
    alerts = body.get("alerts", [body])
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": body["summary"]}}]
    for alert in alerts[:20]:
        lines = [f"{SLACK_SEVERITY.get(alert['severity'], '')} *{alert['rule']}* ({alert['status']}): "
                 f"{alert['summary']}"]
        if alert.get("attribution"):
            lines.append("contributors: " + ", ".join(
                f"{c['dimension']}={c['value']} {c['share']:.0%}" for c in alert["attribution"][:3]))
        if alert.get("exemplar_trace_ids"):
            lines.append("traces: " + ", ".join(f"`{t}`" for t in alert["exemplar_trace_ids"][:5]))
        if alert.get("link"):
            lines.append(f"<{alert['link']}|partition in Dagster>")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
    return {"text": body["summary"], "blocks": blocks}


def deliver(destination: Destination, body: dict[str, Any], key: str, logger: logging.Logger | None = None) -> None:
    """Send one notification to one destination; raises DeliveryError when it was not accepted."""
    if destination.type == "log":
        (logger or log).warning(f"alert {key}: {body['summary']}")
        return
    url = _env(destination.url_env)
    if destination.type == "slack":
        _post(url, slack_blocks(body), key, destination.timeout_seconds)
        return
    token = _env(destination.token_env) if destination.token_env else None
    _post(url, body, key, destination.timeout_seconds, token)
