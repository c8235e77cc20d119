"""Plaid Link sessions: start, resume, complete (a new bank or a repair) and exit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from models import LinkSession, PlaidItem
from services import banking_store as store
from services import job_rows, wakeup
from services.banking_access import gateway, get_access_token, webhook_url
from services.banking_exchange import link_public_token
from services.banking_views import ItemView, LinkStart, healthy
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError, InputError
from services.plaid_client import PlaidGateway
from services.plaid_errors import UPDATE_MODE_FIXES, PlaidError
from services.plaid_events import calls_for

LINK_SESSION_TTL = timedelta(hours=4)
PLAID_LINK_JS = "https://cdn.plaid.com/link/v2/stable/link-initialize.js"
_EXIT_MESSAGES = {
    "INVALID_CREDENTIALS": "Your bank did not accept that username or password. Try again.",
    "INVALID_MFA": "Your bank did not accept the security code. Try again.",
    "ITEM_LOCKED": "Your bank locked this login after too many attempts. Unlock it at your bank, then try again.",
    "INSTITUTION_DOWN": "Your bank is not responding right now. Try again later.",
    "INSTITUTION_NOT_RESPONDING": "Your bank is not responding right now. Try again later.",
    "INVALID_LINK_TOKEN": "The linking session expired. Start again.",
    "NO_ACCOUNTS": "Your bank reported no accounts that can be shared.",
}


def script_url(c: Container, gw: PlaidGateway) -> str:
    """The Link script: the setting, the demo bank's stand-in, or Plaid's CDN."""
    if c.settings.plaid_link_script_url:
        return c.settings.plaid_link_script_url
    return f"{gw.base_url}/link/link-initialize.js" if gw.env == "demo" else PLAID_LINK_JS


def start_link(
    c: Container, user_id: uuid.UUID, *, item_id: uuid.UUID | None = None, add_accounts: bool = False
) -> LinkStart:
    """Create a Link token (update mode for `item_id`, to repair it) and remember it for 4 hours.

    ``add_accounts``: the person came to share accounts they left out (linking the same login again was refused),
    so update mode shows the account picker.
    """
    gw = gateway(c)
    with unit_of_work(c.engine) as session:
        store.require_verified(session, user_id)
        repaired = session.get(PlaidItem, item_id) if item_id is not None else None
        # New accounts at the bank, or ones the user stopped sharing, can only be picked in update mode with account
        # selection on.
        selection = (
            repaired is not None
            and repaired.user_id == user_id
            and (
                add_accounts
                or repaired.status == "new_accounts_available"
                or repaired.new_accounts_since is not None  # announced, then worse news took over the status
                or store.has_unshared(session, repaired.id)
            )
        )
    token = get_access_token(c, user_id, item_id) if item_id is not None else None
    with calls_for(user_id, item_id):
        link = gw.link_token_create(
            str(user_id),
            access_token=token,
            webhook=webhook_url(c),
            redirect_uri=c.settings.plaid_redirect_uri,
            account_selection=selection,
        )
    now = c.clock()
    with unit_of_work(c.engine) as session:
        row = LinkSession(user_id=user_id, item_id=item_id, created_at=now, expires_at=now + LINK_SESSION_TTL,
                          link_token_enc=b"")  # fmt: skip
        row.link_token_enc = c.cipher.encrypt(link.link_token, table=store.LINK_TABLE, column=store.LINK_COLUMN,
                                              row_id=row.id, owner=user_id)  # fmt: skip
        session.add(row)
    return LinkStart(link.link_token, row.id, script_url(c, gw), item_id)


def resume_link(c: Container, user_id: uuid.UUID) -> LinkStart | None:
    """The user's newest open Link session (an OAuth redirect returns into a new browser session).

    It keeps the item an update-mode session repairs, so a repair that went through OAuth ends as a repair.
    """
    gw = gateway(c)
    with unit_of_work(c.engine) as session:
        row = session.execute(
            select(LinkSession)
            .where(col(LinkSession.user_id) == user_id, col(LinkSession.completed_at).is_(None))
            .where(col(LinkSession.expires_at) > c.clock())
            .order_by(col(LinkSession.created_at).desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is None:
            return None
        try:
            token = c.cipher.decrypt_text(row.link_token_enc, table=store.LINK_TABLE, column=store.LINK_COLUMN,
                                          row_id=row.id, owner=row.user_id)  # fmt: skip
        except DecryptionError:
            return None
        return LinkStart(token, row.id, script_url(c, gw), row.item_id)


def _open_session(c: Container, user_id: uuid.UUID, link_session_id: uuid.UUID) -> uuid.UUID | None:
    """Check the Link session is this user's and still open; return the item it repairs, if any."""
    with unit_of_work(c.engine) as session:
        store.require_verified(session, user_id)
        link = store.owned_link(
            session, user_id, link_session_id, "This bank linking session is unknown. Start linking again."
        )
        if link.completed_at is not None:
            raise InputError("This bank linking session was already completed. Start linking again to add another.")
        if link.expires_at <= c.clock():
            raise InputError("This bank linking session expired. Start linking again.")
        return link.item_id


def complete_link(
    c: Container,
    user_id: uuid.UUID,
    *,
    public_token: str,
    metadata: Mapping[str, Any],
    link_session_id: uuid.UUID,
    ip: str = "",
) -> ItemView:
    """Link's onSuccess: store the new bank (or, for an update-mode session, finish the repair)."""
    repairing = _open_session(c, user_id, link_session_id)
    if repairing is not None:
        return complete_repair(c, user_id, repairing, ip=ip)
    return link_public_token(c, user_id, public_token, metadata, link_session_id=link_session_id, ip=ip)


def complete_repair(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, *, ip: str = "") -> ItemView:
    """After update-mode Link: ask Plaid whether the item is healthy again and clear its repair state."""
    gw = gateway(c)
    token = get_access_token(c, user_id, item_id)
    with calls_for(user_id, item_id):
        info = gw.item_get(token)
        try:
            accounts = gw.accounts_get(token).accounts if info.error_code is None else None
        except PlaidError:
            accounts = None  # balances and new accounts follow with the next sync
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        item = store.owned_item(session, user_id, item_id)
        open_links = select(LinkSession).where(
            col(LinkSession.item_id) == item_id, col(LinkSession.completed_at).is_(None)
        )
        started = []
        for link in session.execute(open_links).scalars():
            link.completed_at = now
            started.append(link.created_at)
        if info.error_code is not None:
            # every code update mode fixes (a locked login, a password to reset...) is one to repair again, as a sync
            # marks it: "error" would read as "connected again" on Accounts and offer no repair
            status = "login_required" if info.error_code in UPDATE_MODE_FIXES else "error"
            store.set_status(item, status, info.error_code, now)
        else:
            asked = item.new_accounts_since
            if asked is not None and any(at >= asked for at in started):  # that Link showed the account picker
                item.new_accounts_since = None
            store.set_status(item, *healthy(item.new_accounts_since), now)
            # Synced at once, past the login-required pause and whatever webhook budget the bank spent meanwhile;
            # a sync running now may have read the bank before the repair: the bot asks again after it.
            if not job_rows.sync_soon(session, item.id, user_id, "repair", now):
                item.sync_requested_at = now
            if accounts is not None:  # not a list of none: an unanswered question leaves every account as it was
                store.upsert_accounts(session, item, accounts, now)
            store.record(session, event="bank_repaired", user_id=user_id, ip=ip, detail=item.institution_name)
        view = store.view(session, item)
    if info.error_code is None:
        wakeup.nudge()  # committed: the scheduler syncs it now
    return view


def link_exit(
    c: Container, user_id: uuid.UUID, *, link_session_id: uuid.UUID, error: Mapping[str, Any] | None, ip: str = ""
) -> str:
    """Link's onExit: close the session, audit an error, and say in plain words what happened."""
    code = str((error or {}).get("error_code") or "")[:64]
    with unit_of_work(c.engine) as session:
        link = store.owned_link(session, user_id, link_session_id, "This bank linking session is unknown.")
        if link.completed_at is None:
            link.completed_at = c.clock()
        if error:
            store.record(
                session, event="bank_link_failed", user_id=user_id, ip=ip, detail=f"Link exit: {code or 'error'}"
            )
    if not error:
        return "Linking was cancelled. No bank was connected."
    return _EXIT_MESSAGES.get(
        code, f"Linking did not finish ({code or 'unknown error'}). No bank was connected; try again."
    )
