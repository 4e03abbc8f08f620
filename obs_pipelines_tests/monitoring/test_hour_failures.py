"""A range run never lets one hour's failure stop the others (issue 20.1): the failing hour is refused with its
reason, the others land; a lost database connection fails the run as a whole (Dagster's run retries apply)."""

from __future__ import annotations

import random
from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.hours import hour_key
from obs_pipelines.monitoring import rollups
from obs_pipelines.orchestration.hours import connection_lost
from obs_pipelines_tests.monitoring.test_defs import (  # noqa: F401
    START,
    definitions,
    loaded,
    run_hours,
    table,
    traces_file,
)


def test_an_hour_that_raises_is_refused_and_the_other_hours_of_the_range_land(loaded, monkeypatch):  # noqa: F811
    first, bad_hour, last = START + timedelta(hours=13), START + timedelta(hours=14), START + timedelta(hours=15)
    real = rollups.hourly_rollups

    def failing_at_14(engine, start, *args, **kwargs):  # stands in for any error one hour's data triggers
        if start == bad_hour:
            raise ValueError("cannot roll this hour up")
        return real(engine, start, *args, **kwargs)

    monkeypatch.setattr(rollups, "hourly_rollups", failing_at_14)
    defs, instance = definitions(loaded), dg.DagsterInstance.ephemeral()
    result = run_hours(defs, instance, first, last)
    assert not result.success
    assert set(table(loaded, "request_rollup_hourly")["window_start"]) == {pd.Timestamp(first), pd.Timestamp(last)}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    reasons = failure.step_failure_data.user_failure_data.metadata["reasons"].value
    assert reasons == {hour_key(bad_hour): ["ValueError: cannot roll this hour up"]}


def _error_of(engine, statement: str) -> sa.exc.DBAPIError:
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        conn.exec_driver_sql(statement)
    return caught.value


def test_a_statement_the_database_refuses_is_an_hours_failure_not_a_lost_connection(store):
    if store.engine.dialect.name == "postgresql":
        # PostgreSQL's btree refusal of a long key is an OperationalError (SQLSTATE 54000), yet the hour's fault
        rng = random.Random(1)
        value = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(9000))
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE long_keys (v text)")
            conn.exec_driver_sql("CREATE INDEX ix_long_keys ON long_keys (v)")
        refused = _error_of(store.engine, f"INSERT INTO long_keys VALUES ('{value}')")
        assert isinstance(refused, sa.exc.OperationalError)
    else:
        refused = _error_of(store.engine, "SELECT * FROM no_such_table")
    assert not connection_lost(refused)


def test_a_killed_connection_counts_as_lost(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    with store.engine.connect() as victim:
        pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with store.engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            admin.commit()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            victim.exec_driver_sql("SELECT 1")
    assert connection_lost(caught.value)
