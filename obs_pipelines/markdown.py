"""Markdown for the UI's metadata: strings the apps send (routes, models, user ids, span names) shown as
text, never rendered as markup."""

from __future__ import annotations

import re

# every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one is always
# shown as itself: no link, image, emphasis, HTML tag, entity, autolink (http\://, www\.) or cell border
_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_markdown(text: object) -> str:
    """``text`` as markdown that renders as exactly that text on one line, safe inside a table cell: markup
    characters are backslash-escaped, a line break is shown as ``\\n``, other control characters as
    spaces."""
    escaped = _MD_PUNCTUATION.sub(r"\\\1", str(text))
    return _CONTROL.sub(" ", _LINE_BREAKS.sub(r"\\n", escaped.replace("\t", " ")))
