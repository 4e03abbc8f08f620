"""One hour of a range run that failed: logged and turned into the reason its partition is refused, so the other
hours of the run still land (orchestration.reporting fails the step afterwards, naming the refused hours).

A lost database connection is not an hour's fault: it is raised again, so the run fails as a whole and Dagster's
run retries apply."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

MAX_REASON_CHARS = 500


def hour_failure(context: dg.AssetExecutionContext, key: str, exc: Exception) -> str:
    """The refusal reason of hour ``key`` that raised ``exc`` (logged at ERROR); re-raises a lost connection."""
    if connection_lost(exc):
        raise exc
    reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
    context.log.error(f"hour {key} failed, the run goes on with the others: {reason}")
    return reason


def connection_lost(exc: Exception) -> bool:
    """The database went away (not a statement it refused, e.g. PostgreSQL's "index row size exceeds", which is
    an OperationalError too): an invalidated connection, a driver error without an SQLSTATE, class 08
    (connection exception) or 57P (the server shutting down), SQLite's lock wait running out."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if hasattr(exc.orig, "pgcode"):  # psycopg2: a lost connection has no SQLSTATE
        code = exc.orig.pgcode
        return code is None or code.startswith(("08", "57P"))
    return "locked" in str(exc.orig)  # SQLite
