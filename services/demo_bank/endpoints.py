"""The demo bank's Plaid endpoints: each takes the bank and a request body and answers Plaid's JSON (or raises
BankError, which the app turns into Plaid's error shape)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.demo_bank import fields, problems
from services.demo_bank.bank import Bank
from services.demo_bank.catalog import INSTITUTIONS
from services.demo_bank.links import days_requested, link_session, login_ok, new_link_session
from services.demo_bank.problems import BankError
from services.demo_bank.render import accounts_json, institution_json, iso, item_json, item_status_json, streams_json
from services.demo_bank.syncing import sync_page

Handler = Callable[[Bank, dict[str, Any]], dict[str, Any]]


def _access_token(body: dict[str, Any]) -> str:
    fields.need(body, "access_token")
    return fields.text(body, "access_token")


def link_token_create(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Create a Link token (update mode when `access_token` is given)."""
    fields.need(body, "client_name", "language", "country_codes", "user")
    for name in ("client_name", "language"):
        fields.text(body, name)
    for name in ("country_codes", "products"):
        fields.texts(body, name)
    user = fields.obj(body, "user")
    fields.need(user, "client_user_id", where="user.")
    # Update mode lists the item's new accounts only with account selection on (off by default for
    # non-OAuth institutions): https://plaid.com/docs/link/update-mode/#using-update-mode-to-request-new-accounts
    selection = fields.flag(fields.obj(body, "update"), "account_selection_enabled", where="update.")
    token = new_link_session(
        bank,
        fields.text(user, "client_user_id", where="user."),
        fields.opt_text(body, "access_token"),
        fields.opt_text(body, "webhook"),
        account_selection=selection,
        days_requested=days_requested(body, where=""),
    )
    return {"link_token": token, "expiration": iso(link_session(bank, token).expires)}


def public_token_exchange(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Swap a public token for the item's access token."""
    fields.need(body, "public_token")
    item = bank.exchange(fields.text(body, "public_token"))
    return {"access_token": item.access_token, "item_id": item.item_id}


def sandbox_public_token_create(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Link an item without the UI; `options.override_username` picks its behaviour."""
    fields.need(body, "institution_id", "initial_products")
    institution_id = fields.text(body, "institution_id")
    fields.texts(body, "initial_products")
    opts = fields.obj(body, "options")
    username = fields.opt_text(opts, "override_username", where="options.") or "user_good"
    webhook = fields.opt_text(opts, "webhook", where="options.")
    days = days_requested(opts, where="options.")
    if not login_ok(username, fields.opt_text(opts, "override_password", where="options.")):
        raise BankError(400, "ITEM_ERROR", "INVALID_CREDENTIALS", "the provided credentials were not correct")
    item = bank.create_item(institution_id, username, webhook, days_requested=days)
    return {"public_token": bank.issue_public_token(item)}


def _accounts(bank: Bank, body: dict[str, Any], path: str) -> dict[str, Any]:
    token = _access_token(body)
    wanted = fields.texts(fields.obj(body, "options"), "account_ids", where="options.")
    item = bank.item_for(token, path)
    accounts = [a for a in accounts_json(item) if not wanted or a["account_id"] in wanted]
    return {"accounts": accounts, "item": item_json(item)}


def transactions_sync(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """One page of transaction updates since the cursor."""
    token = _access_token(body)
    cursor, count = fields.opt_text(body, "cursor") or "", fields.integer(body, "count", 100)
    item = bank.item_for(token, "/transactions/sync")
    return sync_page(item, cursor, count, bank.cursor_key)


def transactions_refresh(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Look for new data now: a fresh pending card charge appears and SYNC_UPDATES_AVAILABLE fires."""
    item = bank.item_for(_access_token(body), "/transactions/refresh")
    bank.mutate(item.item_id, "add", account="credit", cents=675, name="STARBUCKS STORE 0411", merchant_name="Starbucks",
                primary="FOOD_AND_DRINK", detailed="FOOD_AND_DRINK_COFFEE", pending=True)  # fmt: skip
    return {}


def recurring_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Recurring inflow and outflow streams detected in the item's history."""
    token = _access_token(body)
    wanted = fields.texts(body, "account_ids")
    item = bank.item_for(token, "/transactions/recurring/get")
    inflow, outflow = streams_json(item, wanted or None)
    return {"inflow_streams": inflow, "outflow_streams": outflow, "updated_datetime": iso(item.last_successful_update)}


def item_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """The item, its error (if any) and its update status."""
    item = bank.item_for(_access_token(body), "/item/get")
    return {"item": item_json(item), "status": item_status_json(item)}


def item_remove(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Invalidate the access token for good."""
    token = _access_token(body)
    with bank.lock:
        item = bank.item_for(token, "/item/remove")
        item.removed = True
        bank.by_token.pop(item.access_token, None)
    return {}


def institution_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """One demo institution."""
    fields.need(body, "institution_id", "country_codes")
    institution_id = fields.text(body, "institution_id")
    fields.texts(body, "country_codes")
    if institution_id not in INSTITUTIONS:
        raise BankError(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided")
    return {"institution": institution_json(institution_id)}


def webhook_key_get(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """The public JWK for a webhook signing key id."""
    fields.need(body, "key_id")
    key = bank.webhooks.keys.get(fields.text(body, "key_id"))
    if key is None:
        raise BankError(400, "INVALID_INPUT", "INVALID_WEBHOOK_VERIFICATION_KEY_ID", "invalid key_id provided")
    return {"key": key.jwk()}


def sandbox_reset_login(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Force ITEM_LOGIN_REQUIRED, as Plaid's sandbox endpoint does."""
    item = bank.item_for(_access_token(body), "/item/get")
    bank.set_fault(item.item_id, "login_required")
    return {"reset_login": True}


# The codes of Plaid's list this bank can fire.
FIRABLE = ("NEW_ACCOUNTS_AVAILABLE", "SYNC_UPDATES_AVAILABLE", "USER_PERMISSION_REVOKED")


def sandbox_fire_webhook(bank: Bank, body: dict[str, Any]) -> dict[str, Any]:
    """Plaid's /sandbox/item/fire_webhook for the codes the demo bank can act on.

    NEW_ACCOUNTS_AVAILABLE first opens an account at the bank (shared only when the user ticks it in update
    mode); USER_PERMISSION_REVOKED withdraws the item's access for good; SYNC_UPDATES_AVAILABLE just announces.
    Plaid refuses an item without a webhook URL, and so do we.
    """
    item = bank.item_for(_access_token(body), "/sandbox/item/fire_webhook")
    code = fields.opt_text(body, "webhook_code") or "DEFAULT_UPDATE"
    if code not in FIRABLE:
        raise problems.invalid_field(f"webhook_code must be one of {', '.join(FIRABLE)} for the demo bank")
    if not item.webhook:
        raise BankError(400, "INVALID_INPUT", "SANDBOX_WEBHOOK_INVALID", "the item has no webhook URL to fire at")
    if code == "NEW_ACCOUNTS_AVAILABLE":
        bank.set_fault(item.item_id, "new_accounts")
    elif code == "USER_PERMISSION_REVOKED":
        bank.set_fault(item.item_id, "permission_revoked")
    else:
        bank.notify(item, "TRANSACTIONS", code, initial_update_complete=True, historical_update_complete=True)
    return {"webhook_fired": True}


HANDLERS: dict[str, Handler] = {
    "/link/token/create": link_token_create,
    "/item/public_token/exchange": public_token_exchange,
    "/sandbox/public_token/create": sandbox_public_token_create,
    "/sandbox/item/reset_login": sandbox_reset_login,
    "/sandbox/item/fire_webhook": sandbox_fire_webhook,
    "/accounts/get": lambda b, body: _accounts(b, body, "/accounts/get"),
    "/accounts/balance/get": lambda b, body: _accounts(b, body, "/accounts/balance/get"),
    "/transactions/sync": transactions_sync,
    "/transactions/refresh": transactions_refresh,
    "/transactions/recurring/get": recurring_get,
    "/item/get": item_get,
    "/item/remove": item_remove,
    "/institutions/get_by_id": institution_get,
    "/webhook_verification_key/get": webhook_key_get,
}
