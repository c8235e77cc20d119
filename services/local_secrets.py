"""The local secrets file, ``DATA_DIR/secrets.env``: made on first start, read as ``.env`` is, its ring rewritten."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import DotEnvSettingsSource

from services.errors import ConfigError
from services.key_ring import new_key_entry, parse_key_ring
from services.settings import Settings
from services.settings_files import check_lines, create_whole, read_text, with_value

LOCAL_SECRETS_FILE = "secrets.env"


def announce_local_secrets(path: Path) -> None:
    print(f"finsync: generated local secrets in {path.resolve()} (mode 0600)", file=sys.stderr)


def ensure_local_secrets(settings: Settings, *, announce: bool = True) -> Settings:
    """Fill missing secrets from ``DATA_DIR/secrets.env``, creating it (0600) on first start."""
    if settings.secret_key is not None and settings.encryption_keys is not None:
        return settings
    path = settings.data_dir / LOCAL_SECRETS_FILE
    if not os.path.lexists(path):  # a dangling link is not "missing": creating through it would fail
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # secrets and the ledger live here
        if create_whole(path, _new_secrets()) and announce:
            announce_local_secrets(path)
    check_lines(path, read_text(path))  # an unclosed quote is named, not skipped as python-dotenv does
    # Read as .env is (quotes, `export `, comments): a self-hoster writes both the same way.
    stored = DotEnvSettingsSource(Settings, env_file=path)
    updates: dict[str, object] = {}
    wanted = (("secret_key", Settings._secret_key), ("encryption_keys", Settings._encryption_keys))
    for field, check in wanted:
        if getattr(settings, field) is not None:
            continue
        name = str(Settings.model_fields[field].alias)  # the file's error names the line at fault, as env's do
        given, _, _ = stored.get_field_value(Settings.model_fields[field], field)
        try:
            updates[field] = check(SecretStr(given or ""))
        except ValueError as exc:
            raise ConfigError(f"{path}", f"{name}: {exc}") from None
        if updates[field] is None:
            raise ConfigError(str(path), f"has no {name}=... line; put it back from your backup of this file")
    return settings.model_copy(update=updates)


def _new_secrets() -> str:
    return (
        "# finsync local secrets, generated on first start. Keep private; back it up with the database.\n"
        f"FINSYNC_SECRET_KEY={secrets.token_urlsafe(48)}\n"
        f"FINSYNC_ENCRYPTION_KEYS={new_key_entry(1)}\n"
    )


def write_local_key_ring(data_dir: Path, value: str) -> None:
    """Replace FINSYNC_ENCRYPTION_KEYS in the local secrets file (atomically, mode 0600)."""
    parse_key_ring(value)
    path = data_dir / LOCAL_SECRETS_FILE
    if not os.path.lexists(path):
        raise ConfigError(
            str(path), "does not exist yet: finsync creates it on its first start (`make run`); run this again then"
        )
    # The writer finds the line as the reader does, or it would report a key it never wrote.
    text = with_value(read_text(path), "FINSYNC_ENCRYPTION_KEYS", value)
    if text is None:
        raise ConfigError(str(path), "has no FINSYNC_ENCRYPTION_KEYS line to put the new key in; nothing was written")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    os.replace(tmp, path)
