"""How ``eval_scores`` rows are stored compactly (issue 23: the wide table was larger than ``spans`` itself).

``eval_scores`` is a view; an hour's rows are written as
* ``eval_responses``: each scored response once (trace, span, kind, route, model, prompt version), numbered
  ``response`` = epoch hour << 24 + its rank in the hour, so an hour's responses are one range of numbers;
* ``eval_scorer_refs``: each (rule, scorer, scorer version, threshold) once, referenced by a small id;
* ``eval_texts``: each reason and details text once (most repeat: 'no tool calls', '{"markers": 2}');
* ``eval_results``: per (response, scorer ref) only what differs per score: score, reason and details as text
  ids (details only when they say something, ``informative_details``), error, scored_at as seconds after the
  window start. ``passed`` is not stored: the view computes ``score >= threshold``, as scoring does.
Texts and scorer refs are never deleted (a re-score may leave a few unreferenced ones: they are small).

``frames`` turns an hour's wide frame into the two window tables for ``db.replace_windows`` (eval_results
deletes its window by the hour's range of response numbers); ``insert_scores`` appends wide rows (tools, tests
that plant scores).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import timedelta

import numpy
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.online_evals.tables import (
    EPOCH,
    HOUR_BITS,
    eval_responses,
    eval_results,
    eval_scorer_refs,
    eval_texts,
    hour_base,
    response_range,
)
from obs_pipelines.store import bulk, db, locks

_EPOCH = EPOCH
_REF_COLUMNS = ("rule", "scorer", "scorer_version", "threshold")
_RESPONSE_COLUMNS = [c.name for c in eval_responses.columns]
_RESULT_COLUMNS = [c.name for c in eval_results.columns]

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _empty(value) -> bool:
    return _missing(value) or (isinstance(value, str | list | dict | tuple) and len(value) == 0)


def informative_details(details: Mapping) -> dict:
    """The details without the keys that say nothing (None, '', [] or {}): most scores' details are such."""
    return {k: v for k, v in details.items() if not _empty(v)}


def ref_key(rule, scorer, version, threshold) -> str:
    threshold = None if _missing(threshold) else float(threshold)
    rule = None if _missing(rule) else str(rule)
    return json.dumps([rule, str(scorer), str(version), threshold])


def ref_keys(refs: pd.DataFrame) -> list[str]:
    """ref_key of every (rule, scorer, scorer_version, threshold) row of ``refs``, each distinct set encoded once
    (an hour holds ~10^5 rows and a handful of sets)."""
    rows = refs[list(_REF_COLUMNS)].astype(object)
    rows = rows.where(rows.notna(), None)  # NaN is not equal to itself: as a dictionary key it would never repeat
    cache: dict[tuple, str] = {}
    return [cache.get(row) or cache.setdefault(row, ref_key(*row)) for row in rows.itertuples(index=False, name=None)]


def scorer_ids(engine: Engine, refs: pd.DataFrame) -> dict[str, int]:
    """ref_key -> id for every (rule, scorer, scorer_version, threshold) row of ``refs``, stored if new."""
    keys = dict.fromkeys(ref_keys(refs))
    with engine.connect() as conn:  # a handful of sets an hour: read each time (a store may be wiped and reused)
        known = dict(conn.execute(sa.select(eval_scorer_refs.c.ref_key, eval_scorer_refs.c.id)
                                  .where(eval_scorer_refs.c.ref_key.in_(list(keys)))).all())
    missing = [k for k in keys if k not in known]
    if missing:
        with locks.begin(engine) as conn:
            locks.lock_window(conn, eval_scorer_refs.fullname, _EPOCH, _EPOCH)  # one writer of new sets at a time
            found = dict(conn.execute(sa.select(eval_scorer_refs.c.ref_key, eval_scorer_refs.c.id)
                                      .where(eval_scorer_refs.c.ref_key.in_(missing))).all())
            new = [k for k in missing if k not in found]
            if new:
                conn.execute(sa.insert(eval_scorer_refs), [
                    {"ref_key": k, **dict(zip(_REF_COLUMNS, json.loads(k), strict=True))} for k in new])
                found.update(conn.execute(sa.select(eval_scorer_refs.c.ref_key, eval_scorer_refs.c.id)
                                          .where(eval_scorer_refs.c.ref_key.in_(new))).all())
        known.update(found)
    return {k: known[k] for k in keys}


def _text_hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()


def text_ids(engine: Engine, texts: Iterable) -> dict[str, int]:
    """text -> id in eval_texts for every non-null text of ``texts``, stored if new."""
    # in hash order: new texts get their ids in the same order in every process (a set's order of strings
    # changes with Python's per-process hash seed, so two runs of the same hours numbered their texts apart)
    by_hash = dict(sorted((_text_hash(t), t) for t in {str(t).replace("\x00", "") for t in texts if not _missing(t)}))
    if not by_hash:
        return {}
    found: dict[str, int] = {}
    with engine.connect() as conn:
        for chunk in _chunks(list(by_hash), 500):
            found.update(conn.execute(sa.select(eval_texts.c.text_hash, eval_texts.c.id)
                                      .where(eval_texts.c.text_hash.in_(chunk))).all())
    new = [h for h in by_hash if h not in found]
    if new:
        with locks.begin(engine) as conn:
            locks.lock_window(conn, eval_texts.fullname, _EPOCH, _EPOCH)  # one writer of new texts at a time
            for chunk in _chunks(new, 500):
                found.update(conn.execute(sa.select(eval_texts.c.text_hash, eval_texts.c.id)
                                          .where(eval_texts.c.text_hash.in_(chunk))).all())
            missing = [h for h in new if h not in found]
            if missing:
                conn.execute(sa.insert(eval_texts), [{"text_hash": h, "text": by_hash[h]} for h in missing])
                for chunk in _chunks(missing, 500):
                    found.update(conn.execute(sa.select(eval_texts.c.text_hash, eval_texts.c.id)
                                              .where(eval_texts.c.text_hash.in_(chunk))).all())
    return {text: found[h] for h, text in by_hash.items()}


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _text_refs(values: pd.Series, ids: Mapping[str, int]) -> pd.Series:
    return values.map(lambda v: None if _missing(v) else ids[str(v).replace("\x00", "")]).astype("Int64")


def _seconds_after(values: pd.Series, starts: pd.Series) -> pd.Series:
    times = pd.to_datetime(values, utc=True, format="mixed").dt.tz_convert(None)
    seconds = (times - pd.to_datetime(starts)).dt.total_seconds()
    return numpy.floor(seconds).astype("Int64")  # (floor: a kept score never looks newer than it was)


def split(frame: pd.DataFrame, ids: Mapping[str, int], texts: Mapping[str, int],
          first: Mapping[int, int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(eval_responses rows, eval_results rows) of a wide ``frame`` of eval_scores rows; responses are
    numbered in the order they first appear in each hour, from ``first[hour base]`` (default: the base)."""
    if frame.empty:
        return pd.DataFrame(columns=_RESPONSE_COLUMNS), pd.DataFrame(columns=_RESULT_COLUMNS)
    frame = frame.reset_index(drop=True)
    starts = pd.to_datetime(frame["window_start"])
    bases = ((starts - pd.Timestamp(_EPOCH)) // pd.Timedelta(hours=1)).astype("int64") * (1 << HOUR_BITS)
    span_ids = frame["span_id"] if "span_id" in frame else pd.Series([None] * len(frame))
    codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([bases, frame["trace_id"], span_ids.fillna("")]))
    firsts = pd.Series(range(len(frame))).groupby(codes).first()  # each response's first row
    heads = frame.loc[firsts.to_numpy()].reset_index(drop=True)
    head_bases = bases.loc[firsts.to_numpy()].reset_index(drop=True)
    start_at = head_bases.map(lambda b: (first or {}).get(b, b))
    responses = heads.reindex(columns=_RESPONSE_COLUMNS)
    responses["response"] = (start_at + head_bases.groupby(head_bases).cumcount()).astype("int64")
    if "window_end" not in heads or heads["window_end"].isna().any():
        responses["window_end"] = pd.to_datetime(heads["window_start"]) + pd.Timedelta(hours=1)
    wide = frame.reindex(columns=[*_REF_COLUMNS, "score", "scored_at", "reason", "details", "error"])
    results = pd.DataFrame({
        "response": responses["response"].to_numpy()[codes],
        "score": wide["score"],
        "scorer_ref": [ids[k] for k in ref_keys(wide)],
        "scored_at": _seconds_after(wide["scored_at"], starts),
        "reason_ref": _text_refs(wide["reason"], texts),
        "details_ref": _text_refs(wide["details"], texts),
        "error": wide["error"],
    }, columns=_RESULT_COLUMNS)
    return responses, results


def _texts(frame: pd.DataFrame) -> list:
    return [v for c in ("reason", "details") if c in frame for v in frame[c].dropna().unique()]


def frames(engine: Engine, frame: pd.DataFrame) -> dict[sa.Table, pd.DataFrame]:
    """An hour's wide eval_scores frame as the frames of its window tables, for ``db.replace_windows``."""
    ids = scorer_ids(engine, frame.reindex(columns=list(_REF_COLUMNS))) if not frame.empty else {}
    texts = text_ids(engine, _texts(frame))
    responses, results = split(frame, ids, texts)
    return {eval_responses: responses, eval_results: results}


def insert_scores(engine: Engine, records: Iterable[Mapping] | pd.DataFrame) -> int:
    """Append wide eval_scores rows (window_start, trace_id, span_id, scorer, score ...; window_end defaults to
    the next hour) after the rows their hours hold. For tools and tests: the phase replaces whole hours."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty:
        return 0
    frame = frame.reindex(columns=sorted(set(frame.columns) | {"rule", "threshold", "scorer_version"}))
    db.create_tables(engine)
    ids = scorer_ids(engine, frame.reindex(columns=list(_REF_COLUMNS)))
    bases = {hour_base(pd.Timestamp(s).to_pydatetime()) for s in frame["window_start"]}
    with engine.connect() as conn:
        first = {b: (conn.execute(sa.select(sa.func.max(eval_responses.c.response)).where(
            eval_responses.c.response >= b, eval_responses.c.response < b + (1 << HOUR_BITS))).scalar() or b - 1) + 1
            for b in bases}
    responses, results = split(frame, ids, text_ids(engine, _texts(frame)), first)
    with locks.begin(engine) as conn:
        bulk.write_frame(conn, eval_responses, responses)
        written = bulk.write_frame(conn, eval_results, results)
        for base in sorted(bases):  # the hours changed: steps reading them compute them again
            hour = EPOCH + timedelta(hours=base >> HOUR_BITS)
            db.stamp_windows(conn, hour, hour + timedelta(hours=1), {"eval_scores": written})
    return written


__all__ = ["HOUR_BITS", "frames", "hour_base", "informative_details", "insert_scores", "ref_key", "ref_keys",
           "response_range", "scorer_ids", "split", "text_ids"]
