"""Column types shared by the tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, ForeignKey, Uuid
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def ts_column(nullable: bool = False, index: bool = False) -> Column[datetime]:
    """A UTC timestamp column (a fresh Column per field: SQLAlchemy columns cannot be shared)."""
    return Column(UTCDateTime(), nullable=nullable, index=index)


def fk_column(
    target: str, *, nullable: bool = False, on_delete: str = "CASCADE", index: bool = True
) -> Column[uuid.UUID]:
    """A UUID foreign key that follows its parent row on delete (CASCADE unless said otherwise)."""
    return Column(Uuid(), ForeignKey(target, ondelete=on_delete), nullable=nullable, index=index)
