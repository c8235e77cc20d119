"""Test helpers: a controllable clock, settings and users."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.db import make_engine
from services.settings import Settings

STRONG_PASSWORD = "tidal umbrella orchard kettle 42"


@dataclass
class FakeClock:
    """A clock tests move by hand (no sleeping)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Ticker:
    """A monotonic clock (seconds) the test moves by hand, for rate limits and time-outs."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def key_entry(version: int) -> str:
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "FINSYNC_DATA_DIR": data_dir,
        "FINSYNC_SECRET_KEY": base64.b64encode(os.urandom(36)).decode(),
        "FINSYNC_ENCRYPTION_KEYS": key_entry(1),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def drop_pg_database(admin_url: str, name: str, *, attempts: int = 20) -> None:
    """Drop a throwaway PostgreSQL database as the test role, which is no superuser.

    ``DROP DATABASE … WITH (FORCE)`` refuses then whenever an autovacuum worker is busy in the database (it
    runs as no role the test role belongs to), which a freshly migrated database invites. So: end the client
    sessions still on it (the test role's own and those of roles it was granted), then a plain ``DROP
    DATABASE``, which stops autovacuum by itself; a session still on its way out is waited for and tried again.
    """
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        for attempt in range(attempts):
            try:
                with engine.connect() as conn:
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                        ),
                        {"name": name},
                    )
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except DBAPIError:  # a session still leaving (or still signing in): once more, shortly
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
    finally:
        engine.dispose()
