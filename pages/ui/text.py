"""Showing people's and banks' text safely inside Markdown-rendering widgets."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")
WORD_JOINER = "\u2060"  # invisible, and no line break where it stands
NO_BREAK_SPACE = "\u00a0"
# The browser's Markdown turns www.x.y, http(s)://x and x@y.z in plain text into links (GFM autolink literals),
# backslash-escaped or not (checked in Chromium): a word joiner before that dot, colon or at sign breaks each
# pattern and looks the same. Amounts and other dots stay as they are.
_AUTOLINK = re.compile(r"(?i)(?<=www)(?=\.)|(?=://)|(?=@)")


def md(text: str) -> str:
    """Escape Markdown so user or bank text is shown literally (no links, no formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, text))


def unbroken(text: str) -> str:
    """``text`` kept on one line inside running text: a narrow column wraps around a date, never inside it (a
    browser breaks at spaces and after hyphens: ``started 2026-12-`` / ``07 12:46 UTC``)."""
    return text.replace(" ", NO_BREAK_SPACE).replace("-", "-" + WORD_JOINER)
