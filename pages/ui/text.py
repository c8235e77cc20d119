"""Showing people's and banks' text safely inside Markdown-rendering widgets."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def md(text: str) -> str:
    """Escape Markdown so user or bank text is shown literally (no links, no formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", text)
