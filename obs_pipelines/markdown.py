"""Markdown for the UI's metadata: strings the apps send (routes, models, user ids, span names) shown as
text, never rendered as markup."""

from __future__ import annotations

import re

# every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one is always
# shown as itself: no link, image, emphasis, HTML tag, entity, autolink (http\://, www\.) or cell border
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# bidirectional controls (U+202E shows "exe.txt" for "txt.exe") and zero-width marks: shown as their code point
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# a mention / team mention GitHub would notify once the escaped "\@" is rendered back to "@"
_MENTION = re.compile(r"\\@(?=[A-Za-z0-9])")


def escape_markdown(text: object) -> str:
    """``text`` as markdown that renders as exactly that text on one line, safe inside a table cell: markup
    characters are backslash-escaped, a line break is shown as ``\\n``, other control characters as
    spaces, bidirectional controls as their code point (``U+202E``)."""
    escaped = _MD_PUNCTUATION.sub(r"\\\1", _BIDI.sub(lambda m: f"U+{ord(m.group()):04X}", str(text)))
    return _CONTROL.sub(" ", _LINE_BREAKS.sub(r"\\n", escaped.replace("\t", " ")))


def escape_github_markdown(text: object) -> str:
    """:func:`escape_markdown` for GitHub comments, which link ``@name`` after rendering even when escaped: a
    zero-width space after the ``@`` keeps the text readable and notifies nobody."""
    return _MENTION.sub("\\\\@\u200b", escape_markdown(text))
