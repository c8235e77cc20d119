"""Test helpers: a controllable clock, settings and users."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.config import Settings

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
