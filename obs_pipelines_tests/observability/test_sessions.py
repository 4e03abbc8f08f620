"""session_rollup_daily from the traces table: every request with a session counted once in its session, the
session's last request decides whether it ended on an error. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.hourly import hourly_tables
from obs_pipelines.observability.sessions import session_rollup
from obs_pipelines.observability.tables import traces
from obs_pipelines.pricing import load_prices
from obs_pipelines.store import db
from obs_pipelines_tests.observability.conftest import DAY0, hours, load_traffic

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def test_sessions_count_their_turns_errors_and_end_on_their_last_request(store):
    load_traffic(store, "provider_outage")  # many sessions with failed turns
    settings, prices = ObservabilitySettings(baseline_days=1), load_prices()
    requests = []
    for hour in hours():
        frames, _ = hourly_tables(store.engine, hour, hour + HOUR, settings, prices)
        db.replace_windows(store.engine, hour, hour + HOUR, {traces: frames["traces"]})
        requests.append(frames["traces"])
    requests = pd.concat(requests, ignore_index=True).sort_values(["session_id", "start_time"])
    day = DAY0.replace(hour=0)
    sessions = session_rollup(store.engine, day, day + DAY).set_index("session_id")
    by_session = requests.groupby("session_id")
    assert sorted(sessions.index) == sorted(by_session.groups)
    assert (sessions["turns"] == by_session.size()[sessions.index]).all()
    assert (sessions["errors"] == by_session["status"].apply(lambda s: (s == "error").sum())[sessions.index]).all()
    last_failed = by_session["status"].last() == "error"
    assert (sessions["ended_on_error"] == last_failed[sessions.index]).all()
    assert sessions["ended_on_error"].any() and not sessions["ended_on_error"].all()
    multi = sessions[sessions["turns"] > 1]
    assert len(multi) > 0 and (multi["last_seen"] > multi["first_seen"]).all()
    assert (sessions["cost_usd"] - by_session["cost_usd"].sum()[sessions.index]).abs().max() < 1e-9
