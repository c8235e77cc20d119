"""No real secret is committed (security bar H4: keys outside the repository): a scan of every source file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".toml",
    ".txt",
    ".yml",
    ".yaml",
    ".cfg",
    ".ini",
    ".js",
    ".html",
    ".example",
    ".json",
    "",
}
LOCAL_SECRET_FILES = {".env", "secrets.env"}  # where secrets belong: git-ignored, never committed
SKIP_DIRS = {".git", ".venv", "data", "__pycache__", "node_modules", "artifacts", ".mypy_cache", ".ruff_cache"}
SECRET_SHAPES = {
    "a private key": re.compile(r"-----BEGIN (?:EC |RSA |OPENSSH )?PRIVATE KEY-----"),
    "a key ring entry (32 random bytes)": re.compile(r"\b\d{1,9}:[A-Za-z0-9+/]{43}="),
    "a Plaid token": re.compile(
        r"\b(?:access|public|link)-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-"
    ),
    "a secret setting with a value": re.compile(
        r"^\s*(?:FINSYNC_SECRET_KEY|FINSYNC_ENCRYPTION_KEYS|PLAID_SECRET)\s*=\s*['\"]?[A-Za-z0-9+/=_:,-]{20,}",
        re.MULTILINE,
    ),
}


def findings(text: str) -> list[str]:
    return [name for name, shape in SECRET_SHAPES.items() if shape.search(text)]


def source_files() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file() and path.suffix in TEXT_SUFFIXES and not SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
    ]


def test_no_file_in_the_repository_holds_a_secret() -> None:
    files = source_files()
    assert len(files) > 100 and ROOT / ".env.example" in files  # the scan sees the tree
    leaks = {str(p.relative_to(ROOT)): hits for p in files if (hits := findings(p.read_text(errors="replace")))}
    assert leaks == {}


def test_the_scan_recognises_each_kind_of_secret() -> None:
    key = "A" * 42 + "Q="  # the shape of base64 of 32 bytes
    samples = {
        "a private key": "-----BEGIN EC " + "PRIVATE KEY-----",  # (split, so this file does not match itself)
        "a key ring entry (32 random bytes)": f"FINSYNC_ENCRYPTION_KEYS=1:{key[:43]}=",
        "a Plaid token": "access-" + "production-1a2b3c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d",
        "a secret setting with a value": "PLAID_SECRET=0123456789abcdef0123456789ab",
    }
    for name, text in samples.items():
        assert name in findings(text), name
    assert findings("# FINSYNC_ENCRYPTION_KEYS=2:NEWKEYBASE64=,1:OLDKEYBASE64=") == []  # the example's placeholders
