"""Demo and sandbox shortcuts for operators and tests: link a bank or break its login without Plaid Link."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlmodel import Session, col

from models import PlaidItem, User
from services.banking_link import gateway, get_access_token, link_public_token, webhook_url
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError
from services.plaid_client import PlaidGateway
from services.plaid_events import calls_for
from services.plaid_types import PlaidError
from services.users import find_by_login


def _sandbox_gateway(c: Container, what: str) -> PlaidGateway:
    gw = gateway(c)
    if gw.env == "production":
        raise InputError(f"{what} works only with PLAID_ENV=demo or sandbox, not production.")
    return gw


def _user_by_email(session: Session, email: str) -> User:
    user = find_by_login(session, email)
    if user is None or "@" not in email:
        raise InputError(f"There is no user with the email address {email!r}.")
    return user


def link_sandbox(
    c: Container, *, email: str, institution_id: str = "ins_demo_1", username: str | None = None
) -> uuid.UUID:
    """Link a bank without Plaid Link (demo and sandbox only), stored exactly as the UI stores it."""
    gw = _sandbox_gateway(c, "Linking without Plaid Link")
    with unit_of_work(c.engine) as session:
        user_id = _user_by_email(session, email).id
    with calls_for(user_id):
        try:
            public = gw.sandbox_public_token_create(institution_id, username=username, webhook=webhook_url(c))
        except PlaidError as exc:
            raise InputError(f"The bank refused to link: {exc}") from None
    return link_public_token(c, user_id, public, {}, link_session_id=None).id


def reset_login_sandbox(c: Container, *, email: str, institution_id: str) -> uuid.UUID:
    """Put a user's item at this institution into ITEM_LOGIN_REQUIRED (demo and sandbox only).

    Plaid (and the demo bank) then sends the ITEM ERROR webhook that marks the item for repair.
    """
    gw = _sandbox_gateway(c, "Resetting a bank login")
    with unit_of_work(c.engine) as session:
        user = _user_by_email(session, email)
        item = session.execute(
            select(PlaidItem).where(col(PlaidItem.user_id) == user.id, col(PlaidItem.institution_id) == institution_id)
        ).scalar_one_or_none()
        if item is None:
            raise InputError(f"That user has no bank linked at {institution_id}.")
        user_id: uuid.UUID = user.id
        item_id: uuid.UUID = item.id
    token = get_access_token(c, user_id, item_id)
    with calls_for(user_id, item_id):
        try:
            gw.sandbox_item_reset_login(token)
        except PlaidError as exc:
            raise InputError(f"The bank refused: {exc}") from None
    return item_id
