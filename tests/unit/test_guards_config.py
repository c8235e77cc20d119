"""Static guards over Streamlit's configuration (SECURITY_BAR D9, K3): they read files and nothing else.

``.streamlit/config.toml`` is hardened, and no flag or environment variable in the repository switches it back.
Each checker takes text, so the ``*_catches_*`` tests can show it failing on a bad snippet.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamlit import config as st_config

from tests.unit.guard_support import ROOT, rel, ui_sources

CONFIG_FILE = ROOT / ".streamlit" / "config.toml"
THIS_FILE = Path(__file__).resolve()


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
        "client.disableDataExport": True,  # a table's own CSV download would bypass the audited, re-checked export
        "server.enableXsrfProtection": True,  # D9; Streamlit's default, so absent is fine
        "server.enableCORS": True,  # D9; false sends Access-Control-Allow-Origin: * and any-origin websockets
        "server.enableStaticServing": False,  # K3
        "server.enableAgentApi": False,  # K3
        "server.runOnSave": False,  # K3
        "server.headless": True,  # K3
        "browser.gatherUsageStats": False,  # K3
        "logger.enableRich": False,  # I3: a page's uncaught error goes through logging, where values are withheld
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
