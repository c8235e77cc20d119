"""Every setting finsync reads (pydantic-settings), each validated as it is read; the names are a contract."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.errors import ConfigError
from services.key_ring import KeyEntry, parse_key_ring
from services.mailer import sender_problem

PLACEHOLDERS = {"changeme", "change-me", "secret", "please-change", "xxx"}
# `keys generate` makes encryption keys only, and cannot run while this setting is bad: say how to make one.
RANDOM_TEXT_COMMAND = """make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"""
# The database drivers finsync ships (requirements.txt): another one would fail later, with a traceback.
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg2"}


class Settings(BaseSettings):
    """Every setting finsync reads; names are the environment variables (a contract)."""

    # NAME= (a copied template, a blank Streamlit Cloud secret) is unset: an empty FINSYNC_BASE_URL put "None" in links.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    secret_key: SecretStr | None = Field(default=None, alias="FINSYNC_SECRET_KEY")
    encryption_keys: SecretStr | None = Field(default=None, alias="FINSYNC_ENCRYPTION_KEYS")
    data_dir: Path = Field(default=Path("data"), alias="FINSYNC_DATA_DIR")
    base_url: str = Field(default="http://localhost:8501", alias="FINSYNC_BASE_URL")
    mail_from: str = Field(default="finsync <no-reply@finsync.local>", alias="FINSYNC_MAIL_FROM")
    plaid_env: Literal["demo", "sandbox", "production"] | None = Field(default=None, alias="PLAID_ENV")
    plaid_client_id: str | None = Field(default=None, alias="PLAID_CLIENT_ID")
    plaid_secret: SecretStr | None = Field(default=None, alias="PLAID_SECRET")
    plaid_api_url: str | None = Field(default=None, alias="PLAID_API_URL")
    plaid_redirect_uri: str | None = Field(default=None, alias="PLAID_REDIRECT_URI")
    plaid_link_script_url: str | None = Field(default=None, alias="PLAID_LINK_SCRIPT_URL")
    smtp_url: SecretStr | None = Field(default=None, alias="SMTP_URL")
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60, alias="SESSION_IDLE_MINUTES")
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30, alias="SESSION_ABSOLUTE_HOURS")
    sync_interval_hours: float = Field(default=6, gt=0, le=24 * 7, allow_inf_nan=False, alias="SYNC_INTERVAL_HOURS")
    sync_tick_seconds: float = Field(default=30, ge=0.5, le=3600, allow_inf_nan=False, alias="SYNC_TICK_SECONDS")
    # 0: no scheduled self-check. Not "nan": it was told "should be less than or equal to 365", as if too big.
    sync_verify_days: float = Field(default=7, ge=0, le=365, allow_inf_nan=False, alias="SYNC_VERIFY_DAYS")
    demo_activity_seconds: float = Field(
        default=120, ge=0, le=86400, allow_inf_nan=False, alias="FINSYNC_DEMO_ACTIVITY_SECONDS"
    )
    proxy_hops: int = Field(default=0, ge=0, le=10, alias="FINSYNC_PROXY_HOPS")  # reverse proxies to trust

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parses the port: "abc" is an error here, not at the first connection
        except (ArgumentError, ValueError):
            raise ValueError("is not a database URL (expected sqlite:///PATH or postgresql+psycopg2://...)") from None
        parts = [url.username, url.password, url.host, url.database]
        for given in url.query.values():  # a repeated ?key= gives a tuple
            parts.extend((given,) if isinstance(given, str) else given)
        if any("\x00" in part for part in parts if part):  # the driver and the OS stop at it with a traceback
            raise ValueError("contains a NUL character (%00), which no name, password or path can hold")
        if url.drivername in ("postgresql", "postgres"):  # libpq's own URL: SQLAlchemy would pick psycopg 3, not ours
            url = url.set(drivername="postgresql+psycopg2")
            value = url.render_as_string(hide_password=False)
        backend = url.get_backend_name()
        if backend not in DRIVERS:
            raise ValueError(f"backend '{backend}' is not supported (use sqlite or postgresql)")
        if url.get_driver_name() != DRIVERS[backend]:
            plain = "sqlite:///PATH" if backend == "sqlite" else "postgresql://... (psycopg2)"
            raise ValueError(f"driver '{url.get_driver_name()}' is not installed with finsync: use {plain}")
        if backend == "sqlite" and (not url.database or url.database == ":memory:" or url.database.startswith("file:")):
            raise ValueError("names no file, and an in-memory database keeps nothing: give the path of a file")
        if backend == "postgresql" and not url.host and not url.query.get("host"):
            raise ValueError("a PostgreSQL URL needs a host")
        if backend == "sqlite" and url.database and url.database.startswith("~"):  # as FINSYNC_DATA_DIR: "~" is home
            value = url.set(database=os.path.expanduser(url.database)).render_as_string(hide_password=False)
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return Path("data")
        # A .env file or a service manager's environment file does not expand "~" as a shell does: the ledger and
        # its keys went into a folder named "~" under the working directory.
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in PLACEHOLDERS:
            raise ValueError(f"is a placeholder; {RANDOM_TEXT_COMMAND}")
        if len(raw.strip()) < 32:
            raise ValueError(f"must be at least 32 characters of random text; {RANDOM_TEXT_COMMAND}")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        parse_key_ring(value.get_secret_value())
        return value

    @field_validator("plaid_api_url", "base_url", "plaid_redirect_uri", "plaid_link_script_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError("must be an http(s) URL")
        try:  # a port of 99999 or "abc" was accepted, and broke every link made from it, silently
            if parts.port == 0:
                raise ValueError
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        return urlunsplit(parts).rstrip("/")  # the scheme in lower case ("HTTPS://" is HTTPS: Secure cookies, HSTS)

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if problem := sender_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        parts = urlsplit(value.get_secret_value())
        try:
            parts.port  # noqa: B018 - "notaport" or 99999 is said at start-up, not when the first email is sent
        except ValueError:
            raise ValueError("has a port that is not a number from 0 to 65535") from None
        if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
            raise ValueError("must look like smtp://user:password@host:587 (smtp, smtps or smtp+starttls)")
        return value

    # Derived values -----------------------------------------------------------------------
    @property
    def effective_plaid_env(self) -> str:
        """``demo`` unless Plaid credentials are set or an environment is chosen explicitly."""
        if self.plaid_env:
            return self.plaid_env
        return "sandbox" if self.plaid_client_id and self.plaid_secret else "demo"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'finsync.db').resolve()}"

    @property
    def key_ring(self) -> tuple[KeyEntry, ...]:
        if self.encryption_keys is None:
            raise ConfigError("FINSYNC_ENCRYPTION_KEYS", "is not set")
        return parse_key_ring(self.encryption_keys.get_secret_value())

    @property
    def secret_bytes(self) -> bytes:
        if self.secret_key is None:
            raise ConfigError("FINSYNC_SECRET_KEY", "is not set")
        return self.secret_key.get_secret_value().encode()

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"


def settings_in_sections(secrets: Mapping[str, object]) -> str | None:
    """What is wrong when a Streamlit secrets file holds a finsync setting inside a ``[section]``, or None.

    Streamlit exports only top-level keys as environment variables, and in TOML every key after a ``[section]``
    line belongs to that section: a DATABASE_URL written below one was not read, and the app looked for its
    default SQLite file instead ("there is no database at .../data/finsync.db").
    """
    names = {str(field.alias) for field in Settings.model_fields.values()}
    tables = [(key, value) for key, value in secrets.items() if isinstance(value, Mapping)]
    while tables:
        section, table = tables.pop(0)
        for key, value in table.items():
            if key in names and key not in secrets:
                return (
                    f"{key} is inside [{section}], where finsync does not read it: "
                    "move it above the first [section] line of the secrets"
                )
            if isinstance(value, Mapping):
                tables.append((f"{section}.{key}", value))
    return None


def env_files() -> list[Path]:
    """The dotenv files ``Settings`` reads (``.env``, from the working directory), as absolute paths."""
    given = Settings.model_config.get("env_file")
    if given is None:
        return []
    names = [given] if isinstance(given, str | Path) else list(given)
    return [Path(os.path.abspath(name)) for name in names]
