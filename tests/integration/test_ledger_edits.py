"""The user's edits of a transaction as the Transactions page saves them: right row, no silent overwrite."""

from __future__ import annotations

import threading
import uuid

import pytest

from services.container import Container
from services.errors import InputError, NotFound
from services.ledger import STALE_EDIT
from services.plaid_client import PlaidGateway
from services.sync import edit_transaction, get_transaction, sync_item
from tests.integration.sync_helpers import FAST, link_item, make_user


@pytest.fixture
def linked(container: Container, gateway: PlaidGateway) -> tuple[uuid.UUID, uuid.UUID, str]:
    user_id = make_user(container)
    item_id, plaid_id = link_item(container, gateway, user_id)
    return user_id, item_id, plaid_id


def test_an_edit_of_a_pending_transaction_that_posted_meanwhile_lands_on_the_posted_one(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    pending = demo_bank.mutate(pid, "add", cents=4200, name="HOTEL HOLD", pending=True)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    opened = get_transaction(container, user_id, pending["transaction_id"])  # the form is drawn...
    posted = demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"], cents=4500)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)  # ...the bot posts it, then Save
    saved = edit_transaction(container, user_id, pending["transaction_id"], note="conference", opened=opened)
    assert saved.transaction_id == posted["transaction_id"] and not saved.pending
    assert get_transaction(container, user_id, posted["transaction_id"]).note == "conference"
    demo_bank.mutate(pid, "remove", transaction_id=posted["transaction_id"])
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    with pytest.raises(NotFound, match="removed"):
        edit_transaction(container, user_id, pending["transaction_id"], note="too late")


def test_a_form_opened_before_another_save_refuses_to_overwrite_it(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    row = demo_bank.mutate(pid, "add", cents=1999, name="BOOKSHOP")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    tab_a = get_transaction(container, user_id, row["transaction_id"])
    tab_b = get_transaction(container, user_id, row["transaction_id"])
    edit_transaction(container, user_id, row["transaction_id"], note="gift for Lee", opened=tab_b)
    with pytest.raises(InputError) as refused:  # same second, same user: the fingerprint still differs
        edit_transaction(container, user_id, row["transaction_id"], category="Books", opened=tab_a)
    assert str(refused.value) == STALE_EDIT
    now = get_transaction(container, user_id, row["transaction_id"])
    assert (now.note, now.category_override) == ("gift for Lee", None)
    edit_transaction(container, user_id, row["transaction_id"], category="Books", opened=now)  # reopened: fine
    assert get_transaction(container, user_id, row["transaction_id"]).category == "Books"


def test_another_users_transaction_cannot_be_read_or_edited(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    row = demo_bank.mutate(pid, "add", cents=500, name="PRIVATE")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    mallory = make_user(container, "mallory@example.com")
    with pytest.raises(NotFound):
        get_transaction(container, mallory, row["transaction_id"])
    with pytest.raises(NotFound):
        edit_transaction(container, mallory, row["transaction_id"], note="mine now")
    assert get_transaction(container, user_id, row["transaction_id"]).note is None


def test_a_note_saved_just_as_the_bot_posts_that_charge_is_kept_on_the_posted_one(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    """Two connections at once: the user saves a note on a hold while a sync that posts it runs. The save has
    read the hold when the sync starts; whichever commits first, the save succeeds and the note ends up on the
    posted charge (PostgreSQL: the saved row is locked, so the sync waits for it and carries the note over)."""
    import services.ledger as ledger_service

    user_id, item_id, pid = linked
    hold = demo_bank.mutate(pid, "add", cents=4200, name="HOTEL HOLD", pending=True)["transaction_id"]
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    posted = demo_bank.mutate(pid, "post", transaction_id=hold, cents=4500)["transaction_id"]
    synced: list[str] = []
    bot = threading.Thread(
        target=lambda: synced.append(sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status)
    )
    real = ledger_service._apply_edit

    def meanwhile(t, **fields):  # type: ignore[no-untyped-def] - the hold is read; the bot runs as far as it may
        bot.start()
        bot.join(2.0)
        real(t, **fields)

    monkeypatch.setattr(ledger_service, "_apply_edit", meanwhile)
    edit_transaction(container, user_id, hold, note="conference")
    bot.join(60)
    assert synced == ["ok"]
    assert get_transaction(container, user_id, posted).note == "conference"
    assert get_transaction(container, user_id, hold).transaction_id == posted  # the ledger shows one charge
