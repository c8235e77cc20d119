"""CSV export cells: a formula hidden behind leading blanks is neutralised too; ordinary text is left alone."""

from __future__ import annotations

import pytest

from services.export import safe_cell


@pytest.mark.parametrize(
    "hostile",
    [" =1+1", "  @SUM(A1)", '\xa0=HYPERLINK("http://evil")', "\u3000+cmd", "\u200d=1+1", " \u2003-2+3", "\t =1"],
)
def test_a_formula_behind_leading_blanks_is_neutralised(hostile: str) -> None:
    cell = safe_cell(hostile)
    assert cell.startswith("'") and cell[1:] == hostile.replace("\t", " ")  # tabs and line breaks read as spaces


@pytest.mark.parametrize("plain", ["  Coffee = good", "Uber Eats 🍔", "  ", "A+B Hardware", "\u200d👩\u200d💻 Studio"])
def test_text_that_is_not_a_formula_is_unchanged(plain: str) -> None:
    assert safe_cell(plain) == plain
