"""The demo bank in the running app: no keys needed, and linked items survive a restart."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from services.container import build_container
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, start_demo_bank
from services.demo_bank.links import PASSWORD, link_login, link_session
from services.demo_bank_runtime import STATE_FILE, _answers, ensure_demo_bank, stop_demo_banks
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from tests.factories import make_settings


def test_items_tokens_and_cursors_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "demo_bank.json"
    first = start_demo_bank(state_file=state)
    gw = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, first.url, timeout=(2.0, 5.0))
    access = gw.exchange_public_token(gw.sandbox_public_token_create("ins_demo_2"))
    page = gw.transactions_sync(access.access_token)
    before = gw.accounts_get(access.access_token)
    repair = gw.link_token_create("u-1", access_token=access.access_token, account_selection=True)
    # Another login, linked in Link with the savings account left unticked.
    link = gw.link_token_create("u-2")
    short = gw.link_token_create("u-3", days_requested=30)  # a Link left open across the restart
    ok = link_login(first.bank, link.link_token, "ins_demo_1", "user_good", PASSWORD, ["checking", "credit"])
    picked = gw.exchange_public_token(ok["public_token"]).access_token
    shared = [a["id"] for a in ok["accounts"]]
    month = gw.exchange_public_token(gw.sandbox_public_token_create("ins_demo_3", days_requested=30)).access_token
    withdrawn = gw.exchange_public_token(gw.sandbox_public_token_create("ins_demo_1", webhook="http://127.0.0.1:9/"))
    gw.sandbox_item_fire_webhook(withdrawn.access_token, "USER_PERMISSION_REVOKED")  # access withdrawn at the bank
    first.stop()
    assert state.stat().st_mode & 0o077 == 0  # holds tokens and signing keys: owner only

    second = start_demo_bank(state_file=state)
    try:
        again = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, second.url, timeout=(2.0, 5.0))
        after = again.accounts_get(access.access_token)  # the stored access token still works
        assert [a.mask for a in after.accounts] == [a.mask for a in before.accounts]
        assert after.item.item_id == access.item_id
        resumed = again.transactions_sync(access.access_token, page.next_cursor)  # and so does the cursor
        assert resumed.added == ()
        assert link_session(second.bank, repair.link_token).account_selection  # an open update-mode Link keeps it
        assert link_session(second.bank, short.link_token).days_requested == 30  # and a new link its days
        assert [a.account_id for a in again.accounts_get(picked).accounts] == shared  # unticked stays unshared
        oldest = min(t.date for t in again.transactions_sync(month, count=500).added)  # linked for 30 days: still so
        assert oldest >= second.clock() - timedelta(days=29)
        with pytest.raises(PlaidError, match="ITEM_NOT_FOUND"):  # withdrawn stays withdrawn
            again.item_get(withdrawn.access_token)
    finally:
        second.stop()


def test_demo_mode_needs_no_keys_and_starts_its_bank_on_first_use(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'x.db'}")
    c = build_container(settings, check=False)
    assert c.plaid is not None and c.plaid.env == "demo"
    assert not (tmp_path / "data" / STATE_FILE).exists()  # nothing started yet
    public = c.plaid.sandbox_public_token_create("ins_demo_1")
    assert public.startswith("public-demo-")
    assert c.plaid.base_url == ensure_demo_bank(settings)  # one bank per process and data dir
    assert (tmp_path / "data" / STATE_FILE).exists()


def test_stopping_the_demo_banks_ends_their_servers_and_shoppers(tmp_path: Path) -> None:
    """What the test suite does after every test, and a host process may do at shutdown."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'x.db'}").model_copy(
        update={"demo_activity_seconds": 60.0}
    )
    url = ensure_demo_bank(settings)
    assert _answers(url) and any(t.name == "demo-bank-activity" for t in threading.enumerate())
    assert stop_demo_banks() == 1
    assert not _answers(url)
    for t in [t for t in threading.enumerate() if t.name == "demo-bank-activity"]:
        t.join(timeout=5)  # woken at once, not after its 60 s
        assert not t.is_alive()
    assert stop_demo_banks() == 0
    assert _answers(ensure_demo_bank(settings))  # a later call starts a fresh one from the saved state


def test_saves_from_the_shopper_and_a_request_at_once_both_land_whole(tmp_path: Path) -> None:
    """The demo shopper thread and the bank's request handlers each save after a change: at once, they used one
    temporary file name, so one rename found the file already moved (FileNotFoundError in the middle of a link)."""
    from services.demo_bank.persist import save

    state = tmp_path / "demo_bank.json"
    bank = start_demo_bank(state_file=state)
    try:
        failures: list[BaseException] = []

        def saving() -> None:
            try:
                for _ in range(40):
                    save(bank.bank, state)
            except BaseException as exc:  # the test reports whatever a save raised
                failures.append(exc)

        threads = [threading.Thread(target=saving) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_bank.json"]  # no temporary file left behind
        assert state.stat().st_mode & 0o077 == 0
    finally:
        bank.stop()
    again = start_demo_bank(state_file=state)  # what was written last reads back whole
    again.stop()
