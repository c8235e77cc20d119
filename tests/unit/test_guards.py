"""Static guards over the source tree (SECURITY_BAR D9, K3, G1, F5, F6): they read files and nothing else.

Each checker takes source text, so the ``*_catches_*`` tests can show it failing on a bad snippet.
"""

from __future__ import annotations

import ast
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit import config as st_config

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "pages"
CONFIG_FILE = ROOT / ".streamlit" / "config.toml"
THIS_FILE = Path(__file__).resolve()


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


# --- D9 / K3: .streamlit/config.toml --------------------------------------------------------------
MISSING = object()


def streamlit_default(key: str) -> Any:
    return st_config._config_options_template[key].default_val


def effective(conf: dict[str, Any], key: str) -> Any:
    """The value Streamlit will use: the file's, else Streamlit's own default."""
    section, name = key.split(".")
    value = conf.get(section, {}).get(name, MISSING)
    return streamlit_default(key) if value is MISSING else value


def uses_file_uploader() -> bool:
    return any("file_uploader" in p.read_text(encoding="utf-8") for p in ui_sources())


def config_problems(conf: dict[str, Any], *, uploads: bool) -> list[str]:
    problems: list[str] = []
    for section, values in conf.items():  # a misspelt or retired key is silently ignored by Streamlit
        problems += [f"{section}.{k}: not a Streamlit option" for k in values if f"{section}.{k}" not in OPTIONS]
    if effective(conf, "client.showErrorDetails") not in ("none", False):
        problems.append("client.showErrorDetails must be 'none' (K3): tracebacks reach the browser otherwise")
    required = {
        "client.toolbarMode": "viewer",  # K3
        "server.enableXsrfProtection": True,  # D9; Streamlit's default, so absent is fine
        "server.enableCORS": True,  # D9; false sends Access-Control-Allow-Origin: * and any-origin websockets
        "server.enableStaticServing": False,  # K3
        "server.enableAgentApi": False,  # K3
        "server.runOnSave": False,  # K3
        "server.headless": True,  # K3
        "browser.gatherUsageStats": False,  # K3
    }
    problems += [
        f"{k} must be {v!r} (is {effective(conf, k)!r})" for k, v in required.items() if effective(conf, k) != v
    ]
    origins = effective(conf, "server.corsAllowedOrigins")
    if any(o.strip() in ("*", "null") for o in origins):
        problems.append("server.corsAllowedOrigins must not contain '*' or 'null' (D9)")
    if any(h.strip() == "*" for h in conf.get("server", {}).get("allowedHosts", [])):
        problems.append("server.allowedHosts must list hosts, not '*' (D9)")
    if "cookieSecret" in conf.get("server", {}):
        problems.append("server.cookieSecret must not be in the repository: app.py derives it from settings")
    if uploads and effective(conf, "server.maxUploadSize") > 5:
        problems.append("server.maxUploadSize must be <= 5 (MB) once pages take uploads (K3)")
    return problems


OPTIONS = frozenset(st_config._config_options_template)


def test_streamlit_config_is_hardened() -> None:
    conf = tomllib.loads(CONFIG_FILE.read_text(encoding="utf-8"))
    assert config_problems(conf, uploads=uses_file_uploader()) == []


def test_the_defaults_we_rely_on_are_still_streamlits() -> None:
    # XSRF, CORS and the agent API are not all spelt out in config.toml; if Streamlit changes a default, say so.
    assert streamlit_default("server.enableXsrfProtection") is True
    assert streamlit_default("server.enableCORS") is True
    assert streamlit_default("server.enableAgentApi") is False


def test_config_checker_catches_weakened_settings() -> None:
    bad = {
        "server": {
            "enableXsrfProtection": False,
            "enableCORS": False,
            "corsAllowedOrigins": ["null"],
            "maxUploadSize": 50,
        },
        "client": {"showErrorDetails": "full", "toolbarMode": "auto", "showErrorDetail": "none"},
    }
    found = "\n".join(config_problems(bad, uploads=True))
    for needle in ("enableXsrfProtection", "enableCORS", "corsAllowedOrigins", "showErrorDetails must", "toolbarMode",
                   "maxUploadSize", "client.showErrorDetail: not a Streamlit option", "headless"):  # fmt: skip
        assert needle in found


# Flags and environment variables override config.toml; none in the repository may switch these off.
OVERRIDES = re.compile(
    r"(?i)(STREAMLIT_SERVER_ENABLE_(XSRF_PROTECTION|CORS)|--server\.enable(XsrfProtection|CORS))[\s=\"']+(false|0)\b"
    r"|(STREAMLIT_CLIENT_SHOW_ERROR_DETAILS|--client\.showErrorDetails)[\s=\"']+(?!none\b)\w+"
    r"|set_option\(\s*[\"'](server\.enable(XsrfProtection|CORS)|server\.enableStaticServing|client\.showErrorDetails)"
)
SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".hypothesis", ".import_linter_cache", "data",
             "node_modules", "__pycache__"}  # fmt: skip
TEXT_SUFFIXES = {".py", ".toml", ".md", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".example", ".env", ""}


def repo_text_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for file in files:
            path = Path(folder, file)
            if path.suffix in TEXT_SUFFIXES and path.resolve() != THIS_FILE:
                yield path


def test_no_flag_or_env_var_weakens_the_config() -> None:
    hits = [
        f"{rel(p)}:{n}: {line.strip()}"
        for p in repo_text_files()
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OVERRIDES.search(line)
    ]
    assert hits == []


def test_override_pattern_catches_flags() -> None:
    assert OVERRIDES.search("streamlit run app.py --server.enableXsrfProtection false")
    assert OVERRIDES.search("STREAMLIT_SERVER_ENABLE_CORS=false")
    assert OVERRIDES.search('st_config.set_option("client.showErrorDetails", "full")')
    assert not OVERRIDES.search("--server.headless true --browser.gatherUsageStats false")


# --- G1: no HTML sinks with data ------------------------------------------------------------------
# Calls that render raw HTML. Allowed only with string literals; anything else needs an entry here,
# keyed by file and the stripped source line, with the reason. Empty: no page renders raw HTML today.
HTML_ALLOWLIST: dict[tuple[str, str], str] = {}


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


# --- F5: caches are shared by every session of the process ----------------------------------------
CACHE_DECORATORS = ("cache_data", "cache_resource", "lru_cache", "cache")
SESSION_READS = ("st.session_state", "st.context", "st.query_params", "st.user", "st.experimental_user")
USER_PARAMS = ("user_id", "uid")
# Cached functions that hold no per-user data, by file and name, with the reason.
GLOBAL_CACHES = {
    ("pages/ui/state.py", "container"): "engine, cipher, mailer and clock: one per process, no user data",
    ("app.py", "container"): "the server's container for its HTTP routes: one per process, no user data",
}


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    yield from (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def _is_cache(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return dotted(target).rsplit(".", 1)[-1] in CACHE_DECORATORS


def cached_functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Decorated ones, and ``x = st.cache_data(fn)`` / ``st.cache_data(ttl=60)(fn)`` wrappers."""
    defs = {f.name: f for f in _functions(tree)}
    found = [f for f in defs.values() if any(_is_cache(d) for d in f.decorator_list)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (_is_cache(node.func) or _is_cache(node)):
            found += [defs[a.id] for a in node.args if isinstance(a, ast.Name) and a.id in defs]
    return list(dict.fromkeys(found))


def _reads_session(node: ast.AST, readers: set[str]) -> list[str]:
    hits = [dotted(n) for n in ast.walk(node) if isinstance(n, ast.Attribute)]
    hits = [h for h in hits if h.startswith(SESSION_READS)]
    calls = [dotted(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)]
    return hits + [c for c in calls if c.rsplit(".", 1)[-1] in readers]


def session_readers(trees: list[ast.AST]) -> set[str]:
    """Names of functions under pages/ that read the session, cookies or headers, directly or through another."""
    defs = [f for tree in trees for f in _functions(tree)]
    readers: set[str] = set()
    while True:
        more = {f.name for f in defs if f.name not in readers and _reads_session(f, readers)}
        if not more:
            return readers
        readers |= more


def cache_problems(source: str, name: str, readers: set[str]) -> list[str]:
    problems: list[str] = []
    for f in cached_functions(ast.parse(source)):
        where = f"{name}:{f.lineno} {f.name}()"
        reads = _reads_session(f, readers)
        if reads:
            problems.append(f"{where}: a cached function must not read the session ({', '.join(reads)}) (F5)")
        args = f.args
        params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        hidden = [p for p in params if p.lstrip("_") in USER_PARAMS and p.startswith("_")]
        if hidden:
            problems.append(f"{where}: {hidden[0]} starts with '_', so Streamlit leaves it out of the cache key")
        elif (name, f.name) not in GLOBAL_CACHES and not set(params) & set(USER_PARAMS):
            problems.append(f"{where}: a cached function takes user_id (or is listed in GLOBAL_CACHES) (F5)")
    return problems


def _trees() -> dict[str, tuple[str, ast.AST]]:
    out = {}
    for path in ui_sources():
        source = path.read_text(encoding="utf-8")
        out[rel(path)] = (source, ast.parse(source))
    return out


def test_cached_functions_are_keyed_by_user_and_never_read_the_session() -> None:
    trees = _trees()
    readers = session_readers([tree for _, tree in trees.values()])
    assert {"require_user", "require_admin", "current_session", "read_cookie"} <= readers  # the analysis works
    problems = [p for name, (source, _) in trees.items() for p in cache_problems(source, name, readers)]
    assert problems == []


def test_global_cache_entries_still_exist() -> None:
    trees = _trees()
    for file, func in GLOBAL_CACHES:
        names = {f.name for f in cached_functions(trees[file][1])}
        assert func in names, f"stale GLOBAL_CACHES entry: {file} {func}()"


def test_cache_checker_catches_per_user_caches() -> None:
    bad = (
        "import streamlit as st\n"
        "from functools import lru_cache\n"
        "@st.cache_data(ttl=60)\n"
        "def balances(account_id):\n"
        "    return load(require_user().user.id, account_id)\n"
        "@st.cache_data\n"
        "def totals(_user_id):\n"
        "    return 1\n"
        "def _recent(user_id):\n"
        "    return st.session_state['uid']\n"
        "recent = st.cache_data(_recent)\n"
        "@lru_cache\n"
        "def names():\n"
        "    return 1\n"
    )
    found = cache_problems(bad, "bad.py", {"require_user"})
    assert any("balances()" in p and "require_user" in p for p in found)
    assert any("balances()" in p and "takes user_id" in p for p in found)
    assert any("totals()" in p and "cache key" in p for p in found)
    assert any("_recent()" in p and "st.session_state" in p for p in found)
    assert any("names()" in p for p in found)
    ok = "@st.cache_data(ttl=60)\ndef balances(c, user_id, version):\n    return load(c, user_id)\n"
    assert cache_problems(ok, "ok.py", {"require_user"}) == []


# --- F6: no module-level mutable per-user state ---------------------------------------------------
MUTATORS = {"append", "extend", "insert", "update", "add", "setdefault", "pop", "popitem", "clear", "remove",
            "discard", "appendleft", "__setitem__"}  # fmt: skip
MUTABLE_CALLS = {"list", "dict", "set", "defaultdict", "OrderedDict", "deque", "Counter", "bytearray",
                 "WeakValueDictionary", "WeakKeyDictionary"}  # fmt: skip
MUTABLE_NODES = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
CONSTANT_NAME = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, looking into if/try/with/for blocks but not into functions or classes."""
    for stmt in body:
        yield stmt
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_statements([s for s in getattr(stmt, field, []) if isinstance(s, ast.stmt)])
            for handler in getattr(stmt, "handlers", []):
                yield from _module_statements(handler.body)


def _module_bindings(tree: ast.Module) -> dict[str, ast.expr | None]:
    """Names assigned at module level (not imports, functions or classes), with the value when simple."""
    out: dict[str, ast.expr | None] = {}
    for stmt in _module_statements(tree.body):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        out[n.id] = stmt.value if isinstance(target, ast.Name) else None
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            out[stmt.target.id] = stmt.value
        elif isinstance(stmt, ast.For | ast.With):
            for n in ast.walk(stmt.target if isinstance(stmt, ast.For) else stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    out.setdefault(n.id, None)
    return out


def _is_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, MUTABLE_NODES):
        return True
    return isinstance(value, ast.Call) and dotted(value.func).rsplit(".", 1)[-1] in MUTABLE_CALLS


def state_problems(source: str, name: str, *, page_script: bool) -> list[str]:
    tree = ast.parse(source)
    bindings = _module_bindings(tree)
    problems = [f"{name}:{n.lineno}: 'global' in a page (F6)" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    if not page_script:  # imported once per process: every session shares these
        problems += [
            f"{name}: module-level {var} is a mutable container shared by every session (F6); "
            "keep per-user state in st.session_state, or make it an UPPER_CASE constant"
            for var, value in bindings.items()
            if _is_mutable(value) and not CONSTANT_NAME.match(var)
        ]
    for f in _functions(tree):
        local = {a.arg for a in ast.walk(f.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        shared = set(bindings) - local
        for n in ast.walk(f):
            target = None
            if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = n.targets if isinstance(n, ast.Assign | ast.Delete) else [n.target]
                target = next((t.value for t in targets if isinstance(t, ast.Subscript | ast.Attribute)), None)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATORS:
                target = n.func.value
            if isinstance(target, ast.Name) and target.id in shared:
                problems.append(f"{name}:{n.lineno}: {f.name}() changes module-level {target.id} (F6)")
    return problems


def test_pages_keep_no_module_level_per_user_state() -> None:
    problems = [
        p
        for path in ui_sources()
        for p in state_problems(path.read_text(encoding="utf-8"), rel(path), page_script=is_page_script(path))
    ]
    assert problems == []


def test_page_scripts_are_never_imported() -> None:
    # Their top-level state is per-run only because st.navigation executes them afresh; an import would share it.
    scripts = {f"pages.{p.stem}" for p in PAGES.glob("*.py") if is_page_script(p)}
    imports = []
    for path in [*ui_sources(), *sorted((ROOT / "services").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            imports += [f"{rel(path)}:{node.lineno}: {n}" for n in names if n in scripts]
    assert imports == []


@pytest.mark.parametrize("page_script", [True, False])
def test_state_checker_catches_shared_state(page_script: bool) -> None:
    bad = (
        "import streamlit as st\n"
        "_last = {}\n"
        "seen = []\n"
        "def remember(view):\n"
        "    _last['user'] = view.user.id\n"
        "    seen.append(view.user.id)\n"
        "def forget():\n"
        "    global _last\n"
        "    _last = {}\n"
    )
    found = "\n".join(state_problems(bad, "bad.py", page_script=page_script))
    assert "remember() changes module-level _last" in found and "remember() changes module-level seen" in found
    assert "'global'" in found
    assert ("module-level seen is a mutable container" in found) is not page_script
    ok = (
        "import streamlit as st\nSYMBOLS = {'USD': '$'}\n"
        "def f(view):\n    rows = []\n    rows.append(1)\n    st.session_state['x'] = rows\n    st.session_state.pop('y')\n"
    )
    assert state_problems(ok, "ok.py", page_script=False) == []


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
    "status_message", "tags", "category_override", "display_message",
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
        if node.func.attr not in MARKDOWN_SINKS:
            continue
        shown = [*node.args, *(k.value for k in node.keywords if k.arg in ("label", "body"))]  # value= is input
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
    )
    assert [p.split(":")[1] for p in markdown_problems(bad, "bad.py")] == ["1", "2", "3", "4"]
    ok = (
        "st.success(f'{md(target.username)} is disabled.')\n"
        "st.text_input('Note', value=tx.note)\n"
        "st.write(f'{count(n, \"row\")}')\n"
    )
    assert markdown_problems(ok, "ok.py") == []
