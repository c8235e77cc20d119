"""The shelf of prepared downloads: a file for the session that prepared it, for a while, in bounded memory."""

from __future__ import annotations

import uuid

import pytest

from services import downloads
from services.downloads import DOWNLOAD_LASTS, DownloadShelf
from tests.factories import Ticker


def test_a_file_is_for_its_session_and_its_time_only() -> None:
    tick = Ticker()
    shelf = DownloadShelf(clock=tick)
    mine, other = uuid.uuid4(), uuid.uuid4()
    token = shelf.put(mine, b"a,b\n", filename="f.csv", mime="text/csv")
    assert shelf.get(token, mine) is not None and shelf.get(token, mine).data == b"a,b\n"  # type: ignore[union-attr]
    assert shelf.get(token, mine) is not None  # pressed again: still there within its time
    assert shelf.get(token, other) is None and shelf.get(token + "x", mine) is None and shelf.get("", mine) is None
    tick.now += DOWNLOAD_LASTS
    assert shelf.get(token, mine) is None


def test_memory_stays_bounded_by_count_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "MAX_HELD_BYTES", 1000)
    shelf = DownloadShelf(clock=Ticker())
    me = uuid.uuid4()
    tokens = [shelf.put(me, b"x" * 10, filename="f", mime="m") for _ in range(downloads.MAX_HELD + 5)]
    assert [shelf.get(t, me) is not None for t in tokens].count(True) == downloads.MAX_HELD  # the newest ones
    assert shelf.get(tokens[-1], me) is not None and shelf.get(tokens[0], me) is None
    big = shelf.put(me, b"y" * 900, filename="f", mime="m")  # room is made by dropping the oldest
    assert shelf.get(big, me) is not None and sum(shelf.get(t, me) is not None for t in tokens) <= 10
