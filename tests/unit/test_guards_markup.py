"""Static guards over what pages render (SECURITY_BAR G1, G2): they read files and nothing else.

No raw-HTML sink takes data, and people's and banks' text goes through md() in Markdown-rendering widgets.
Each checker takes source text, so the ``*_catches_*`` tests can show it failing on a bad snippet.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tests.unit.guard_support import ROOT, dotted, rel, ui_sources

# --- G1: no HTML sinks with data ------------------------------------------------------------------
# Calls that render raw HTML. Allowed only with string literals; anything else needs an entry here,
# keyed by file and the stripped source line, with the reason.
HTML_ALLOWLIST: dict[tuple[str, str], str] = {
    ("pages/ui/export_view.py", 'st.html(f\'<a href="/download/{token}" download="{FILE_NAME}">Download CSV</a>\')'): (
        "the token comes from secrets.token_urlsafe in services/downloads.py (A-Z a-z 0-9 - _ only) and FILE_NAME "
        "is a constant: an <a download> to our own route, which st.download_button (served from /media to anyone "
        "with the address) cannot be"
    ),
    ("pages/ui/settings_security.py", "st.html(pending.qr_html)"): (
        "services/totp.py builds it: an <img> whose src is segno's SVG data URI, HTML-escaped, and a constant alt "
        "text; no person's or bank's text (st.image leaves alt empty)"
    ),
}


def _literal(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def html_problems(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    lines = source.splitlines()
    problems: list[str] = []
    sinks = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = dotted(node.func)
        unsafe = next((k for k in node.keywords if k.arg == "unsafe_allow_html"), None)
        checked: list[ast.expr | None] = []
        if unsafe is not None:
            sinks += 1
            if not (isinstance(unsafe.value, ast.Constant) and unsafe.value.value is False):
                checked = [*node.args, *(k.value for k in node.keywords if k.arg == "body")]
        elif func == "html" or func.endswith(".html"):  # st.html, components.html, components.v1.html
            checked = [*node.args, *(k.value for k in node.keywords if k.arg in ("body", "html"))]
        elif func.endswith("components.v2.component"):  # its html= is markup; data goes through data=
            checked = [k.value for k in node.keywords if k.arg == "html"]
        if any(k.arg is None for k in node.keywords) and (unsafe or func.endswith(("markdown", "html", "component"))):
            problems.append(f"{name}:{node.lineno}: **kwargs into an HTML-capable call hide what it renders")
        line = lines[node.lineno - 1].strip()
        if not all(_literal(a) for a in checked) and (name, line) not in HTML_ALLOWLIST:
            problems.append(f"{name}:{node.lineno}: HTML built from data (G1): {line}")
    if source.count("unsafe_allow_html") != sinks:  # spelt some other way: getattr, a dict of kwargs, a comment
        problems.append(f"{name}: 'unsafe_allow_html' appears outside a plain keyword argument")
    return problems


def test_no_html_sink_takes_data() -> None:
    problems = [p for path in ui_sources() for p in html_problems(path.read_text(encoding="utf-8"), rel(path))]
    assert problems == []


def test_html_allowlist_entries_still_exist() -> None:
    for file, line in HTML_ALLOWLIST:
        assert line in (ROOT / file).read_text(encoding="utf-8"), f"stale G1 allowlist entry: {file}: {line}"


def test_html_checker_catches_data_in_html() -> None:
    bad = (
        "import streamlit as st\n"
        "st.markdown(f'<b>{name}</b>', unsafe_allow_html=True)\n"
        "st.html(user.bio)\n"
        "st.components.v1.html('<p>' + note + '</p>')\n"
        "st.markdown(text, **{'unsafe_allow_html': True})\n"
    )
    found = html_problems(bad, "bad.py")
    assert [p.split(":")[1] for p in found if "G1" in p] == ["2", "3", "4"]
    assert any("outside a plain keyword" in p for p in found) and any("**kwargs" in p for p in found)
    ok = "st.markdown('<hr/>', unsafe_allow_html=True)\nst.html('<br>')\nst.markdown(t, unsafe_allow_html=False)\n"
    assert html_problems(ok, "ok.py") == []


# --- G2: people's and banks' text is shown as text in Markdown-rendering widgets -------------------
# Streamlit renders Markdown in messages, captions and widget labels. Text that a user or a bank wrote
# (names, emails, notes) goes through pages.ui.text.md() there, so "**x**" or "[a](b)" shows as typed.
MARKDOWN_SINKS = frozenset({
    "markdown", "write", "caption", "success", "error", "warning", "info", "subheader", "header", "title", "toast",
    "button", "expander", "status", "popover", "page_link", "metric", "checkbox", "radio", "selectbox",
    "multiselect", "text_input", "text_area", "number_input", "date_input", "form_submit_button",
    "download_button", "update", "tabs",
})  # fmt: skip
OUTSIDE_TEXT = frozenset({
    "username", "email", "institution_name", "name", "merchant_name", "official_name", "note", "detail",
    "status_message", "tags", "category_override", "display_message", "label", "user_agent", "ip",
})  # fmt: skip


def _unescaped(expr: ast.expr) -> Iterator[ast.Attribute]:
    """Attributes holding outside text that reach the output without md()."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "md":
        return
    if isinstance(expr, ast.Attribute) and expr.attr in OUTSIDE_TEXT:
        yield expr
        return
    for child in ast.iter_child_nodes(expr):
        if isinstance(child, ast.expr):
            yield from _unescaped(child)


def markdown_problems(source: str, name: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        # help= is a Markdown tooltip on every element that takes one, st.text's too (its body is plain text)
        shown = [k.value for k in node.keywords if k.arg == "help"]
        if node.func.attr in MARKDOWN_SINKS:  # value= is input
            shown += [*node.args, *(k.value for k in node.keywords if k.arg in ("label", "body"))]
        for expr in shown:
            problems += [
                f"{name}:{node.lineno}: .{a.attr} shown as Markdown without md() (G2)" for a in _unescaped(expr)
            ]
    return problems


def test_outside_text_is_escaped_in_markdown_widgets() -> None:
    problems = [p for path in ui_sources() for p in markdown_problems(path.read_text(encoding="utf-8"), rel(path))]
    assert problems == []


def test_markdown_checker_catches_unescaped_outside_text() -> None:
    bad = (
        "st.success(f'{target.username} is disabled.')\n"
        "box.update(label=item.institution_name)\n"
        "st.caption('Note: ' + tx.note)\n"
        "st.button(f'Remove {a.name}')\n"
        "about.text(row.user_agent, help=row.user_agent)\n"
    )
    assert [p.split(":")[1] for p in markdown_problems(bad, "bad.py")] == ["1", "2", "3", "4", "5"]
    ok = (
        "st.success(f'{md(target.username)} is disabled.')\n"
        "st.text_input('Note', value=tx.note)\n"
        "st.write(f'{count(n, \"row\")}')\n"
    )
    assert markdown_problems(ok, "ok.py") == []
