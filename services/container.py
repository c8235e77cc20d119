"""The composition root: builds engine, cipher, mailer and clock once; tests pass fakes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, make_url

from models.types import utcnow
from services import keys
from services.config import load_settings
from services.crypto import FieldCipher, check_key_ring
from services.db import check_database, make_engine
from services.errors import DatabaseUnavailable, FinsyncError
from services.local_secrets import LOCAL_SECRETS_FILE, announce_local_secrets, ensure_local_secrets
from services.mailer import Mailer, make_mailer
from services.migrations import current_revision, head_revision, is_known, newer_schema
from services.plaid_client import PlaidGateway
from services.plaid_events import DatabaseRecorder, tee
from services.settings import Settings

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Container:
    """Everything a service needs from the outside world."""

    settings: Settings
    engine: Engine
    cipher: FieldCipher
    mailer: Mailer
    clock: Clock
    pepper: bytes
    token_key: bytes
    plaid: PlaidGateway | None = None
    background_mail: bool = False  # flows hand their mail to a sender thread instead of waiting on the server


def check_exists(url: str) -> None:
    """A SQLite database file must be there already: opening it would create an empty one, and a mistyped path in
    DATABASE_URL would leave a stray file behind (only ``db upgrade`` creates the database)."""
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
        raise DatabaseUnavailable(
            f"there is no database at {path}: run `python -m services.cli db upgrade` to create it, or check DATABASE_URL"
        )


def check_schema(engine: Engine) -> None:
    """The schema must be at the newest migration."""
    current, head = current_revision(engine), head_revision(engine)
    if current is not None and current != head and not is_known(engine, current):
        raise DatabaseUnavailable(newer_schema(current))
    if current != head:
        raise DatabaseUnavailable(
            f"the database schema is at {current or 'nothing'}, not {head}: run `python -m services.cli db upgrade`"
        )


def _demo_bank_url(settings: Settings) -> str:
    from services.demo_bank_runtime import ensure_demo_bank  # the demo bank starts on the first Plaid call

    return ensure_demo_bank(settings)


def build_gateway(settings: Settings) -> PlaidGateway | None:
    """The gateway the settings ask for: the demo bank (no keys needed), Plaid's sandbox or production."""
    env = settings.effective_plaid_env
    secret = settings.plaid_secret.get_secret_value() if settings.plaid_secret else None
    if env == "demo":
        from services.demo_bank.app import DEMO_CLIENT_ID, DEMO_SECRET

        base = settings.plaid_api_url or (lambda: _demo_bank_url(settings))
        return PlaidGateway("demo", settings.plaid_client_id or DEMO_CLIENT_ID, secret or DEMO_SECRET, base)
    if not (settings.plaid_client_id and secret):
        return None  # load_settings refuses this; a hand-built Settings simply gets no bank linking
    return PlaidGateway("sandbox" if env == "sandbox" else "production", settings.plaid_client_id, secret,
                        settings.plaid_api_url)  # fmt: skip


def build_container(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    mailer: Mailer | None = None,
    clock: Clock | None = None,
    plaid: PlaidGateway | None = None,
    check: bool = True,
    background_mail: bool | None = None,
) -> Container:
    """Wire the real parts; with ``check`` the database must answer and the key ring must match it.

    ``background_mail`` defaults to on with SMTP: a request must not wait on (or be timed by) a mail server.
    """
    settings = settings or load_settings(create_secrets=False)
    if engine is None:
        if check:
            check_exists(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url)
    if check:
        check_database(engine, encoding=True)  # before anything is written: a bad database changes nothing on disk
        check_schema(engine)
    secrets_file = settings.data_dir / LOCAL_SECRETS_FILE
    fresh = not secrets_file.exists()
    settings = ensure_local_secrets(settings, announce=not check)
    cipher = FieldCipher(settings.key_ring)
    if check:
        try:
            check_key_ring(engine, cipher)
        except FinsyncError:
            if fresh:  # a key ring made just now is not the one this database's data is under: take it back
                secrets_file.unlink(missing_ok=True)
            raise
        if fresh and secrets_file.exists():
            announce_local_secrets(secrets_file)
    secret = settings.secret_bytes
    clock = clock or utcnow
    gateway = plaid or build_gateway(settings)
    if gateway is not None:  # every call lands in plaid_api_events; a test's own recorder keeps hearing too
        gateway = gateway.with_recorder(tee(gateway.recorder, DatabaseRecorder(engine, clock)))
    return Container(
        settings=settings,
        engine=engine,
        cipher=cipher,
        mailer=mailer
        or make_mailer(
            settings.smtp_url.get_secret_value() if settings.smtp_url else None,
            settings.outbox_dir,
            settings.mail_from,
        ),
        clock=clock,
        pepper=keys.derive(secret, "password-pepper"),
        token_key=keys.derive(secret, "token-mac"),
        plaid=gateway,
        background_mail=bool(settings.smtp_url) if background_mail is None else background_mail,
    )


def command_container() -> Container:
    """The container of a command-line run (``python -m services.cli``): settings from the environment, no secrets
    created, and mail sent in the command's own thread. A command has no request to keep fast, and its process may
    exit as soon as it returns, which would cut off a sender thread in the middle of a mail (left to wait out its
    lease, and perhaps sent twice)."""
    return build_container(load_settings(create_secrets=False), background_mail=False)
