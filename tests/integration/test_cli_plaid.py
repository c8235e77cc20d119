"""`python -m services.cli plaid link-sandbox` as an operator runs it, against a demo bank the test starts."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from models import BankAccount, PlaidApiEvent, PlaidItem, User
from services.db import make_engine, unit_of_work
from services.demo_bank import DemoBankHandle
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


BAD_INPUT = [
    (["--email", "nobody@example.com"], {}, "no user with the email address"),
    (["--email", "ann@example.com", "--institution", "ins_nope"], {}, "The bank refused to link"),
    (["--email", "ann@example.com", "--username", "user_login_required"], {}, "nothing was saved"),
    (["--email", "ann@example.com"], {"PLAID_ENV": "production", "PLAID_CLIENT_ID": "id", "PLAID_SECRET": "s"},
     "not production"),
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
