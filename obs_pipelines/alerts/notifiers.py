"""Destinations: a generic JSON webhook (POST the notification with an Idempotency-Key header), Slack
incoming-webhook blocks, and the run log. URLs and tokens come from environment variables only.

A notifier raises ``DeliveryError`` when the destination did not take the notification (non-2xx, network
error, missing env var); the outbox then retries on a later tick.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
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


def within(seconds: float, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` or a DeliveryError once ``seconds`` have passed, whatever the far end does (httpx's
    timeout bounds each read, not a whole exchange: a server trickling bytes would hold a send far longer).
    A send still running then finishes in its daemon thread, bounded by its own timeout; a copy it delivers
    late carries the same Idempotency-Key as the retry."""
    done = threading.Event()
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller below)
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="alert-delivery", daemon=True).start()
    if not done.wait(max(seconds, 0.0)):
        raise DeliveryError(f"no answer within {seconds:.3g} s (what was left of the tick's delivery deadline)")
    if "error" in outcome:
        raise outcome["error"]


def slack_escape(text: object) -> str:
    """App text as Slack mrkdwn that shows as itself: Slack's three control characters as entities, so
    ``<!channel>``, ``<@U123>`` and ``<https://evil|click>`` stay text (no mention, no disguised link)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(body: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook message: a header line, then one section per alert with its exemplars. Every
    string from the alert (summaries hold routes, models, user ids) goes through `slack_escape`."""
    alerts = body.get("alerts", [body])
    summary = slack_escape(body["summary"])
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": summary}}]
    for alert in alerts[:20]:
        lines = [(f"{SLACK_SEVERITY.get(alert['severity'], '')} *{slack_escape(alert['rule'])}* "
                  f"({slack_escape(alert['status'])}): {slack_escape(alert['summary'])}")]
        if alert.get("attribution"):
            lines.append("contributors: " + ", ".join(
                f"{slack_escape(c['dimension'])}={slack_escape(c['value'])} {c['share']:.0%}"
                for c in alert["attribution"][:3]))
        if alert.get("exemplar_trace_ids"):
            lines.append("traces: " + ", ".join(f"`{slack_escape(t)}`" for t in alert["exemplar_trace_ids"][:5]))
        if alert.get("link"):
            lines.append(f"<{slack_escape(alert['link']).replace('|', '%7C')}|partition in Dagster>")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
    return {"text": summary, "blocks": blocks}


def deliver(destination: Destination, body: dict[str, Any], key: str, logger: logging.Logger | None = None,
            timeout: float | None = None) -> None:
    """Send one notification to one destination; raises DeliveryError when it was not accepted. ``timeout``
    (seconds) cuts the destination's own timeout_seconds when less is left."""
    if destination.type == "log":
        (logger or log).warning(f"alert {key}: {body['summary']}")
        return
    timeout = min(destination.timeout_seconds, timeout) if timeout else destination.timeout_seconds
    url = _env(destination.url_env)
    if destination.type == "slack":
        _post(url, slack_blocks(body), key, timeout)
        return
    token = _env(destination.token_env) if destination.token_env else None
    _post(url, body, key, timeout, token)
