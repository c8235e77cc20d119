"""Search text folded the same way on both databases: case and accents ignored ("cafe" finds "CAFÉ DU MONDE").

The fold: lower case, then canonical decomposition (NFD: "é" is "e" and a mark), then every combining mark of
U+0300–U+036F dropped, then the few letters whose stroke is no mark (ø ł đ ħ ı) and Greek's final ς mapped to
their plain letter, and the three that read as two (ß æ œ) written out as two (ss ae oe). Each side of a
comparison is folded by the same database, so the two always agree: SQLite through ``finsync_fold`` (this
module's ``fold``, registered on each connection), PostgreSQL through its built-in ``normalize``,
``regexp_replace``, ``translate`` and ``replace`` (no extension; the database must be UTF8, as ``createdb`` makes
it on a UTF-8 system, and ``services.db.check_database`` checks at start-up).

A value that is all ASCII folds to its ``lower()``: both databases take the fast built-in for those and fold
only the rest (see ``services.ledger_listing``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

_EXTRA_FROM, _EXTRA_TO = "øłđħıς", "oldhiσ"
_TWO = {"ß": "ss", "æ": "ae", "œ": "oe"}  # "STRASSE" finds "Straße", "aeble" finds "Æble"
_TABLE = str.maketrans(_EXTRA_FROM, _EXTRA_TO) | str.maketrans(_TWO)
_MARKS = re.compile("[\u0300-\u036f]+")


def fold(value: object) -> object:
    """What ``finsync_fold`` returns on SQLite (NULL and non-text as they are)."""
    if not isinstance(value, str):
        return value
    lowered = value.lower()
    if lowered.isascii():
        return lowered
    return _MARKS.sub("", unicodedata.normalize("NFD", lowered)).translate(_TABLE)


class search_fold(GenericFunction[str]):  # noqa: N801  (SQLAlchemy names functions in lower case)
    """``fold`` in SQL, on either database."""

    inherit_cache = True
    name = "search_fold"


@compiles(search_fold)
def _fold_default(element: search_fold, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    marks = r"'[\u0300-\u036f]'"  # the regular expression's own escapes: the literal stays plain ASCII
    folded = (
        f"translate(regexp_replace(normalize(lower({value}), NFD), {marks}, '', 'g'), '{_EXTRA_FROM}', '{_EXTRA_TO}')"
    )
    for one, two in _TWO.items():
        folded = f"replace({folded}, '{one}', '{two}')"
    return folded


@compiles(search_fold, "sqlite")
def _fold_sqlite(element: search_fold, compiler: Any, **kw: Any) -> str:
    return f"finsync_fold({compiler.process(element.clauses, **kw)})"
