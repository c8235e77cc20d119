"""Linking banks through Plaid Link: start, resume, complete, repair and exit."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlmodel import col

from models import LinkSession, PlaidItem, User
from services import banking_store as store
from services import revocations
from services.banking_views import ItemView, LinkStart
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError, DuplicateConnection, FinsyncError, InputError, NotFound
from services.plaid_client import PlaidGateway
from services.plaid_events import calls_for
from services.plaid_types import ItemAccess, PlaidError, RateLimited, Transient

log = logging.getLogger("finsync.banking")
T = TypeVar("T")
LINK_SESSION_TTL = timedelta(hours=4)
EXCHANGE_TRIES = 3  # the public token lives 30 minutes: worth a retry before sending the person back to Link
EXCHANGE_PAUSE = 0.5  # seconds, doubling, with full jitter
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


def _patiently(call: Callable[[], T]) -> T:
    """Retry a call a person is waiting on after Plaid refused it (429, 5xx): three tries within seconds.

    Not after a timeout or a lost connection: Plaid may have done the work, and a public token exchanged
    once cannot be exchanged again, so a retry would only turn "try again" into "link already used".
    """
    for attempt in range(EXCHANGE_TRIES):
        try:
            return call()
        except (RateLimited, Transient) as exc:
            if attempt == EXCHANGE_TRIES - 1 or exc.http_status is None:
                raise
            time.sleep(random.uniform(0, EXCHANGE_PAUSE * 2**attempt))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable")


def gateway(c: Container) -> PlaidGateway:
    """The Plaid gateway, or a clear error when bank linking is not configured."""
    if c.plaid is None:
        raise FinsyncError("Bank linking is not set up: set PLAID_CLIENT_ID and PLAID_SECRET, or run in demo mode.")
    return c.plaid


def webhook_url(c: Container) -> str:
    return f"{c.settings.base_url}/webhooks/plaid"


def script_url(c: Container, gw: PlaidGateway) -> str:
    """The Link script: the setting, the demo bank's stand-in, or Plaid's CDN."""
    if c.settings.plaid_link_script_url:
        return c.settings.plaid_link_script_url
    return f"{gw.base_url}/link/link-initialize.js" if gw.env == "demo" else PLAID_LINK_JS


def get_access_token(c: Container, user_id: uuid.UUID, item_id: uuid.UUID) -> str:
    """Decrypt an item's access token (for sync); an unreadable token marks the item "error"."""
    with unit_of_work(c.engine) as session:
        item = store.owned_item(session, user_id, item_id)
        try:
            return store.decrypt_token(c.cipher, item)
        except DecryptionError:
            store.set_status(item, "error", "TOKEN_UNREADABLE", c.clock())
            name = item.institution_name
    raise DecryptionError(
        f"The saved connection to {name} cannot be read (the encryption keys changed or the data was altered). "
        "Remove it and link the bank again."
    )


def start_link(c: Container, user_id: uuid.UUID, *, item_id: uuid.UUID | None = None) -> LinkStart:
    """Create a Link token (update mode for `item_id`, to repair it) and remember it for 4 hours."""
    gw = gateway(c)
    with unit_of_work(c.engine) as session:
        store.require_verified(session, user_id)
        repaired = session.get(PlaidItem, item_id) if item_id is not None else None
        # New accounts at the bank can only be picked in update mode with account selection on.
        selection = repaired is not None and repaired.user_id == user_id and repaired.status == "new_accounts_available"
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
                                              row_id=row.id)  # fmt: skip
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
                                          row_id=row.id)  # fmt: skip
        except DecryptionError:
            return None
        return LinkStart(token, row.id, script_url(c, gw), row.item_id)


def _open_session(c: Container, user_id: uuid.UUID, link_session_id: uuid.UUID) -> uuid.UUID | None:
    """Check the Link session is this user's and still open; return the item it repairs, if any."""
    with unit_of_work(c.engine) as session:
        store.require_verified(session, user_id)
        link = session.get(LinkSession, link_session_id)
        if link is None or link.user_id != user_id:
            raise NotFound("This bank linking session is unknown. Start linking again.")
        if link.completed_at is not None:
            raise InputError("This bank linking session was already completed. Start linking again to add another.")
        if link.expires_at <= c.clock():
            raise InputError("This bank linking session expired. Start linking again.")
        return link.item_id


def _failed(c: Container, user_id: uuid.UUID, ip: str, detail: str) -> None:
    with unit_of_work(c.engine) as session:
        store.record(session, event="bank_link_failed", user_id=user_id, ip=ip, detail=detail)


def _discard(
    c: Container, gw: PlaidGateway, user_id: uuid.UUID, access: ItemAccess, why: str, ip: str, institution: str = ""
) -> None:
    """Remove a freshly exchanged item at Plaid so no unused, billable connection is left behind.

    What Plaid does not confirm is queued for retry in the unit of work that audits the failure.
    """
    code = revocations.remove_at_plaid(gw, access.access_token)
    outcome = "removed at Plaid"
    try:
        with unit_of_work(c.engine) as session:
            if code is not None:
                revocations.enqueue(session, c.cipher, plaid_item_id=access.item_id, institution=institution,
                                    token=access.access_token, reason=revocations.LINK_DISCARD, error=code,
                                    now=c.clock())  # fmt: skip
                outcome = f"not removed at Plaid ({code}), queued for retry; Plaid item {access.item_id}"
            store.record(session, event="bank_link_failed", user_id=user_id, ip=ip, detail=f"{why}; {outcome}")
    except Exception:
        if code is not None:  # the token is lost with this transaction: say which item needs removing by hand
            log.error("Plaid item %s was not removed at Plaid (%s) and could not be queued", access.item_id, code)
        raise


def link_public_token(
    c: Container,
    user_id: uuid.UUID,
    public_token: str,
    metadata: Mapping[str, Any],
    *,
    link_session_id: uuid.UUID | None,
    ip: str = "",
) -> ItemView:
    """Exchange, fetch accounts, then store item, institution and accounts in one unit of work."""
    gw = gateway(c)
    if not public_token or not isinstance(public_token, str):
        raise InputError("Linking did not return a bank connection. Start linking again.")
    row_id = uuid.uuid4()
    with calls_for(user_id, row_id):
        try:
            access = _patiently(lambda: gw.exchange_public_token(public_token))
        except PlaidError as exc:
            _failed(c, user_id, ip, f"exchange failed: {exc.code}")
            if exc.code == "INVALID_PUBLIC_TOKEN":
                raise InputError("This bank link was already used or has expired. Start linking again.") from None
            raise FinsyncError(f"Linking your bank did not finish and nothing was saved: {exc}") from None
        try:
            result = gw.accounts_get(access.access_token)
        except PlaidError as exc:
            _discard(c, gw, user_id, access, f"accounts failed: {exc.code}", ip)
            raise FinsyncError(f"Linking your bank did not finish and nothing was saved: {exc}") from None
        raw_inst = metadata.get("institution")
        inst: Mapping[str, Any] = raw_inst if isinstance(raw_inst, Mapping) else {}
        institution_id = result.item.institution_id or str(inst.get("institution_id") or "unknown")
        name = result.item.institution_name or str(inst.get("name") or institution_id)
        now = c.clock()
        try:
            with unit_of_work(c.engine, immediate=True) as session:
                session.get(User, user_id, with_for_update=True)  # one link at a time per user: no twin items
                duplicate = store.find_duplicate(session, user_id, institution_id, result.accounts)
                if duplicate is None:
                    item, taken = store.store_item(session, c.cipher, row_id=row_id, user_id=user_id, access=access,
                                                   institution=(institution_id, name), accounts=result.accounts,
                                                   now=now)  # fmt: skip
                    if link_session_id is not None:
                        link = session.get(LinkSession, link_session_id)
                        if link is not None:
                            link.completed_at = now
                    kept = f"; continues the kept history of {taken} account(s)" if taken else ""
                    store.record(session, event="bank_linked", user_id=user_id, ip=ip, detail=name + kept)
                    view = store.view(session, item)
        except BaseException:
            _discard(c, gw, user_id, access, "storing failed", ip, name)
            raise
    if duplicate is not None:
        with calls_for(user_id, duplicate.id):
            _discard(c, gw, user_id, access, f"duplicate of an existing connection to {name}", ip, name)
        raise DuplicateConnection(
            f"You already linked {name} with these accounts, so nothing new was added. If that connection "
            "stopped working, use “Repair connection” on its card below.",
            duplicate.id,
        )
    return view


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
            accounts = gw.accounts_get(token).accounts if info.error_code is None else ()
        except PlaidError:
            accounts = ()  # balances and new accounts follow with the next sync
    now = c.clock()
    with unit_of_work(c.engine) as session:
        item = store.owned_item(session, user_id, item_id)
        open_links = select(LinkSession).where(
            col(LinkSession.item_id) == item_id, col(LinkSession.completed_at).is_(None)
        )
        for link in session.execute(open_links).scalars():
            link.completed_at = now
        if info.error_code is not None:
            status = "login_required" if info.error_code == "ITEM_LOGIN_REQUIRED" else "error"
            store.set_status(item, status, info.error_code, now)
        else:
            store.set_status(item, "ok", None, now)
            item.sync_requested_at = now  # the bot syncs it on its next tick, past the login-required pause
            store.upsert_accounts(session, item, accounts, now)
            store.record(session, event="bank_repaired", user_id=user_id, ip=ip, detail=item.institution_name)
        return store.view(session, item)


def link_exit(
    c: Container, user_id: uuid.UUID, *, link_session_id: uuid.UUID, error: Mapping[str, Any] | None, ip: str = ""
) -> str:
    """Link's onExit: close the session, audit an error, and say in plain words what happened."""
    code = str((error or {}).get("error_code") or "")[:64]
    with unit_of_work(c.engine) as session:
        link = session.get(LinkSession, link_session_id)
        if link is None or link.user_id != user_id:
            raise NotFound("This bank linking session is unknown.")
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
