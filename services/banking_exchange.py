"""Public-token exchange: Link's result stored as a new item, or removed at Plaid again when that fails."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from models import LinkSession, PlaidItem, User
from services import banking_store as store
from services import revocations, safe_text, wakeup
from services.banking_access import gateway
from services.banking_views import BANK_WANTS, ItemView, status_message
from services.container import Container
from services.db import unit_of_work
from services.errors import DatabaseUnavailable, DuplicateConnection, FinsyncError, InputError
from services.plaid_client import PlaidGateway
from services.plaid_errors import InstitutionDown, LoginRequired, PlaidError, RateLimited, Transient
from services.plaid_events import calls_for
from services.plaid_types import AccountsResult, ItemAccess

log = logging.getLogger("finsync.banking")
T = TypeVar("T")
EXCHANGE_TRIES = 3  # the public token lives 30 minutes: worth a retry before sending the person back to Link
EXCHANGE_PAUSE = 0.5  # seconds, doubling, with full jitter
STORE_TRIES = 3  # the item exists at Plaid now: a busy or briefly lost database is worth a few more tries
STORE_PAUSE = 0.2  # seconds, doubling, with full jitter


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


def _transient(exc: BaseException) -> bool:
    """A database error another try may not meet: locked or busy, a lost connection, a serialization conflict.

    psycopg2 raises those as OperationalError (TransactionRollbackError included), SQLite "database is locked";
    an IntegrityError or a bug would fail the same way again.
    """
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _store_retrying(store_once: Callable[[], T]) -> T:
    """Run the storing unit of work, again after a transient database error, at most ``STORE_TRIES`` times."""
    for attempt in range(STORE_TRIES):
        try:
            return store_once()
        except DBAPIError as exc:
            if attempt == STORE_TRIES - 1 or not _transient(exc):
                raise
            log.warning("storing a linked bank failed (%s); trying again", type(exc.orig).__name__)
            time.sleep(random.uniform(0, STORE_PAUSE * 2**attempt))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable")


def _not_linked(exc: PlaidError) -> FinsyncError:
    """What a person reads when the bank failed just after Link: Plaid's own words speak of an "item" whose "login
    details have changed", which says nothing to someone who has just signed in; ours say what to do next."""
    ref = f"({exc.code}, request {exc.request_id or 'n/a'})"
    if exc.code in BANK_WANTS:  # not a new sign-in: "sign in again" would send the person into the same refusal
        wants = BANK_WANTS[exc.code]
        return FinsyncError(f"{wants.situation}, so nothing was linked. {wants.then('link it again')} {ref}")
    if isinstance(exc, LoginRequired):
        return FinsyncError(f"Your bank asked you to sign in again before it shared your accounts, so nothing was "
                            f"linked. Link it again and finish every step your bank asks for. {ref}")  # fmt: skip
    if isinstance(exc, InstitutionDown):
        return FinsyncError(f"Your bank is not responding right now, so nothing was linked. Try linking it again "
                            f"later. {ref}")  # fmt: skip
    return FinsyncError(f"Linking your bank did not finish and nothing was saved: {exc}")


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


def _store(
    c: Container,
    user_id: uuid.UUID,
    row_id: uuid.UUID,
    access: ItemAccess,
    result: AccountsResult,
    institution: tuple[str, str],
    link_session_id: uuid.UUID | None,
    ip: str,
) -> tuple[ItemView | None, PlaidItem | None]:
    """Store the new item in one unit of work: (its view, None), or (None, the connection this login duplicates)."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        session.get(User, user_id, with_for_update=True)  # one link at a time per user: no twin items
        stored = session.get(PlaidItem, row_id)
        if stored is not None:  # an earlier try committed, then lost its connection before hearing so
            return store.view(session, stored), None
        duplicate = store.find_duplicate(session, user_id, institution[0], result.accounts)
        if duplicate is not None:
            return None, duplicate
        item, taken = store.store_item(session, c.cipher, row_id=row_id, user_id=user_id, access=access,
                                       institution=institution, accounts=result.accounts, now=now)  # fmt: skip
        if link_session_id is not None:
            link = session.get(LinkSession, link_session_id)
            if link is not None and link.user_id == user_id:
                link.completed_at = now
        kept = f"; continues the kept history of {taken} account(s)" if taken else ""
        store.record(session, event="bank_linked", user_id=user_id, ip=ip, detail=institution[1] + kept)
        return store.view(session, item), None


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
    if link_session_id is not None:  # someone else's Link session reads as missing (audited), before any exchange
        with unit_of_work(c.engine) as session:
            store.owned_link(
                session, user_id, link_session_id, "This bank linking session is unknown. Start linking again."
            )
    row_id = uuid.uuid4()
    with calls_for(user_id, row_id):
        try:
            access = _patiently(lambda: gw.exchange_public_token(public_token))
        except PlaidError as exc:
            _failed(c, user_id, ip, f"exchange failed: {exc.code}")
            if exc.code == "INVALID_PUBLIC_TOKEN":
                raise InputError("This bank link was already used or has expired. Start linking again.") from None
            raise _not_linked(exc) from None
        try:
            result = gw.accounts_get(access.access_token)
        except PlaidError as exc:
            _discard(c, gw, user_id, access, f"accounts failed: {exc.code}", ip)
            raise _not_linked(exc) from None
        raw_inst = metadata.get("institution")
        inst: Mapping[str, Any] = raw_inst if isinstance(raw_inst, Mapping) else {}
        # Plaid's item names the bank; Link's metadata (sent by the browser, so forgeable) only when it is null.
        institution_id = result.item.institution_id or safe_text.clean(str(inst.get("institution_id") or "unknown"))
        name = result.item.institution_name or " ".join(
            safe_text.clean(str(inst.get("name") or institution_id)).split()
        )

        try:
            view, duplicate = _store_retrying(
                lambda: _store(c, user_id, row_id, access, result, (institution_id, name), link_session_id, ip)
            )
        except BaseException as exc:
            _discard(c, gw, user_id, access, "storing failed", ip, name)
            if isinstance(exc, DBAPIError) and _transient(exc):
                raise DatabaseUnavailable(
                    f"Linking {name} did not finish and nothing was saved: the database did not answer. "
                    "Start linking again in a minute."
                ) from None
            raise
    if duplicate is not None:
        with calls_for(user_id, duplicate.id):
            _discard(c, gw, user_id, access, f"duplicate of an existing connection to {name}", ip, name)
        if duplicate.status == "permission_revoked":  # Plaid answers ITEM_NOT_FOUND for it: a repair would fail
            raise DuplicateConnection(
                f"You already linked {name} with these accounts, but that connection lost its access at the bank "
                f"and cannot be repaired, so nothing new was added. Remove it on its card below (you can keep its "
                f"history), then link {name} again.",
                duplicate.id,
                repairable=False,
            )
        if duplicate.status == "error":  # unreadable, its key gone, or a bank Plaid no longer serves: not Link's to fix
            raise DuplicateConnection(
                f"You already linked {name} with these accounts, so nothing new was added, and a repair cannot fix "
                f"that connection: {status_message(duplicate.status, duplicate.status_code)}",
                duplicate.id,
                repairable=False,
            )
        raise DuplicateConnection(
            f"You already linked {name} with these accounts, so nothing new was added. To share more of its "
            "accounts, or if that connection stopped working, use “Repair connection” on its card below.",
            duplicate.id,
        )
    assert view is not None
    wakeup.nudge()  # committed, and a new bank is due at once: its first sync starts now, not at the next tick
    return view
