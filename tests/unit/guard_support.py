"""Shared by the static guards (tests/unit/test_guards_*.py): the repository's UI sources and AST helpers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "pages"


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def ui_sources() -> list[Path]:
    """Files Streamlit code runs from: app.py and everything under pages/."""
    return [ROOT / "app.py", *sorted(PAGES.rglob("*.py"))]


def is_page_script(path: Path) -> bool:
    """pages/*.py are run by st.navigation in a fresh namespace on every rerun; the rest are imported once."""
    return path.parent == PAGES and path.name != "__init__.py"


def dotted(node: ast.AST) -> str:
    """``st.components.v1.html`` for an attribute chain on a name; "" for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return ""
