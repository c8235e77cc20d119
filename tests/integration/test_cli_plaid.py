"""`python -m services.cli plaid link-sandbox` as an operator runs it, against a demo bank the test starts."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from models import BankAccount, PlaidApiEvent, PlaidItem, User
from services.db import make_engine, unit_of_work
from services.demo_bank import DemoBankHandle
from tests.integration.conftest_bank import WebhookSink
from tests.integration.test_cli import cli

PASSWORD = "quiet lantern meadow 1987 vessel"


@pytest.fixture
def env(db_url: str, demo_bank: DemoBankHandle) -> dict[str, str]:
    """A migrated database with one user, and the CLI pointed at the test's demo bank."""
    values = {"DATABASE_URL": db_url, "PLAID_ENV": "demo", "PLAID_API_URL": demo_bank.url}
    assert cli("db", "upgrade", env=values).returncode == 0
    made = cli("users", "create", "--email", "ann@example.com", "--username", "ann", stdin=PASSWORD + "\n", env=values)
    assert made.returncode == 0, made.stderr
    return values


def test_link_sandbox_stores_the_item_like_the_ui_and_prints_its_id(
    env: dict[str, str], db_url: str, demo_bank: DemoBankHandle
) -> None:
    done = cli("plaid", "link-sandbox", "--email", "ann@example.com", "--institution", "ins_demo_2", env=env)
    assert done.returncode == 0, done.stderr
    item_id = uuid.UUID(done.stdout.strip())  # just the UUID on stdout, for scripts
    engine = make_engine(db_url)
    with unit_of_work(engine) as session:
        item = session.get(PlaidItem, item_id)
        assert item is not None
        user = session.get(User, item.user_id)
        accounts = session.execute(select(BankAccount).where(col(BankAccount.item_id) == item_id)).scalars().all()
        events = session.execute(select(col(PlaidApiEvent.endpoint))).scalars().all()
    engine.dispose()
    assert len(accounts) == 3 and user is not None and user.email == "ann@example.com"
    assert item.institution_name == "Maple Credit Union"
    webhook = demo_bank.bank.items[item.plaid_item_id].webhook
    assert webhook is not None and webhook.endswith("/webhooks/plaid")
    assert {"/sandbox/public_token/create", "/item/public_token/exchange", "/accounts/get"} <= set(events)


def test_link_sandbox_takes_plaids_sandbox_institution_and_test_user_in_demo_mode(
    env: dict[str, str], db_url: str
) -> None:
    """The command line of Plaid's docs (First Platypus Bank, `user_transactions_dynamic`) works offline too."""
    args = ["--institution", "ins_109508", "--username", "user_transactions_dynamic"]
    done = cli("plaid", "link-sandbox", "--email", "ann@example.com", *args, env=env)
    assert done.returncode == 0, done.stderr
    engine = make_engine(db_url)
    with unit_of_work(engine) as session:
        item = session.get(PlaidItem, uuid.UUID(done.stdout.strip()))
    engine.dispose()
    assert item is not None and item.institution_name == "First Platypus Bank"
    synced = cli("sync", "--email", "ann@example.com", env=env)
    assert synced.returncode == 0 and "First Platypus Bank: ok" in synced.stdout, synced.stdout + synced.stderr


BAD_INPUT = [
    (["--email", "nobody@example.com"], {}, "no user with the email address"),
    (["--email", "ann@example.com", "--institution", "ins_nope"], {}, "The bank refused to link"),
    (["--email", "ann@example.com", "--username", "user_login_required"], {}, "sign in again before it shared"),
    (["--email", "ann@example.com"], {"PLAID_ENV": "production", "PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s",
                                      "FINSYNC_BASE_URL": "https://money.example.com"}, "not production"),
    (["--email", "ann@example.com"], {"PLAID_ENV": "production", "PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s"},
     "FINSYNC_BASE_URL: must be an https:// URL"),
]  # fmt: skip


def test_bad_input_exits_2_with_one_clear_line_and_stores_nothing(env: dict[str, str], db_url: str) -> None:
    for args, extra_env, says in BAD_INPUT:
        result = cli("plaid", "link-sandbox", *args, env=env | extra_env)
        assert result.returncode == 2, (args, result.stderr)
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr and result.stdout == ""
    engine = make_engine(db_url)
    with unit_of_work(engine) as session:
        assert session.execute(select(func.count()).select_from(PlaidItem)).scalar_one() == 0
    engine.dispose()


def test_reset_login_asks_which_of_two_logins_at_one_bank_and_resets_the_chosen_one(
    env: dict[str, str], db_url: str, demo_bank: DemoBankHandle
) -> None:
    two_logins = [[], ["--username", "user_not_ready"]]  # a second login at the same bank has other accounts
    linked = [cli("plaid", "link-sandbox", "--email", "ann@example.com", *login, env=env) for login in two_logins]
    assert all(r.returncode == 0 for r in linked), [r.stderr for r in linked]
    assert all("linked ins_demo_1 for" in r.stderr for r in linked)  # the demo default institution
    first, second = (r.stdout.strip() for r in linked)

    ambiguous = cli("plaid", "reset-login", "--email", "ann@example.com", env=env)
    assert ambiguous.returncode == 2 and "Traceback" not in ambiguous.stderr, ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1
    assert first in ambiguous.stderr and second in ambiguous.stderr and "--item" in ambiguous.stderr

    chosen = cli("plaid", "reset-login", "--email", "ann@example.com", "--item", second, env=env)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == second
    engine = make_engine(db_url)
    with unit_of_work(engine) as session:
        plaid_ids = {str(i.id): i.plaid_item_id for i in session.execute(select(PlaidItem)).scalars()}
    engine.dispose()
    assert demo_bank.bank.items[plaid_ids[second]].error_code == "ITEM_LOGIN_REQUIRED"
    assert demo_bank.bank.items[plaid_ids[first]].error_code is None

    for args, says in [(["--item", "not-an-id"], "is not an item id"), (["--item", str(uuid.uuid4())], "no bank")]:
        wrong = cli("plaid", "reset-login", "--email", "ann@example.com", *args, env=env)
        assert wrong.returncode == 2 and says in wrong.stderr and "Traceback" not in wrong.stderr, wrong.stderr


def test_sandbox_mode_defaults_to_a_real_sandbox_institution(env: dict[str, str], webhook_sink: WebhookSink) -> None:
    # A loopback stand-in for Plaid's sandbox records what it is sent (its empty answer then fails the link).
    sandbox = {"PLAID_ENV": "sandbox", "PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s", "PLAID_API_URL": webhook_sink.url}
    result = cli("plaid", "link-sandbox", "--email", "ann@example.com", env=env | sandbox)
    assert result.returncode == 2 and "The bank refused to link" in result.stderr, result.stderr
    sent = json.loads(webhook_sink.wait(1)[0][1])
    assert sent["institution_id"] == "ins_109508"  # Plaid's sandbox "First Platypus Bank"; ins_demo_1 would be refused


def test_fire_webhook_has_the_bank_announce_a_new_account_or_new_data(
    env: dict[str, str], demo_bank: DemoBankHandle, webhook_sink: WebhookSink
) -> None:
    """Plaid's /sandbox/item/fire_webhook: the bank opens an account and says so at the item's webhook URL."""
    linked = cli(
        "plaid", "link-sandbox", "--email", "ann@example.com", env=env | {"FINSYNC_BASE_URL": webhook_sink.url}
    )
    assert linked.returncode == 0, linked.stderr
    item_id = linked.stdout.strip()
    fired = cli("plaid", "fire-webhook", "--email", "ann@example.com", "--code", "NEW_ACCOUNTS_AVAILABLE", env=env)
    assert fired.returncode == 0 and fired.stdout.strip() == item_id, fired.stderr
    headers, body = webhook_sink.wait(1)[0]
    sent = json.loads(body)
    assert (sent["webhook_type"], sent["webhook_code"]) == ("ITEM", "NEW_ACCOUNTS_AVAILABLE")
    assert any(k.lower() == "plaid-verification" for k in headers)  # signed like every webhook of the bank
    [item] = [i for i in demo_bank.bank.items.values() if i.item_id == sent["item_id"]]
    assert item.offered == ["goal"]  # the new account waits for the user to share it

    again = cli("plaid", "fire-webhook", "--email", "ann@example.com", "--code", "SYNC_UPDATES_AVAILABLE", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(webhook_sink.wait(2)[1][1])["webhook_code"] == "SYNC_UPDATES_AVAILABLE"

    wrong = cli("plaid", "fire-webhook", "--email", "ann@example.com", "--code", "ERROR", env=env)
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr  # argparse names the choices
