"""The tables of accounts, sign-in and auditing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import BigInteger, Column, LargeBinary
from sqlmodel import Field, SQLModel

from models.types import fk_column, utcnow
from models.types import ts_column as _ts


class User(SQLModel, table=True):
    """A person who signs in; emails and usernames are unique after NFKC + casefold."""

    __tablename__ = "users"
    __encrypted__: ClassVar[tuple[str, ...]] = ("totp_secret_enc",)
    __encrypted_owner__: ClassVar[str] = "id"  # the user its encrypted columns are bound to

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320)
    email_norm: str = Field(max_length=320, unique=True)
    username: str = Field(max_length=64)
    username_norm: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=128)
    password_scheme: str = Field(default="pbcrypt", max_length=16)
    role: str = Field(default="user", max_length=16)
    status: str = Field(default="active", max_length=16)
    email_verified: bool = Field(default=False)
    totp_secret_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    totp_enabled: bool = Field(default=False)
    totp_last_step: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # A set-up not confirmed yet belongs to the session that started it, for a while (services/totp.py).
    totp_pending_session_id: uuid.UUID | None = Field(default=None)
    totp_pending_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    password_changed_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_sign_in_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AuthSession(SQLModel, table=True):
    """A server-side session; only the SHA-256 of the cookie token is stored."""

    __tablename__ = "auth_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("users.id"))
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=256)


class OneTimeToken(SQLModel, table=True):
    """A single-use secret (email verification, reset, sign-in hand-off); only its hash is stored."""

    __tablename__ = "one_time_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("users.id"))
    purpose: str = Field(max_length=32, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    payload: str | None = Field(default=None, max_length=320)
    attempts: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class RecoveryCode(SQLModel, table=True):
    """A single-use two-factor recovery code, stored hashed."""

    __tablename__ = "recovery_codes"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=fk_column("users.id"))
    code_hash: str = Field(max_length=64, unique=True)
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ThrottleCounter(SQLModel, table=True):
    """Failure counters for an account or a client address; in the database so restarts keep them.

    ``recent`` is a JSON list of the latest counted times (UTC, ``2026-11-27T12:00:00.000000Z``, oldest
    first, at most ``services.throttle.KEPT``), so a limit slides over any window instead of restarting.
    """

    __tablename__ = "throttle_counters"

    key: str = Field(primary_key=True, max_length=160)
    last_at: datetime = Field(default_factory=utcnow, sa_column=_ts())  # the latest counted time (retention)
    recent: str = Field(default="[]", max_length=512)
    consecutive: int = Field(default=0)
    lock_level: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AuditEvent(SQLModel, table=True):
    """Who did what, when; never a secret. ``user_id`` has no foreign key so rows outlive the user."""

    __tablename__ = "audit_events"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    user_id: uuid.UUID | None = Field(default=None, index=True)
    actor_id: uuid.UUID | None = Field(default=None)
    event: str = Field(max_length=64, index=True)
    ip: str = Field(default="", max_length=64)
    detail: str = Field(default="", max_length=1000)


class KeyCanary(SQLModel, table=True):
    """One known plaintext per key version, so a wrong key ring is refused at start-up."""

    __tablename__ = "key_canaries"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class QueuedMail(SQLModel, table=True):
    """A message the mailer has not taken yet; removed once sent or past its use.

    The message (recipient, subject, body with its live link) is encrypted and bound to this row, so a
    reset link waiting out an SMTP outage is no easier to read than the token table's hashes.
    """

    __tablename__ = "mail_queue"
    __encrypted__: ClassVar[tuple[str, ...]] = ("message_enc",)
    __encrypted_owner__: ClassVar[str] = "user_id"  # the user its encrypted columns are bound to

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID | None = Field(default=None, sa_column=fk_column("users.id", nullable=True))
    kind: str = Field(max_length=32)
    message_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
    expires_at: datetime = Field(sa_column=_ts())
