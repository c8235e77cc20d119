"""Text from outside (a bank, a person) made safe to store and show: no control, format or lone surrogate characters.

PostgreSQL refuses NUL and lone surrogates in text (one such merchant name would fail every sync of its bank),
and bidi overrides and other invisible format characters make a name read as something else (``PayPal
\\u202egnp.exe``). The zero-width joiner stays: emoji sequences need it. Tabs and line breaks become spaces.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

_ZWJ = 0x200D
_BLANKS = {ord(ch): " " for ch in "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"}


def _format_characters() -> str:
    """Every Unicode format character (category Cf) but the zero-width joiner; they live in these planes."""
    planes = itertools.chain(range(0x20000), range(0xE0000, 0xE1000))
    return "".join(re.escape(chr(cp)) for cp in planes if cp != _ZWJ and unicodedata.category(chr(cp)) == "Cf")


UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u2028\\u2029{_format_characters()}]")


def clean(text: str) -> str:
    """``text`` without unsafe characters (line breaks and tabs as spaces); unchanged, and fast, when it has none."""
    if text.isprintable() or UNSAFE.search(text) is None:  # isprintable: one C pass; false for more than UNSAFE
        return text
    return UNSAFE.sub("", text.translate(_BLANKS))


def escaped(text: str) -> str:
    """An identifier that must not change meaning: unsafe characters written as ``\\x00``-style escapes."""
    if text.isprintable() or UNSAFE.search(text) is None:
        return text
    return UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)
