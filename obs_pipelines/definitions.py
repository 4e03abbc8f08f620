"""The code location: `defs` assembled from ingest plus the phases enabled in settings.

Each phase package has a `defs.py` with `build_defs(settings) -> Definitions`; this file only
assembles them, so switching a phase off in the settings YAML removes its asset group, jobs,
schedules and sensors from the UI.
"""

from __future__ import annotations

import importlib
import os
import warnings

import dagster as dg

from obs_pipelines.ingest.defs import build_landing_sensor, ingest_file_job
from obs_pipelines.ingest.landing import LandingPolicy
from obs_pipelines.orchestration.raw_assets import build_spans_arrival_sensor, spans_spec
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import DB_URL_ENV, PHASE_MODULES, PHASES, Settings, load_settings

# backfill_policy and friends are marked beta; their warnings would greet every user on each load
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)



def available_phases(settings: Settings) -> list[str]:
    """Enabled phases that this version ships, in rollout order."""
    return [p for p in PHASES if settings.phase_enabled(p) and PHASE_MODULES[p]]


def trace_store_resource(settings: Settings) -> TraceStore:
    """The store's URL goes through ``dg.EnvVar`` when it comes from the environment: Dagster then keeps
    only the variable's name in the code location's snapshot, the run storage and the UI, never a password
    in the URL. The default (a local SQLite file, or a URL set in code) is plain config."""
    if os.environ.get(DB_URL_ENV) == settings.db_url:
        return TraceStore(db_url=dg.EnvVar(DB_URL_ENV))
    return TraceStore(db_url=settings.db_url)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    foundation = dg.Definitions(
        assets=[spans_spec(settings)],
        jobs=[ingest_file_job],
        sensors=[build_landing_sensor(settings.landing_dir, LandingPolicy.from_settings(settings)),
                 build_spans_arrival_sensor(settings)],
        resources={"trace_store": trace_store_resource(settings)},
    )
    phases = [
        importlib.import_module(PHASE_MODULES[p]).build_defs(settings)
        for p in available_phases(settings)
    ]
    defs = dg.Definitions.merge(foundation, *phases)
    if settings.alerts.rules:  # the rules become checks on the assets above, plus the alert sensors
        from obs_pipelines.alerts.defs import build_defs as build_alert_defs
        from obs_pipelines.alerts.defs import schedule_minutes

        keys = [k.to_user_string() for k in defs.resolve_all_asset_keys()]
        defs = dg.Definitions.merge(defs, build_alert_defs(settings, keys, schedule_minutes(defs)))
    return defs


defs = build_definitions()
