"""Settings loaded and checked at start-up (environment, `.env`, Streamlit secrets exported as environment)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.engine import URL, make_url

from services.errors import ConfigError
from services.local_secrets import ensure_local_secrets
from services.settings import Settings, env_files
from services.settings_files import check_lines, read_text


def _first_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "settings"
    alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
    message = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(alias or field, message)


def _check_data_dir(data_dir: Path) -> None:
    probe = data_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            "FINSYNC_DATA_DIR",
            f"{data_dir} is not a writable directory; create it or point FINSYNC_DATA_DIR elsewhere",
        )


def _check_env_files() -> None:
    # pydantic-settings skips a .env that is a directory or a dangling link and fails on bad UTF-8 with a traceback.
    for path in env_files():
        if os.path.lexists(path):
            check_lines(path, read_text(path))


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_TLS_MODES = ("require", "verify-ca", "verify-full")


def _database_hosts(url: URL) -> list[str]:
    """Every host libpq may connect to: ``?host=`` and ``?hostaddr=`` (comma-separated lists) win over the URL's."""
    hosts = [url.host or ""]
    for key in ("host", "hostaddr"):
        value = url.query.get(key) or ()
        for item in (value,) if isinstance(value, str) else value:
            hosts.extend(item.split(","))
    return [h.strip() for h in hosts]


def _is_remote_host(host: str) -> bool:
    # Empty: libpq's default socket; "/..." or "@...": a Unix-domain socket (path or abstract name).
    return bool(host) and not host.startswith(("/", "@")) and host.lower().strip("[]") not in _LOCAL_HOSTS


def _check_production(settings: Settings) -> None:
    """Real bank data travels only over TLS: HTTPS for the app and Plaid, TLS to a PostgreSQL on another host."""
    if urlsplit(settings.base_url).scheme != "https":
        raise ConfigError(
            "FINSYNC_BASE_URL", "must be an https:// URL with PLAID_ENV=production (cookies are Secure only then)"
        )
    api = urlsplit(settings.plaid_api_url or "https://")
    if api.scheme != "https" and api.hostname not in _LOCAL_HOSTS:  # plain http only to a proxy on this machine
        raise ConfigError("PLAID_API_URL", "must be an https:// URL with PLAID_ENV=production (or on this machine)")
    if settings.database_url:
        url = make_url(settings.database_url)
        remote = url.get_backend_name() == "postgresql" and any(map(_is_remote_host, _database_hosts(url)))
        if remote and url.query.get("sslmode") not in _TLS_MODES:
            raise ConfigError(
                "DATABASE_URL",
                "a PostgreSQL server on another host needs ?sslmode=verify-full (or require) with PLAID_ENV=production",
            )


def load_settings(*, create_secrets: bool = True, announce: bool = True) -> Settings:
    """Validate every setting, then fill local secrets; raises ``ConfigError`` with one clear line."""
    _check_env_files()
    try:
        settings = Settings()
    except ValidationError as exc:
        raise _first_error(exc) from None
    _check_data_dir(settings.data_dir)
    if settings.effective_plaid_env != "demo" and not (settings.plaid_client_id and settings.plaid_secret):
        raise ConfigError("PLAID_CLIENT_ID", f"PLAID_ENV={settings.plaid_env} needs PLAID_CLIENT_ID and PLAID_SECRET")
    if settings.effective_plaid_env == "production":
        _check_production(settings)
    if create_secrets:
        settings = ensure_local_secrets(settings, announce=announce)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` to rebuild them."""
    return load_settings()
