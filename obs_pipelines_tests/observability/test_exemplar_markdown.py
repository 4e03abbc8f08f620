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


def test_previews_show_each_figure_in_its_unit():
    # 35 errors of 1,563 are a share of 2.2 % (it read "0.0"); a p95 change of 1,234.5 ms reads 1.2 s; a cost a dollar
    from obs_pipelines.observability.defs import preview_table

    frame = pd.DataFrame({"error_class": ["timeout"], "share": [35 / 1563], "delta_p95_ms": [1234.5],
                          "cost_usd": [0.0026], "error_count": [35]})
    table = preview_table(frame, ["error_class", "share", "delta_p95_ms", "cost_usd", "error_count"])
    # (markdown punctuation escaped, as every cell of app data is)
    assert table.splitlines()[-1] == r"| timeout | 2\.2\% | 1\.2 s | \$0\.0026 | 35 |"
