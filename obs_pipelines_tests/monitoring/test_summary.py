"""Markdown metadata: strings the apps send (routes, models, user ids) are shown as text, never rendered."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from obs_pipelines.markdown import escape_markdown
from obs_pipelines.monitoring.summary import markdown_table, preview

HOSTILE = [
    ("a|b", r"a\|b"),
    ("line1\nline2\r\nline3\rline4", r"line1\nline2\nline3\nline4"),
    ("[click me](https://evil.example/x)", r"\[click me\]\(https\:\/\/evil\.example\/x\)"),
    ("![pixel](https://evil.example/p.png)", r"\!\[pixel\]\(https\:\/\/evil\.example\/p\.png\)"),
    ("<img src=x onerror=alert(1)>", r"\<img src\=x onerror\=alert\(1\)\>"),
    ("see www.evil.example", r"see www\.evil\.example"),
    ("**bold** _it_ `code` # title", r"\*\*bold\*\* \_it\_ \`code\` \# title"),
    ("&lt;b&gt;", r"\&lt\;b\&gt\;"),
    ("back\\slash", r"back\\slash"),
    ("tab\tand\x00nul", "tab and nul"),
    ("rag_qa", r"rag\_qa"),
    # bidi override: "invoice_<RLO>gnp.exe" would read "invoice_exe.png"; shown as its code point instead
    ("invoice_\u202egnp.exe", r"invoice\_U\+202Egnp\.exe"),
    ("a\u2066b\u200fc", r"aU\+2066bU\+200Fc"),  # isolates and marks too
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_user_strings_in_markdown_metadata_are_escaped(text, expected):
    assert escape_markdown(text) == expected


def test_a_hostile_route_keeps_the_table_one_row_per_line_with_its_columns():
    frame = pd.DataFrame({
        "dimension": ["route", "model"],
        "dimension_value": ["evil|route\n| injected | row |\n![x](https://e.example/i.png)", "[gpt-4o](https://e.x)"],
        "request_count": [5, 3],
        "error_rate": [0.2, 0.0],
    })
    table = markdown_table(frame, list(frame.columns), "request_count")
    lines = table.split("\n")
    assert len(lines) == 2 + len(frame)  # header, rule, one line per row
    for line in lines[2:]:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert len(cells) == 4, line
    assert "](" not in table.replace("\\]\\(", "")
    assert "![" not in table.replace("\\!\\[", "")


def test_preview_escapes_user_strings():
    frame = pd.DataFrame({"dimension": ["user"], "dimension_value": ["[me](javascript:alert(1))"],
                          "call_count": [1], "input_tokens": [1], "output_tokens": [1], "cost_usd": [0.5]})
    assert r"\[me\]\(javascript\:alert\(1\)\)" in preview("usage", frame)
