"""THE definition of a request (one trace), shared by every phase: monitoring's request rollup and
observability's ``traces`` table select from the same SQL, so they can never disagree.

Rules, for a window ``[start, end)``:
* a request is a trace, and it belongs to the window its root span (``parent_span_id IS NULL``) starts
  in: ``req_start`` / ``req_end`` are the root's start and end, so latency = root end - root start;
* a trace with no root span in the window belongs to the window of its first span, if it has no root
  anywhere in the store (looked up by trace_id, through the primary key) and no span before the window:
  ``req_start`` / ``req_end`` = its first start / last end;
* route = the root's route, else any route seen on the trace's spans, else ``(none)``; user_id,
  session_id and service_name follow the same rule (else null);
* a request is an error (``is_error`` = 1) when any of its spans in the window is in status ``error``;
  spans of a trace that start after the window closes do not change its row.
"""

from __future__ import annotations

from collections.abc import Sequence

NULL_LABEL = "(none)"  # value of a dimension the request does not carry
WINDOW = "start_time >= :start AND start_time < :end"

# optional columns: name -> (aggregates over the trace's spans, expression in the outer select)
_OPTIONAL = {
    "trace_id": ("", "t.trace_id"),
    "user_id": ("MIN(CASE WHEN parent_span_id IS NULL THEN user_id END) AS root_user, MIN(user_id) AS any_user,",
                "COALESCE(t.root_user, t.any_user)"),
    "session_id": ("MIN(CASE WHEN parent_span_id IS NULL THEN session_id END) AS root_session, "
                   "MIN(session_id) AS any_session,", "COALESCE(t.root_session, t.any_session)"),
    "service_name": ("MIN(CASE WHEN parent_span_id IS NULL THEN service_name END) AS root_service, "
                     "MIN(service_name) AS any_service,", "COALESCE(t.root_service, t.any_service)"),
}


def requests_sql(postgres: bool, extra: Sequence[str] = ()) -> str:
    """One row per request of the window (binds ``:start`` / ``:end``): route, req_start, req_end, is_error,
    plus the ``extra`` columns asked for (trace_id, user_id, session_id, service_name). Only what is asked
    is aggregated, so a rollup that needs four columns pays for four."""
    unknown = set(extra) - set(_OPTIONAL)
    if unknown:
        raise ValueError(f"unknown request columns {sorted(unknown)}; known: {sorted(_OPTIONAL)}")
    aggregates = "\n           ".join(_OPTIONAL[c][0] for c in extra if _OPTIONAL[c][0])
    selects = "".join(f"{_OPTIONAL[c][1]} AS {c}, " for c in extra)
    # PostgreSQL would turn the NOT EXISTS into a hashed subplan over the whole spans table (cost growing
    # with the store); OFFSET 0 keeps it a per-trace primary-key lookup, run only for rootless traces.
    fence = "OFFSET 0" if postgres else ""
    return f"""
SELECT {selects}COALESCE(t.root_route, t.any_route, '{NULL_LABEL}') AS route,
       CASE WHEN t.has_root = 1 THEN t.root_start ELSE t.first_start END AS req_start,
       CASE WHEN t.has_root = 1 THEN t.root_end ELSE t.last_end END AS req_end,
       t.is_error AS is_error
FROM (
    SELECT trace_id,
           MAX(CASE WHEN parent_span_id IS NULL THEN 1 ELSE 0 END) AS has_root,
           MIN(CASE WHEN parent_span_id IS NULL THEN start_time END) AS root_start,
           MAX(CASE WHEN parent_span_id IS NULL THEN end_time END) AS root_end,
           MIN(start_time) AS first_start,
           MAX(end_time) AS last_end,
           MAX(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS is_error,
           {aggregates}
           MIN(CASE WHEN parent_span_id IS NULL THEN route END) AS root_route,
           MIN(route) AS any_route
    FROM spans
    WHERE {WINDOW}
    GROUP BY trace_id
) t
WHERE t.has_root = 1
   OR NOT EXISTS (
        SELECT 1 FROM spans o
        WHERE o.trace_id = t.trace_id AND (o.parent_span_id IS NULL OR o.start_time < :start)
        {fence}
   )
"""
