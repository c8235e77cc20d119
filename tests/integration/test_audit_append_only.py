"""The audit log is append-only in the database itself (security bar I4), on SQLite and PostgreSQL.

Triggers from migration 0004 refuse DELETE and every UPDATE but one: blanking ``ip`` and/or ``detail``
with every other column unchanged, which account deletion does to anonymise a deleted user's rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from models import AuditEvent
from services import audit, migrations
from services.container import Container
from services.db import unit_of_work

ROOT = Path(__file__).resolve().parents[2]
REFUSED = "append-only"


def _add(c: Container, user_id: uuid.UUID, event: str = "sign_in_ok") -> uuid.UUID:
    """Record an event as the app does; return the new row's id."""
    with unit_of_work(c.engine) as session:
        before = set(session.execute(select(AuditEvent.id)).scalars())
        audit.record(session, event=event, user_id=user_id, ip="198.51.100.7", detail="first try", at=c.clock())
        session.flush()
        (new,) = set(session.execute(select(AuditEvent.id)).scalars()) - before
        return new


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM audit_events ORDER BY id"))]


def _set(row_id: uuid.UUID, **values: Any) -> Callable[[Session], object]:
    return lambda s: s.execute(update(AuditEvent).where(col(AuditEvent.id) == row_id).values(**values))


@pytest.fixture
def one_row(container: Container) -> uuid.UUID:
    return _add(container, uuid.uuid4())


def test_inserting_still_works(container: Container) -> None:
    user = uuid.uuid4()
    for event in ("sign_in_ok", "sign_out", "account_deleted"):
        _add(container, user, event)
    assert sorted(e.event for e in audit.list_events(container, user)) == ["account_deleted", "sign_in_ok", "sign_out"]


def _changes(row_id: uuid.UUID, c: Container) -> dict[str, Callable[[Session], object]]:
    later = c.clock() + timedelta(days=1)
    return {
        "event": _set(row_id, event="admin_unlock"),
        "at": _set(row_id, at=later),
        "user_id": _set(row_id, user_id=uuid.uuid4()),
        "user_id to NULL": _set(row_id, user_id=None),
        "actor_id": _set(row_id, actor_id=uuid.uuid4()),
        "id": _set(row_id, id=uuid.uuid4()),
        "ip rewritten": _set(row_id, ip="10.0.0.1"),
        "detail rewritten": _set(row_id, detail="nothing happened"),
        "blanking with an event change": _set(row_id, ip="", detail="", event="sign_out"),
        "blanking with a time change": _set(row_id, detail="", at=later),
        "bulk UPDATE": lambda s: s.execute(update(AuditEvent).values(event="sign_out")),
        "raw UPDATE": lambda s: s.execute(text("UPDATE audit_events SET event = 'sign_out'")),
        "ORM DELETE": lambda s: s.delete(s.get(AuditEvent, row_id)),
        "bulk DELETE": lambda s: s.execute(delete(AuditEvent)),
        "raw DELETE": lambda s: s.execute(text("DELETE FROM audit_events")),
    }


@pytest.mark.parametrize(
    "change",
    ["event", "at", "user_id", "user_id to NULL", "actor_id", "id", "ip rewritten", "detail rewritten",
     "blanking with an event change", "blanking with a time change", "bulk UPDATE", "raw UPDATE", "ORM DELETE",
     "bulk DELETE", "raw DELETE"],
)  # fmt: skip
def test_changing_or_deleting_a_row_through_the_apps_engine_fails(
    container: Container, one_row: uuid.UUID, change: str
) -> None:
    before = _rows(container.engine)
    with pytest.raises(IntegrityError, match=REFUSED), unit_of_work(container.engine) as session:
        _changes(one_row, container)[change](session)
        session.flush()
    assert _rows(container.engine) == before


def test_blanking_ip_and_detail_is_the_one_update_allowed(container: Container) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    ids = [_add(container, user), _add(container, user, "sign_out"), _add(container, other)]
    with unit_of_work(container.engine) as session:
        _set(ids[0], ip="")(session)  # one column
        _set(ids[1], detail="", ip="")(session)  # both
        _set(ids[2], ip="198.51.100.7")(session)  # a no-op changes nothing, so it is allowed too
    with unit_of_work(container.engine) as session:
        rows = {r.id: r for r in session.execute(select(AuditEvent)).scalars()}
    assert (rows[ids[0]].ip, rows[ids[0]].detail) == ("", "first try")
    assert (rows[ids[1]].ip, rows[ids[1]].detail, rows[ids[1]].event) == ("", "", "sign_out")
    assert (rows[ids[2]].ip, rows[ids[2]].user_id) == ("198.51.100.7", other)


def _cli_upgrade(db_url: str) -> None:
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "services.cli", "db", "upgrade"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DATABASE_URL": db_url}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def back_at_head(engine: Engine) -> Iterator[Engine]:
    """The test's database, migrated to head again afterwards whatever the test did."""
    yield engine
    migrations.upgrade(engine)


def test_cli_db_upgrade_creates_the_triggers_and_downgrade_drops_them(back_at_head: Engine, db_url: str) -> None:
    engine = back_at_head
    migrations.downgrade(engine, "0003")
    with engine.begin() as conn:  # without the triggers a row can be changed and deleted
        conn.execute(text("INSERT INTO audit_events (id, at, user_id, actor_id, event, ip, detail) "
                          "VALUES (:id, :at, NULL, NULL, 'sign_in_ok', '', 'x')"),
                     {"id": uuid.uuid4().hex, "at": "2026-11-27 12:00:00"})  # fmt: skip
        conn.execute(text("UPDATE audit_events SET event = 'sign_out'"))
        conn.execute(text("DELETE FROM audit_events"))
    _cli_upgrade(db_url)
    assert migrations.current_revision(engine) == migrations.head_revision(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_events (id, at, user_id, actor_id, event, ip, detail) "
                          "VALUES (:id, :at, NULL, NULL, 'sign_in_ok', '', 'x')"),
                     {"id": uuid.uuid4().hex, "at": "2026-11-27 12:00:00"})  # fmt: skip
    for statement in ("UPDATE audit_events SET event = 'sign_out'", "DELETE FROM audit_events"):
        with pytest.raises(IntegrityError, match=REFUSED), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 1
