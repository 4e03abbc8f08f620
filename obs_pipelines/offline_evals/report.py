"""The gate's reports: markdown for a pull-request comment, JUnit XML for any CI.

Everything the apps wrote (inputs, outputs, errors, branch names, scorer names) goes through
``escape_github_markdown``: no HTML, comment, image, link, mention or bidi control of the data renders in
the comment. Long texts are cut to ``TEXT_CHARS`` characters (before escaping, so no escape is cut in half).
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

from obs_pipelines.markdown import escape_github_markdown as md
from obs_pipelines.offline_evals.compare import Comparison, Head

TEXT_CHARS = 300


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _cut(value: object) -> str:
    if value is None:
        return "–"
    text = str(value)
    return md(text[:TEXT_CHARS] + "…") if len(text) > TEXT_CHARS else md(text)


def _head_rows(cmp: Comparison) -> list[str]:
    def row(label: str, h: Head) -> str:
        commit = (h.commit or "(no git)")[:12] + (" (dirty)" if h.dirty else "")
        return (f"| {label} | {md(h.experiment_id)} | {md(commit)} | {md(h.branch or '–')} | "
                f"{md(h.dataset or '–')}\\@{md(h.dataset_version or '–')} | {h.cases} | {h.errors} |")

    return ["| side | experiment | commit | branch | dataset\\@version | cases | errors |",
            "|---|---|---|---|---|---:|---:|", row("candidate", cmp.candidate), row("baseline", cmp.baseline)]


def _rule(cmp: Comparison) -> str:
    level = f"{cmp.confidence:.0%}"
    return (f"A scorer fails when its whole {level} paired bootstrap interval lies below -{cmp.tolerance:g} and "
            f"either the sign test is significant or more than {cmp.max_regressed_share:.0%} of the cases got "
            f"worse (net of those that got better), or when more than {cmp.max_regressed_share:.0%} of the cases "
            f"lost their score (null or missing where the baseline had one; counted as a failure). Scorers on "
            f"one side only fail unless excluded, and so do task errors new in more than "
            f"{cmp.max_regressed_share:.0%} of the cases.")


def _case_details(cmp: Comparison, cases: Mapping[str, Mapping]) -> list[str]:
    """Per regressed scorer: each listed case with its input, both outputs, both scores and errors."""
    lines: list[str] = []
    for s in cmp.regressed:
        lines += ["", f"<details><summary>{md(s.scorer)}: {len(s.worse)} case(s) that got worse or lost their "
                      f"score</summary>", ""]
        for w in s.worse:
            case = cases.get(w["case_id"], {})
            lost = " (lost: counted as a failure)" if w["lost"] else ""
            lines += [f"**case {md(w['case_id'])}**: {_fmt(w['baseline'])} → {_fmt(w['candidate'])}{lost}", "",
                      "| | baseline | candidate |", "|---|---|---|",
                      f"| input | {_cut(case.get('input'))} | |",
                      f"| output | {_cut(case.get('output_b'))} | {_cut(case.get('output_c'))} |",
                      f"| error | {_cut(case.get('error_b'))} | {_cut(case.get('error_c'))} |", ""]
        lines.append("</details>")
    return lines


def markdown_report(cmp: Comparison, cases: Mapping[str, Mapping] | None = None) -> str:
    """A pull-request comment: verdict, heads of both sides, the rule, a table of scorers, scorers on one
    side only, and per regressed scorer the cases (``cases``: case_id -> input, output_b / output_c,
    error_b / error_c)."""
    cases = cases or {}
    level = f"{cmp.confidence:.0%}"
    failures = cmp.failures
    head = (f"### ❌ Eval gate: {len(failures)} failure(s)" if failures
            else "### ✅ Eval gate: no significant regression")
    lines = [head, "", *_head_rows(cmp), "", _rule(cmp), ""]
    if failures:
        lines += [*(f"- {md(f)}" for f in failures), ""]
    if cmp.candidate.dataset_version != cmp.baseline.dataset_version:
        lines += ["Dataset versions differ: only the cases both ran are compared.", ""]
    lines += [f"| scorer | cases | baseline | candidate | delta | {level} CI | sign test p | worse / better / lost "
              f"| verdict |", "|---|---:|---:|---:|---:|---|---:|---|---|"]
    for s in cmp.scorers:
        ci = f"[{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}]" if s.ci_low is not None else "–"
        p = f"{s.p_value:.3g}" if s.p_value is not None else "–"
        lines.append(f"| {md(s.scorer)} | {s.cases} | {_fmt(s.baseline_mean)} | {_fmt(s.candidate_mean)} | "
                     f"{_fmt(s.delta, True)} | {ci} | {p} | {s.worse_cases} / {s.better_cases} / {s.lost_cases} | "
                     f"{s.verdict} |")
    for name in sorted(set(cmp.only_candidate + cmp.only_baseline)):
        side = "candidate" if name in cmp.only_candidate else "baseline"
        state = "excluded" if name in cmp.excluded else "fails the gate"
        lines.append(f"| {md(name)} | – | – | – | – | – | – | – | {side} only: {state} |")
    if cmp.scorer_versions_differ:
        lines += ["", "Scorer versions differ between the sides (options or code changed): "
                  + ", ".join(md(n) for n in cmp.scorer_versions_differ)]
    if cmp.new_errors:
        listed = ", ".join(md(c) for c in cmp.new_errors[:20])
        lines += ["", f"Task errors new in the candidate: {len(cmp.new_errors)} case(s): {listed}"]
    lines += _case_details(cmp, cases)
    return "\n".join(lines) + "\n"


def junit_xml(cmp: Comparison) -> str:
    """One test case per scorer (and one per one-sided scorer, and one for task errors); a failure of the
    gate is a failed test in any CI."""
    tests = []
    for s in cmp.scorers:
        body = ""
        if s.regressed:
            message = (f"mean {_fmt(s.baseline_mean)} -> {_fmt(s.candidate_mean)} (delta {_fmt(s.delta, True)}, CI "
                       f"[{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}]): {'; '.join(s.reasons)}")
            body = f'<failure message={quoteattr(message)} type="regression">{escape(message)}</failure>'
        tests.append((s.scorer, body))
    for name in sorted(set(cmp.only_candidate + cmp.only_baseline) - set(cmp.excluded)):
        message = f"scorer {name} ran on one side only"
        tests.append((name, f'<failure message={quoteattr(message)} type="missing_scorer"/>'))
    message = f"{len(cmp.new_errors)} of {cmp.paired_cases} cases failed in the candidate only"
    tests.append(("task errors", f'<failure message={quoteattr(message)} type="errors"/>'
                  if cmp.errors_regressed else ""))
    cases = [f'  <testcase classname="obs_pipelines.eval_gate" name={quoteattr(n)}>{b}</testcase>' for n, b in tests]
    failures = sum(bool(b) for _n, b in tests)
    suite = quoteattr(f"eval gate {cmp.candidate.experiment_id} vs {cmp.baseline.experiment_id}")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={suite} tests="{len(tests)}" '
            f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
