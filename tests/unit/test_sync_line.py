"""The line under each bank on Accounts: when it last synced and when it syncs next, in words that are true."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import streamlit

from pages.ui import sync_view
from services.sync import ItemSyncStatus

NOW = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)


def _said(monkeypatch: pytest.MonkeyPatch, status: ItemSyncStatus | None, *, needs_repair: bool = False) -> str:
    lines: list[str] = []
    monkeypatch.setattr(streamlit, "caption", lines.append)
    monkeypatch.setattr(sync_view, "when", lambda stamp, empty="never": f"{stamp:%H:%M}" if stamp else empty)
    sync_view.sync_line(status, NOW, needs_repair=needs_repair)
    (line,) = lines
    return line


def _status(**kw: object) -> ItemSyncStatus:
    base: dict[str, object] = dict(item_id=uuid.uuid4(), institution_name="Bank", last_success_at=None,
                                   next_due_at=None, state="ok", message="Up to date")  # fmt: skip
    return ItemSyncStatus(**{**base, **kw})  # type: ignore[arg-type]


def test_a_bank_just_linked_says_its_first_sync_is_coming_not_that_it_is_due_now(monkeypatch) -> None:
    assert _said(monkeypatch, None) == "Waiting for its first sync: it starts within a minute."
    assert _said(monkeypatch, _status(next_due_at=NOW)) == "Waiting for its first sync: it starts within a minute."


def test_a_bank_that_wants_a_sign_in_before_its_first_sync_does_not_promise_one(monkeypatch) -> None:
    said = "Not synced yet: syncing waits until you repair the connection."
    assert _said(monkeypatch, None, needs_repair=True) == said
    assert _said(monkeypatch, _status(next_due_at=NOW), needs_repair=True) == said


def test_a_due_sync_is_within_a_minute_and_a_scheduled_one_has_its_time(monkeypatch) -> None:
    synced = NOW - timedelta(hours=7)
    due = _status(last_success_at=synced, last_attempt_at=synced, next_due_at=NOW - timedelta(hours=1))
    assert _said(monkeypatch, due) == "Last synced 07:30 · next within a minute · Up to date"
    later = _status(last_success_at=NOW, last_attempt_at=NOW, next_due_at=NOW + timedelta(hours=6))
    assert _said(monkeypatch, later) == "Last synced 14:30 · next 20:30 · Up to date"


def test_each_time_on_the_line_stays_whole_on_a_phone(monkeypatch) -> None:
    """On a phone the line broke inside the next sync's time ("next 2026-12-05" / "20:30 UTC")."""
    from pages.ui.text import unbroken

    lines: list[str] = []
    monkeypatch.setattr(streamlit, "caption", lines.append)
    later = _status(last_success_at=NOW, last_attempt_at=NOW, next_due_at=NOW + timedelta(hours=6))
    sync_view.sync_line(later, NOW)
    (line,) = lines
    assert f"Last synced {unbroken('2026-12-05 14:30 UTC')} · next {unbroken('2026-12-05 20:30 UTC')} · " in line
