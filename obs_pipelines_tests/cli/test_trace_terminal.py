"""`obs-pipelines trace` prints app text, never obeys it (issue 20.5): escape sequences, C1 controls and bidi
controls in span names, models, tool arguments, documents and errors are shown as visible escapes."""

from __future__ import annotations

from datetime import datetime, timedelta

from click.testing import CliRunner

from obs_pipelines.cli_trace import trace_command
from obs_pipelines.store import db
from obs_pipelines.terminal import terminal_safe

T0 = datetime(2026, 11, 2, 10)
TRACE = "ab" * 16
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
TITLE = "\x1b]0;pwned\x07"  # set the window title (OSC ... BEL)
CSI_C1 = "\x9b31m"  # the one-character CSI of C1: red from here on
RLO = "\u202e"  # right-to-left override: "txt.exe" shown as "exe.txt"


def span(span_id: str, parent: str | None, kind: str, **extra) -> dict:
    return {"trace_id": TRACE, "span_id": span_id, "parent_span_id": parent, "kind": kind, "status": "ok",
            "start_time": T0, "end_time": T0 + timedelta(milliseconds=200), "route": "search", **extra}


def hostile_trace() -> list[dict]:
    return [
        span("0000000000000001", None, "chain", name=f"root{CLEAR}"),
        span("0000000000000002", "0000000000000001", "llm", name=f"call{TITLE}", model=f"gpt{CSI_C1}-4o"),
        span("0000000000000003", "0000000000000001", "tool", name="lookup", input=f"{{\"q\": \"{RLO}exe.txt\"}}",
             output=f"ok{CLEAR}"),
        span("0000000000000004", "0000000000000001", "retrieval", name="search_docs",
             attributes={"retrieval.documents": [{"id": f"d{CLEAR}", "score": 0.9, "content": f"text{TITLE}"}]}),
        span("0000000000000005", "0000000000000001", "tool", name="fail", status="error",
             error_type=f"Boom{CSI_C1}", error_message=f"bad{CLEAR}"),
    ]


def test_the_printed_tree_shows_control_sequences_as_escapes_and_never_emits_them(store):
    db.insert_spans(store.engine, hostile_trace())
    out = CliRunner().invoke(trace_command, [TRACE, "--db-url", store.db_url]).output
    for raw in ("\x1b", "\x9b", "\x07", RLO):
        assert raw not in out
    assert "root\\x1b[2J\\x1b[H" in out and "gpt\\x9b31m-4o" in out and "\\u202eexe.txt" in out
    assert "bad\\x1b[2J" in out and "text\\x1b]0;pwned\\x07" in out


def test_terminal_safe_leaves_ordinary_text_alone_and_escapes_each_control():
    # by eye: accents, CJK and emoji are text; ESC, DEL, a C1 and the bidi override are shown as their code
    assert terminal_safe("café 東京 🙂 a-b_c") == "café 東京 🙂 a-b_c"
    assert terminal_safe("a\x1bb\x7fc\x85d\u202ee") == "a\\x1bb\\x7fc\\x85d\\u202ee"
