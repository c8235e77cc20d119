"""Typed settings from the environment, `.env`, and Streamlit secrets exported as environment."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from services.errors import ConfigError
from services.mailer import sender_problem
from services.settings_files import check_lines, create_whole, read_text, with_value

LOCAL_SECRETS_FILE = "secrets.env"
PLACEHOLDERS = {"changeme", "change-me", "secret", "please-change", "xxx"}
# `keys generate` makes encryption keys only, and cannot run while this setting is bad: say how to make one.
RANDOM_TEXT_COMMAND = """make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"""
MAX_KEY_VERSION = 2**32 - 1  # a ciphertext's header holds the version in four bytes (services/crypto.py)
# The database drivers finsync ships (requirements.txt): another one would fail later, with a traceback.
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg2"}


@dataclass(frozen=True)
class KeyEntry:
    """One versioned 256-bit encryption key."""

    version: int
    key: bytes


def parse_key_ring(raw: str) -> tuple[KeyEntry, ...]:
    """Parse ``version:base64key,...``; the first entry encrypts, all decrypt."""
    entries: list[KeyEntry] = []
    for position, part in enumerate(p.strip() for p in raw.split(",")):
        where = f"entry {position + 1}"
        version_text, sep, key_text = part.partition(":")
        digits = version_text.strip()
        if not sep or not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_KEY_VERSION:
            raise ValueError(
                f"{where} must look like 'VERSION:BASE64KEY' with VERSION a whole number from 1 to {MAX_KEY_VERSION}"
            )
        try:
            key = base64.b64decode(key_text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: the key is not standard base64") from None
        if len(key) != 32:
            raise ValueError(f"{where}: the key must decode to 32 bytes, not {len(key)}")
        if any(e.version == int(version_text) for e in entries):
            raise ValueError(f"{where}: version {int(version_text)} appears twice")
        entries.append(KeyEntry(int(version_text), key))
    if not entries:
        raise ValueError("no keys given")
    return tuple(entries)


def new_key_entry(version: int) -> str:
    """A fresh ``version:key`` entry from the OS CSPRNG."""
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


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


def env_files() -> list[Path]:
    """The dotenv files ``Settings`` reads (``.env``, from the working directory), as absolute paths."""
    given = Settings.model_config.get("env_file")
    if given is None:
        return []
    names = [given] if isinstance(given, str | Path) else list(given)
    return [Path(os.path.abspath(name)) for name in names]


def _check_env_files() -> None:
    # pydantic-settings skips a .env that is a directory or a dangling link and fails on bad UTF-8 with a traceback.
    for path in env_files():
        if os.path.lexists(path):
            check_lines(path, read_text(path))


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
