"""The gate's markdown report is a pull-request comment: app data in it renders as text, never as markup;
the JUnit file fails one test per failure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
from markdown_it import MarkdownIt

from obs_pipelines.offline_evals import compare
from obs_pipelines.offline_evals.report import junit_xml, markdown_report

HOSTILE = [
    '<img src=x onerror="alert(1)">',  # raw HTML
    "<!-- the rest of the comment is hidden",  # an HTML comment swallowing the report
    "![tracker](https://evil.example/pixel.png)",  # an image that calls home
    "[click](javascript:alert(1))",  # a link
    "cc @octocat and @org/team",  # mentions notify people
    "invoice_\u202egnp.exe",  # bidi override: shows as 'invoice_exe.png'
    "</details> | broken | table\n# heading",  # closes our block, breaks the table, starts a heading
]


def _comparison() -> tuple[compare.Comparison, dict]:
    ids = [f"c{i}" for i in range(len(HOSTILE))]
    base = pd.DataFrame({"case_id": ids, "error": None, "s": 1.0})
    cand = pd.DataFrame({"case_id": ids, "error": None, "s": 0.0})
    cmp = compare.compare_scores(base, cand, ["s"], tolerance=0.02, confidence=0.99, max_regressed_share=0.05,
                                 resamples=200,
                                 candidate_head=compare.Head("cand", "a" * 40, "<b>@octocat</b>", False, "d", "v1"),
                                 baseline_head=compare.Head("base", "b" * 40, "main", False, "d", "v1"))
    cases = {i: {"input": text, "output_b": text, "output_c": text, "error_b": None, "error_c": text}
             for i, text in zip(ids, HOSTILE)}
    return cmp, cases


def _rendered() -> str:
    cmp, cases = _comparison()
    return MarkdownIt("commonmark").enable("table").render(markdown_report(cmp, cases))


def test_app_data_in_the_report_renders_as_text():
    html = _rendered()
    # our own markup only: the <details> blocks and the tables
    assert "<img" not in html and "<!--" not in html and "<a " not in html and "<h1" not in html
    assert html.count("<details>") == html.count("</details>") == 1
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html  # shown, as the user wrote it
    assert "![tracker](https://evil.example/pixel.png)" in html


def test_mentions_and_bidi_controls_are_defused():
    html = _rendered()
    assert "@octocat" not in html and "@org/team" not in html  # a zero-width space after each @
    assert "@\u200boctocat" in html
    assert "\u202e" not in html and "invoice_U+202Egnp.exe" in html


def test_a_long_text_is_cut_before_escaping():
    cmp, cases = _comparison()
    cases["c0"]["input"] = "<" * 1000
    text = markdown_report(cmp, cases)
    assert "\\<" * 300 + "…" in text and "\\<" * 301 not in text


def test_junit_fails_each_regressed_scorer_and_the_errors():
    cmp, _cases = _comparison()
    cmp.new_errors = [f"c{i}" for i in range(len(HOSTILE))]
    cmp.paired_cases = len(HOSTILE)
    suite = ET.fromstring(junit_xml(cmp))
    failed = [t.get("name") for t in suite.iter("testcase") if t.find("failure") is not None]
    assert failed == ["s", "task errors"] and suite.get("failures") == "2"
