"""Tenant isolation (security bar F1): every service function that takes a ``user_id`` is called as alice with bob's ids.

One setup per database (two users, each with a synced demo bank, sessions, a Link session, edits, preferences,
two-factor: tests/integration/isolation_world.py) serves every recipe in ``CASES`` (isolation_cases.py) in turn;
bob's rows are snapshotted before and after each call, and the result (and any error message) is searched for bob's ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlmodel import SQLModel

from models import AuditEvent, ThrottleCounter
from services import throttle
from services.db import unit_of_work
from services.errors import FinsyncError, NotFound, PermissionDenied
from services.mailer import MemoryMailer
from tests.integration.auth_support import fast_hashing  # noqa: F401
from tests.integration.conftest_bank import Bank
from tests.integration.isolation_cases import CASES, Case
from tests.integration.isolation_world import World, build_world

pytestmark = pytest.mark.usefixtures("fast_hashing")


# --- checks -----------------------------------------------------------------------------------------------
def bobs_rows(conn: Connection, w: World) -> dict[str, list[str]]:
    """Every row of bob's in every table that names a user, one of his items or accounts, or his throttle key."""
    out: dict[str, list[str]] = {}
    for table in SQLModel.metadata.sorted_tables:
        cols = table.c
        if table.name == "users":
            where = cols.id == w.bob
        elif "user_id" in cols:
            where = cols.user_id == w.bob
        elif "item_id" in cols:
            where = cols.item_id.in_(w.bob_items)
        elif "account_id" in cols:
            where = cols.account_id.in_(w.bob_account_ids)
        elif table.name == ThrottleCounter.__tablename__:
            where = cols.key == throttle.account_key(w.bob)
        else:
            continue
        out[table.name] = sorted(repr(tuple(r)) for r in conn.execute(select(table).where(where)))
    return out


def snapshot(w: World) -> dict[str, list[str]]:
    with w.c.engine.connect() as conn:
        return bobs_rows(conn, w)


def alice_denials(w: World) -> int:
    query = select(func.count()).where(AuditEvent.user_id == w.alice, AuditEvent.event == "access_denied")  # type: ignore[arg-type]
    with w.c.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def text_of(value: Any) -> str:
    """Everything a result says, bytes decoded (a CSV download), containers opened."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(text_of(k) + " " + text_of(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(text_of(v) for v in value)
    return repr(value)


class _Undo(Exception):
    """Rolls a session recipe back once bob's rows were read inside its transaction."""


def run(w: World, case: Case) -> tuple[Any, BaseException | None, dict[str, list[str]]]:
    """Call the recipe: (result, exception, bob's rows as the call left them)."""
    if not case.session:
        try:
            return case.call(w), None, snapshot(w)
        except Exception as exc:
            return None, exc, snapshot(w)
    try:
        with unit_of_work(w.c.engine) as s:
            result = case.call(w, s)
            after = bobs_rows(s.connection(), w)  # before the rollback: what the call wrote, uncommitted
            raise _Undo
    except _Undo:
        return result, None, after
    except Exception as exc:
        return None, exc, snapshot(w)


def problems_of(w: World, case: Case, mailer: MemoryMailer) -> list[str]:
    before, denials, to_bob = snapshot(w), alice_denials(w), len([m for m in mailer.sent if "bob" in str(m["To"])])
    result, exc, after = run(w, case)
    found = []
    if exc is not None and not isinstance(exc, FinsyncError):
        found.append(f"raised {type(exc).__name__}: {exc} (fix the recipe?)")
    elif case.refused and not isinstance(exc, NotFound | PermissionDenied):
        found.append(f"not refused: {'raised ' + type(exc).__name__ if exc else 'returned'} {exc or result!r:.300}")
    elif not case.refused and exc is not None and not (case.allowed and isinstance(exc, case.allowed)):
        found.append(f"failed for alice's own data: {type(exc).__name__}: {exc}")
    said = text_of(result) + " " + (str(exc) if exc else "")
    if leaked := sorted(m for m in w.markers if m and m in said):
        found.append(f"returned bob's data: {leaked[:5]}")
    if case.expect is not None and exc is None and (problem := case.expect(w, result)):
        found.append(problem)
    if changed := [t for t in before if before[t] != after.get(t)]:
        found.append(f"changed bob's rows in {changed}")
    if len([m for m in mailer.sent if "bob" in str(m["To"])]) != to_bob:
        found.append("mailed bob")
    audited = alice_denials(w) > denials
    if case.audited and not audited:
        found.append("refused without an access_denied audit row for alice")
    if audited and not case.audited:
        found.append("recorded access_denied: mark the case audited=True")
    return found


def test_alice_with_bobs_ids_gets_and_changes_nothing_of_bobs(bank: Bank, mailer: MemoryMailer, tmp_path: Path) -> None:
    w = build_world(bank, tmp_path)
    failures = [f"{name}: {p}" for name, case in CASES.items() for p in problems_of(w, case, mailer)]
    assert not failures, "alice reached bob's data or a case is wrong:\n" + "\n".join(failures)
