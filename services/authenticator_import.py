"""Import users from a streamlit-authenticator ``config.yaml`` (bcrypt hashes kept as the legacy scheme).

Imported accounts are plain users (roles in the file are ignored: admins are made with the CLI),
unverified until they verify their address, and their hash is upgraded to our scheme at the first
successful sign-in. Entries with a plain-text password are skipped and the password is never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from models import User
from services import audit, passwords, users
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError

MAX_FILE_BYTES = 5 * 1024 * 1024
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class ImportReport:
    """Usernames imported, and (name, reason) for every entry skipped."""

    imported: list[str]
    skipped: list[tuple[str, str]]


def _load(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(f"{path.name} is not a YAML file.") from None
    entries = data.get("credentials", {}).get("usernames") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{path.name} has no credentials.usernames section (is it a streamlit-authenticator file?).")
    return entries


def _entry(name: object, entry: object) -> tuple[str, str, str] | str:
    """(username, email, hash) or the reason to skip."""
    if not isinstance(name, str) or not isinstance(entry, dict):
        return "not a user entry"
    try:
        username = users.clean_username(name)
        email = users.clean_email(str(entry.get("email", "")))
    except InputError as exc:
        return str(exc)
    secret = entry.get("password")
    if not isinstance(secret, str) or not BCRYPT_HASH.fullmatch(secret):
        return "the password is not a bcrypt hash (plain-text passwords are never imported)"
    return username, email, secret


def import_authenticator(c: Container, path: Path) -> ImportReport:
    """Create the file's users (unverified, legacy hash); skip invalid and duplicate entries with a reason."""
    entries = _load(Path(path))
    imported: list[str] = []
    skipped: list[tuple[str, str]] = []
    now = c.clock()
    with unit_of_work(c.engine) as session:
        for name, entry in entries.items():
            label = audit.clean_text(name, 64)
            parsed = _entry(name, entry)
            if isinstance(parsed, str):
                skipped.append((label, parsed))
                continue
            username, email, secret = parsed
            if users.identity_taken(session, users.fold(email), users.fold(username)):
                skipped.append((label, "that email address or username is already registered"))
                continue
            user = User(
                email=email,
                email_norm=users.fold(email),
                username=username,
                username_norm=users.fold(username),
                password_hash=secret,
                password_scheme=passwords.LEGACY_SCHEME,
                email_verified=False,
                created_at=now,
                password_changed_at=now,
            )
            session.add(user)
            session.flush()
            audit.record(session, event="registered", user_id=user.id, detail="imported", at=now)
            imported.append(username)
    return ImportReport(imported=imported, skipped=skipped)
