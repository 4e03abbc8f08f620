"""App text on a terminal: strings the apps send (span names, models, tool arguments, errors) printed as text,
never as control sequences. An ESC sequence in a span name could clear the screen (ESC[2J), move the cursor,
retitle the window or hide what follows; rich strips only BEL, BS, VT, FF and CR."""

from __future__ import annotations

import re

# C0 controls (ESC among them), DEL, C1 controls (U+009B is a one-character CSI), bidirectional controls and
# zero-width marks (U+202E shows "exe.txt" for "txt.exe"): each shown as a visible escape
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``): prints as one line of
    exactly what the app sent, with no effect on the terminal."""
    return _UNSAFE.sub(_visible, str(text))
