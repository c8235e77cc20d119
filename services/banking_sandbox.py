"""Demo and sandbox shortcuts for operators and tests: link a bank or break its login without Plaid Link."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlmodel import Session, col

from models import PlaidItem, User
from services.banking_access import gateway, get_access_token, webhook_url
from services.banking_exchange import link_public_token
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from services.plaid_events import calls_for
from services.users import find_by_login

# The institution used when none is named: the demo bank's first, or Plaid's sandbox-only "First Platypus
# Bank" (https://plaid.com/docs/sandbox/institutions/); each environment rejects the other's id.
DEFAULT_INSTITUTIONS = {"demo": "ins_demo_1", "sandbox": "ins_109508"}


def _sandbox_gateway(c: Container, what: str) -> PlaidGateway:
    gw = gateway(c)
    if gw.env == "production":
        raise InputError(f"{what} works only with PLAID_ENV=demo or sandbox, not production.")
    return gw


def default_institution(c: Container) -> str:
    """The institution `link_sandbox` and `reset_login_sandbox` use when none is given."""
    return DEFAULT_INSTITUTIONS[_sandbox_gateway(c, "Linking without Plaid Link").env]


def _user_by_email(session: Session, email: str) -> User:
    user = find_by_login(session, email)
    if user is None or "@" not in email:
        raise InputError(f"There is no user with the email address {email!r}.")
    return user


def link_sandbox(
    c: Container, *, email: str, institution_id: str | None = None, username: str | None = None
) -> uuid.UUID:
    """Link a bank without Plaid Link (demo and sandbox only), stored exactly as the UI stores it."""
    gw = _sandbox_gateway(c, "Linking without Plaid Link")
    institution_id = institution_id or DEFAULT_INSTITUTIONS[gw.env]
    with unit_of_work(c.engine) as session:
        user_id = _user_by_email(session, email).id
    with calls_for(user_id):
        try:
            public = gw.sandbox_public_token_create(institution_id, username=username, webhook=webhook_url(c))
        except PlaidError as exc:
            raise InputError(f"The bank refused to link: {exc}") from None
    return link_public_token(c, user_id, public, {}, link_session_id=None).id


def reset_login_sandbox(
    c: Container, *, email: str, institution_id: str | None = None, item_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Put one of a user's items into ITEM_LOGIN_REQUIRED (demo and sandbox only).

    The item is `item_id`, or else the user's only item at the institution (the environment's default if
    none is given). Plaid (and the demo bank) then sends the ITEM ERROR webhook that marks it for repair.
    """
    return _at_bank(
        c, "Resetting a bank login", email, institution_id, item_id, lambda gw, t: gw.sandbox_item_reset_login(t)
    )


FIRABLE_WEBHOOKS = ("NEW_ACCOUNTS_AVAILABLE", "SYNC_UPDATES_AVAILABLE")


def fire_webhook_sandbox(
    c: Container, *, email: str, code: str, institution_id: str | None = None, item_id: uuid.UUID | None = None
) -> uuid.UUID:
    """Have the bank send one of its webhooks for a user's item (demo and sandbox only), as Plaid's sandbox does.

    NEW_ACCOUNTS_AVAILABLE (the demo bank opens an account first) marks the item so that "Repair connection"
    offers the new account; SYNC_UPDATES_AVAILABLE makes the bot sync it.
    """
    if code not in FIRABLE_WEBHOOKS:
        raise InputError(f"Choose one of {', '.join(FIRABLE_WEBHOOKS)}.")
    return _at_bank(
        c, "Firing a webhook", email, institution_id, item_id, lambda gw, t: gw.sandbox_item_fire_webhook(t, code)
    )


def _at_bank(
    c: Container,
    what: str,
    email: str,
    institution_id: str | None,
    item_id: uuid.UUID | None,
    call: Callable[[PlaidGateway, str], object],
) -> uuid.UUID:
    """Run a sandbox call on the user's one item at the institution (or ``item_id``); return the item's id."""
    gw = _sandbox_gateway(c, what)
    if institution_id is None and item_id is None:
        institution_id = DEFAULT_INSTITUTIONS[gw.env]
    with unit_of_work(c.engine) as session:
        user = _user_by_email(session, email)
        item = _pick_item(session, user.id, institution_id, item_id)
        user_id: uuid.UUID = user.id
        chosen: uuid.UUID = item.id
    token = get_access_token(c, user_id, chosen)
    with calls_for(user_id, chosen):
        try:
            call(gw, token)
        except PlaidError as exc:
            raise InputError(f"The bank refused: {exc}") from None
    return chosen


def _pick_item(
    session: Session, user_id: uuid.UUID, institution_id: str | None, item_id: uuid.UUID | None
) -> PlaidItem:
    query = select(PlaidItem).where(col(PlaidItem.user_id) == user_id).order_by(col(PlaidItem.created_at))
    if institution_id is not None:
        query = query.where(col(PlaidItem.institution_id) == institution_id)
    if item_id is not None:
        query = query.where(col(PlaidItem.id) == item_id)
    items: list[PlaidItem] = list(session.execute(query).scalars().all())
    where = f"at {institution_id}" if institution_id else ""
    if not items:
        which = f"with item id {item_id} " if item_id else ""
        raise InputError(f"That user has no bank linked {which}{where}".strip() + ".")
    if len(items) > 1:  # a user may link two logins at one institution: never guess which to break
        ids = ", ".join(str(i.id) for i in items)
        raise InputError(f"That user has {len(items)} banks linked {where} ({ids}); choose one with --item ITEM_ID.")
    return items[0]
