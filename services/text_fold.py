"""Search text folded the same way on both databases: case and accents ignored ("cafe" finds "CAFÉ DU MONDE").

A letter with a mark (é, ö, ł, ά) counts as its base letter, in Latin and Greek, and a mark written on its own
(a decomposed "é") is dropped. Each side of a comparison is folded by the same database, so the two always
agree: SQLite through ``finsync_fold`` (Python's ``str.lower``, then the table; registered on each
connection), PostgreSQL through ``translate(lower(x), FROM, TO)`` over the same table (built in, no extension).
Letters that fold into two (ß, æ, œ) stay as they are: ``translate`` maps one letter to one.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

_MARKS = "".join(chr(cp) for cp in range(0x300, 0x370))  # combining diacritical marks
_EXTRA = {"ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ħ": "h", "Ħ": "h", "ı": "i", "ς": "σ"}


def _pairs() -> dict[str, str]:
    """Each marked letter of Latin and Greek (either case: PostgreSQL's ``lower`` under a C locale leaves them) to
    its plain lower-case letter."""
    pairs = dict(_EXTRA)
    for cp in (*range(0xC0, 0x250), *range(0x370, 0x400)):
        ch = chr(cp)
        parts = unicodedata.normalize("NFD", ch)
        if len(parts) > 1 and parts[0].isalpha() and all(unicodedata.combining(p) for p in parts[1:]):
            pairs[ch] = parts[0].lower()
    return pairs


_PAIRS = _pairs()
FOLD_FROM = "".join(_PAIRS) + _MARKS  # translate() drops what has no counterpart: the marks
FOLD_TO = "".join(_PAIRS.values())
_TABLE = str.maketrans({**_PAIRS, **dict.fromkeys(_MARKS, None)})


def fold(value: object) -> object:
    """What ``finsync_fold`` returns on SQLite: lower case, marks dropped (NULL and non-text as they are)."""
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    return lowered if lowered.isascii() else lowered.translate(_TABLE)


class search_fold(GenericFunction[str]):  # noqa: N801  (SQLAlchemy names functions in lower case)
    """``fold`` in SQL, on either database."""

    inherit_cache = True
    name = "search_fold"


@compiles(search_fold)
def _fold_default(element: search_fold, compiler: Any, **kw: Any) -> str:
    return f"translate(lower({compiler.process(element.clauses, **kw)}), '{FOLD_FROM}', '{FOLD_TO}')"


@compiles(search_fold, "sqlite")
def _fold_sqlite(element: search_fold, compiler: Any, **kw: Any) -> str:
    return f"finsync_fold({compiler.process(element.clauses, **kw)})"
