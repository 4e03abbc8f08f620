"""The exemplar trees in the materializations' metadata (markdown): what the UI shows of a request."""

from __future__ import annotations

import math

import pandas as pd

from obs_pipelines.observability.tree import markdown

T0 = pd.Timestamp("2026-11-02 10:00:00")


def _span(span_id, parent, name, kind, ms, **extra) -> dict:
    return {"trace_id": "t1", "span_id": span_id, "parent_span_id": parent, "name": name, "kind": kind,
            "start_time": T0, "end_time": T0 + pd.Timedelta(milliseconds=ms), "status": "ok", **extra}


def test_token_counts_read_as_floats_show_as_whole_numbers_and_missing_ones_not_at_all():
    # a window's spans come with float token columns, NaN where a span has none (a chain, a tool)
    spans = [_span("a", None, "POST /chat", "chain", 900, input_tokens=math.nan, output_tokens=math.nan),
             _span("b", "a", "chat gpt-4o", "llm", 800, input_tokens=1824.0, output_tokens=43.0)]
    text = markdown(spans, "slowest trace t1")
    assert "1824→43 tok" in text
    assert "nan" not in text and "1824.0" not in text


def test_app_strings_cannot_inject_markup_into_the_tree():
    spans = [_span("a", None, "[click](http://evil.example) *bold*", "chain", 10)]
    text = markdown(spans)
    assert "[click](http" not in text and "\\[click\\]\\(http\\:" in text
