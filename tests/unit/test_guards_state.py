"""Static guards over state shared by every session of the process (SECURITY_BAR F5, F6): they read files and nothing else.

Cached functions are keyed by user and never read the session; pages keep no module-level per-user state.
Each checker takes source text, so the ``*_catches_*`` tests can show it failing on a bad snippet.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import pytest

from tests.unit.guard_support import PAGES, ROOT, dotted, is_page_script, rel, ui_sources

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
