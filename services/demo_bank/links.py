"""The demo bank's Link stand-in: sandbox logins, link tokens and the sign-in that ends in onSuccess."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.demo_bank import fields, problems
from services.demo_bank.catalog import ACCOUNT_TEMPLATES, ALL_TEMPLATES, INSTITUTIONS, AccountTemplate
from services.demo_bank.items import mask_of, utc_now

if TYPE_CHECKING:
    from services.demo_bank.bank import Bank

# Plaid's Transactions test users: realistic, changing history (as every demo login has) and any non-blank password,
# as Plaid's sandbox takes them.
ANY_PASSWORD = frozenset({"user_transactions_dynamic", "user_ewa_user", "user_yuppie", "user_small_business"})
# Sandbox-style usernames: each puts a freshly linked item into a state tests and the CLI can use.
USERNAMES: dict[str, str | None] = {
    "user_good": None,
    "user_login_required": "login_required",
    "user_institution_down": "institution_down",
    "user_not_ready": "not_ready",
    "user_flaky": "server_error",
    **dict.fromkeys(sorted(ANY_PASSWORD)),  # an ordinary item
}
PASSWORD = "pass_good"
LINK_TOKEN_TTL = timedelta(hours=4)
DAYS_REQUESTED = 90  # Plaid's default for `transactions.days_requested`; it takes 1 to 730


def days_requested(body: dict[str, Any], *, where: str) -> int:
    """The `transactions.days_requested` of a request (`where` is the path to `transactions`): 1 to 730, 90 when
    absent, as Plaid's schema says; anything else is INVALID_FIELD."""
    days = fields.integer(fields.obj(body, "transactions", where=where), "days_requested", DAYS_REQUESTED,
                          where=f"{where}transactions.")  # fmt: skip
    if not 1 <= days <= 730:
        raise problems.invalid_field(f"{where}transactions.days_requested must be between 1 and 730")
    return days


@dataclass
class LinkSession:
    """A link token and what it was created for."""

    client_user_id: str
    item_id: str | None
    webhook: str | None
    expires: datetime
    account_selection: bool = False  # update mode may add accounts (`update.account_selection_enabled`)
    days_requested: int = DAYS_REQUESTED  # how far back a new item's transactions go (`transactions.days_requested`)


def new_link_session(
    bank: Bank,
    client_user_id: str,
    access_token: str | None,
    webhook: str | None,
    *,
    account_selection: bool = False,
    days_requested: int = DAYS_REQUESTED,
) -> str:
    """Create a link token; with an access token it is an update-mode token for that item."""
    with bank.lock:
        item_id = None
        if access_token is not None:
            item_id = bank.item_for(access_token, "/link/token/create").item_id
        token = f"link-demo-{secrets.token_hex(16)}"
        expires = utc_now() + LINK_TOKEN_TTL
        bank.link_sessions[token] = LinkSession(
            client_user_id, item_id, webhook, expires, account_selection, days_requested
        )
        return token


def link_session(bank: Bank, link_token: str) -> LinkSession:
    """Return a live link session or raise INVALID_LINK_TOKEN."""
    session = bank.link_sessions.get(link_token)
    if session is None or session.expires < utc_now():
        raise problems.invalid_token("link")
    return session


def login_ok(username: str, password: str | None) -> bool:
    """Whether the sandbox takes these credentials; None is a password not given (the public-token shortcut)."""
    if username not in USERNAMES:
        return False
    if password is None:
        return True
    return bool(password.strip()) if username in ANY_PASSWORD else password == PASSWORD


def _check_login(bank: Bank, link_token: str, institution_id: str, username: str, password: str) -> LinkSession:
    session = link_session(bank, link_token)
    if not login_ok(username, password):
        raise problems.BankError(
            400,
            "ITEM_ERROR",
            "INVALID_CREDENTIALS",
            "the provided credentials were not correct",
            "The username or password you entered is incorrect. Please try again.",
        )
    if session.item_id is None and institution_id not in INSTITUTIONS:
        raise problems.BankError(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided")
    return session


def _choices(bank: Bank, session: LinkSession) -> list[AccountTemplate]:
    """What the picker offers: a new link, every account of the login; update mode with account selection, the
    accounts not shared yet: opened since (NEW_ACCOUNTS_AVAILABLE) or left unticked before; a plain repair,
    nothing (no picker)."""
    if session.item_id is None:
        return list(ACCOUNT_TEMPLATES)
    item = bank.items[session.item_id]
    unshared = (*item.offered, *item.hidden)
    return [t for t in ALL_TEMPLATES if t.key in unshared] if session.account_selection else []


def link_accounts(bank: Bank, link_token: str, institution_id: str, username: str, password: str) -> dict[str, Any]:
    """Link's account picker: after a correct sign-in, the accounts this login can share (nothing is linked yet)."""
    with bank.lock:
        session = _check_login(bank, link_token, institution_id, username, password)
        if session.item_id is not None:  # update mode: the item's own institution and login give the masks
            item = bank.items[session.item_id]
            institution_id, username = item.institution_id, item.login
        accounts = [
            {"key": t.key, "name": t.name, "mask": mask_of(institution_id, username, t.key), "type": t.type,
             "subtype": t.subtype}
            for t in _choices(bank, session)
        ]  # fmt: skip
        return {"accounts": accounts, "update": session.item_id is not None}


def _shared(account_keys: Sequence[str] | None, offered: list[AccountTemplate], *, update: bool) -> list[str] | None:
    """The ticked account keys, checked: each one offered; at least one for a new link (a repair may add none)."""
    if account_keys is None:
        return None
    picked = [str(k) for k in account_keys]
    if (not picked and not update) or not set(picked) <= {t.key for t in offered}:
        raise problems.invalid_field("account_keys must name at least one of the login's accounts")
    return picked


def link_login(
    bank: Bank,
    link_token: str,
    institution_id: str,
    username: str,
    password: str,
    account_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Sign in through the Link stand-in; return the `onSuccess` public token and metadata.

    ``account_keys``: the accounts ticked in the picker (None: all, as when Link shows no picker).
    """
    with bank.lock:
        session = _check_login(bank, link_token, institution_id, username, password)
        offered = _choices(bank, session)
        shared = _shared(account_keys, offered, update=session.item_id is not None)
        if session.item_id is not None:
            item = bank.items[session.item_id]
            bank.repair(item.item_id, elsewhere=False)  # through our Link: no LOGIN_REPAIRED (Plaid sends none)
            if session.account_selection:  # the new accounts the user ticked (all, without a picker) are shared
                for t in offered:
                    if shared is None or t.key in shared:
                        item.share(t)
                item.offered = []  # the ones left unticked were declined: the question is answered
        else:
            item = bank.create_item(institution_id, username, session.webhook, shared, session.days_requested)
        return {
            "public_token": bank.issue_public_token(item, update=session.item_id is not None),
            "institution": {"name": INSTITUTIONS[item.institution_id].name, "institution_id": item.institution_id},
            "accounts": [
                {
                    "id": item.accounts[t.key],
                    "name": t.name,
                    "mask": item.masks()[item.accounts[t.key]],
                    "type": t.type,
                    "subtype": t.subtype,
                }
                for t in item.templates()
            ],
            "link_session_id": secrets.token_hex(16),
        }
