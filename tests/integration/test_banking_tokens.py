"""The access token and the Plaid call log, against the demo bank: the token is stored encrypted and bound to its
row and owner; every call is recorded with its request id, item and outcome, and never with the token.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlmodel import SQLModel, col

from models import PlaidApiEvent, PlaidItem
from services import banking
from services.container import Container, build_container
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from services.plaid_events import calls_for
from tests.factories import key_entry
from tests.integration.conftest_bank import Bank


def dump(bank: Bank) -> str:
    """Every value of every table, as text (bytes both raw and hex), to search for secrets."""
    parts: list[str] = []
    with bank.c.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        parts += [raw.decode("latin-1"), raw.hex()]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_each_plaid_call_of_a_sync_is_logged_once_and_tagged_with_its_item(bank: Bank) -> None:
    from services.sync import sync_item

    alice = bank.user()
    item = bank.link(alice)
    result = sync_item(bank.c, alice, item.id)
    assert result.status == "ok" and result.pages >= 1
    with unit_of_work(bank.c.engine) as session:
        rows = (
            session.execute(select(PlaidApiEvent).where(col(PlaidApiEvent.endpoint) == "/transactions/sync"))
            .scalars()
            .all()
        )
        assert len(rows) == result.pages
        assert {(r.user_id, r.item_id) for r in rows} == {(alice, item.id)}
        assert all(r.request_id for r in rows)


def test_access_token_is_stored_encrypted_and_bound_to_its_row(bank: Bank) -> None:
    alice = bank.user()
    first, second = bank.link(alice, "ins_demo_1"), bank.link(alice, "ins_demo_2")
    token = banking.get_access_token(bank.c, alice, first.id)
    assert token.startswith("access-")
    link_token = banking.start_link(bank.c, alice).link_token
    everything = dump(bank)
    assert token not in everything and link_token not in everything
    with unit_of_work(bank.c.engine) as session:
        a, b = session.get(PlaidItem, first.id), session.get(PlaidItem, second.id)
        assert a is not None and b is not None
        b.access_token_enc = a.access_token_enc  # a ciphertext moved to another row
    with pytest.raises(DecryptionError, match="Remove it and link the bank again"):
        banking.get_access_token(bank.c, alice, second.id)
    broken = next(i for i in banking.list_items(bank.c, alice) if i.id == second.id)
    assert broken.status == "error" and "cannot be read" in broken.status_message


def test_an_item_handed_to_another_user_in_the_database_cannot_reach_the_bank(bank: Bank) -> None:
    """Bar H1/H2: the token is bound to its owner, so rewriting ``plaid_items.user_id`` (a write to the database,
    or a bug) gives the new owner an unreadable connection, never a working one to someone else's bank."""
    from services.sync import sync_item

    alice, mallory = bank.user("alice"), bank.user("mallory")
    item = bank.link(alice)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    with unit_of_work(bank.c.engine) as session:
        calls_before = session.execute(select(func.count()).select_from(PlaidApiEvent)).scalar_one()
        row = session.get(PlaidItem, item.id)
        assert row is not None
        row.user_id = mallory
    with pytest.raises(DecryptionError, match="cannot be read"):
        banking.get_access_token(bank.c, mallory, item.id)
    result = sync_item(bank.c, mallory, item.id, explicit=True)
    assert (result.status, result.error_code) == ("failed", "TOKEN_UNREADABLE")
    with unit_of_work(bank.c.engine) as session:  # not one call reached the bank with alice's token
        assert session.execute(select(func.count()).select_from(PlaidApiEvent)).scalar_one() == calls_before
        row = session.get(PlaidItem, item.id)
        assert row is not None
        row.user_id = alice  # put back where it belongs, it opens again
    assert banking.get_access_token(bank.c, alice, item.id).startswith("access-")


def test_every_plaid_call_is_recorded_with_its_request_id_and_never_a_token(bank: Bank) -> None:
    alice = bank.user()
    item = bank.link(alice)
    token = banking.get_access_token(bank.c, alice, item.id)
    with unit_of_work(bank.c.engine) as session:
        events = list(session.execute(select(PlaidApiEvent).order_by(col(PlaidApiEvent.at))).scalars())
    by_endpoint = {e.endpoint: e for e in events}
    assert {"/link/token/create", "/item/public_token/exchange", "/accounts/get"} <= by_endpoint.keys()
    assert all(e.request_id and e.http_status == 200 and e.user_id == alice for e in events)
    assert by_endpoint["/accounts/get"].item_id == item.id
    assert by_endpoint["/item/public_token/exchange"].item_id == item.id
    assert token not in dump(bank)


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("rate_limit", "ACCOUNTS_BALANCE_GET_LIMIT", 429),
        ("institution_down", "INSTITUTION_DOWN", 400),
        ("server_error", "INTERNAL_SERVER_ERROR", 500),
    ],
)
def test_a_failed_plaid_call_is_recorded_with_its_error_code_status_and_duration_and_never_a_token(
    bank: Bank, fault: str, code: str, status: int
) -> None:
    alice = bank.user()
    item = bank.link(alice)
    token = banking.get_access_token(bank.c, alice, item.id)
    at_bank = bank.plaid_item_id(item.id)
    bank.demo.set_fault(at_bank, "delay", seconds=0.2)  # the bank answers, with an error, after 200 ms
    bank.demo.set_fault(at_bank, fault, endpoint="/accounts/balance/get")  # type: ignore[arg-type]
    with calls_for(alice, item.id), pytest.raises(PlaidError) as failed:
        bank.c.plaid.accounts_balance_get(token)  # type: ignore[union-attr]
    assert (failed.value.code, failed.value.http_status) == (code, status)
    with unit_of_work(bank.c.engine) as session:
        (event,) = session.execute(
            select(PlaidApiEvent).where(col(PlaidApiEvent.endpoint) == "/accounts/balance/get")
        ).scalars()
    assert (event.error_code, event.http_status, event.user_id, event.item_id) == (code, status, alice, item.id)
    assert event.request_id and event.request_id == failed.value.request_id
    assert event.duration_ms is not None and 200 <= event.duration_ms < 10_000
    assert token not in dump(bank)


def test_a_key_dropped_too_early_says_put_it_back_and_keeps_the_bank(bank: Bank, gateway: PlaidGateway) -> None:
    """README, key rotation: a key removed too soon is put back and nothing is lost. The bank's card and its sync
    history told the person to remove the bank and link it again; doing so deleted it here while its token, which
    nobody could read any more, stayed live at Plaid for good (and with it the history they chose not to keep)."""
    from services.sync import sync_item

    alice = bank.user("alice")
    item = bank.link(alice)
    assert sync_item(bank.c, alice, item.id, explicit=True).status == "ok"
    ring = bank.c.settings.encryption_keys
    assert ring is not None
    two = key_entry(2)

    def restarted(keys: str) -> Container:  # the operator edits FINSYNC_ENCRYPTION_KEYS and restarts
        settings = bank.c.settings.model_copy(update={"encryption_keys": SecretStr(keys)})
        return build_container(settings, engine=bank.c.engine, mailer=bank.c.mailer, clock=bank.c.clock, plaid=gateway)

    dropped = restarted(two)  # key 1 dropped before `keys rotate`
    result = sync_item(dropped, alice, item.id, explicit=True)
    assert (result.status, result.error_code) == ("failed", "KEY_MISSING")
    assert "encryption key version 1" in (result.message or "") and "Remove it" not in (result.message or "")
    card = next(i for i in banking.list_items(dropped, alice) if i.id == item.id)
    assert "put the key back" in card.status_message and "Remove it" not in card.status_message
    with pytest.raises(FinsyncError, match="put that key back"):
        banking.remove_item(dropped, alice, item.id, keep_history=False)
    assert [i.id for i in banking.list_items(dropped, alice)] == [item.id]  # nothing deleted, nothing left at Plaid

    back = restarted(f"{two},{ring.get_secret_value()}")
    assert sync_item(back, alice, item.id, explicit=True).status == "ok"
    assert next(i for i in banking.list_items(back, alice) if i.id == item.id).status == "ok"
