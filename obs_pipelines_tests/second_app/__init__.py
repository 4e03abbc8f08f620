"""A second, independent trace source for tests: a customer-support bot that is not ``obs_pipelines/synth``.

Its own routes (``kb_answer``, ``/triage``, ``reply_draft``), providers (Cohere, Mistral, Google), models,
vocabulary (help-center articles, tickets, reply drafts), tools (``lookup_order``, ``check_refund``,
``set_priority``), retrievers (``article_search``, ``similar_tickets``) and attribute styles (OpenInference on
``kb_answer``, OTel GenAI elsewhere), at any scale and traffic. It reaches the store only through the real
ingest path (OTLP/JSON lines -> ``ingest_paths``).

API (all you need)::

    from obs_pipelines_tests.second_app import FAILURE_MODES, Profile, SupportBot, ingest_hours

    bot = SupportBot(Profile(requests_per_hour=50, scale=0.1, seed=7))
    requests = bot.hours(start, 70, incidents={start + timedelta(hours=62): "latency_spike"})
    summary = ingest_hours(engine, tmp_path, bot, start, 70, incidents)   # writes the .jsonl, then ingests

- ``Profile(requests_per_hour, scale, seed)``: ~traffic (a day-shaped load around it), a factor on every
  duration and token count (1 = about the project generator's magnitudes; tests use ~0.1 and ~10), the seed.
  An hour's traffic depends only on (seed, hour): adding an incident changes that hour and nothing else.
- ``SupportBot.hour(start, mode=None)`` / ``.hours(start, count, incidents)``: OTLP ExportTraceServiceRequest
  dicts, one per trace.
- ``FAILURE_MODES``: mode -> (what breaks, the group where its cause lives, e.g. ``{"provider": "cohere"}``):
  latency_spike, provider_outage, rate_limits, cost_overrun, tool_loop, wrong_retrieval, prompt_regression,
  hallucination (the rollout guide's failure modes). Each lasts the hour it is given for.
- ``INPUT_MODES``: failure modes of one kind of input (``refund_gap``: kb_answer invents the refund and return
  policies, its other questions are answered well), for the clusters of failing inputs.
- ``write_otlp(path, requests)`` / ``ingest_hours(engine, directory, bot, start, count, incidents)``.

Clean traffic has its own background noise (a few timeouts and 5xx, ~2 % empty retrievals, ~1 % stuck agents),
as a real app does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from obs_pipelines_tests.second_app.generator import FAILURE_MODES, HOUR, INPUT_MODES, Profile, SupportBot

__all__ = ["FAILURE_MODES", "HOUR", "INPUT_MODES", "Profile", "SupportBot", "ingest_hours", "write_otlp"]


def write_otlp(path: str | Path, requests: list[dict]) -> Path:
    """One ExportTraceServiceRequest per line (what an OTLP file exporter writes)."""
    path = Path(path)
    with path.open("wb") as out:
        for request in requests:
            out.write(orjson.dumps(request))
            out.write(b"\n")
    return path


def ingest_hours(engine: Engine, directory: str | Path, bot: SupportBot, start: datetime, count: int,
                 incidents: dict[datetime, str] | None = None, workers: int | None = 0):
    """Generate ``count`` hours, write them as one .jsonl file in ``directory`` and ingest it with the
    project's ingest (``ingest_paths``); returns its IngestSummary."""
    from obs_pipelines.ingest.runner import ingest_paths

    path = write_otlp(Path(directory) / f"helpdesk-{start:%Y%m%d%H}-{count}h.jsonl", bot.hours(start, count, incidents))
    return ingest_paths(engine, [path], workers=workers)
