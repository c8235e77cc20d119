"""What leaves the banking service: frozen views of linked banks, and their status in plain words."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

STATUSES = (
    "ok",
    "login_required",
    "pending_expiration",
    "pending_disconnect",
    "new_accounts_available",
    "permission_revoked",
    "error",
)
# Statuses that Link's update mode fixes ("Repair connection").
NEEDS_REPAIR = frozenset({"login_required", "pending_expiration", "pending_disconnect", "new_accounts_available"})
# Statuses the user must act on: those, and the ones only removing and linking the bank again fixes.
NEEDS_ATTENTION = NEEDS_REPAIR | {"permission_revoked", "error"}
_MESSAGES = {
    "ok": "Connected.",
    "login_required": "Your bank needs you to sign in again. Use “Repair connection” to keep syncing.",
    "pending_expiration": "Your permission to read this bank expires soon. Use “Repair connection” to renew it.",
    "pending_disconnect": "This bank connection will stop working soon. Use “Repair connection” to keep it.",
    "new_accounts_available": "Your bank has new accounts you can add. Use “Repair connection” to choose them.",
    "permission_revoked": "Access was revoked at your bank. Remove this connection and link the bank again.",
}


@dataclass(frozen=True)
class BankWants:
    """What the bank wants when it refused for something other than a new sign-in (codes that Link's update mode
    fixes, services/plaid_errors.UPDATE_MODE_FIXES): "sign in again" would send the person into the same refusal.
    Said once here; each place a person reads it (just after Link, on the card, in the sync history) ends it with
    its own next step."""

    situation: str  # what the bank did, as a clause: "Your bank has locked your online banking"
    at_bank: str | None = None  # what to do at the bank first, if anything
    in_link: str | None = None  # else what to do in Link once it opens

    def then(self, action: str) -> str:
        """The fix as a sentence ending in ``action`` ("link it again", "use “Repair connection”")."""
        if self.at_bank:
            return f"{self.at_bank}, then {action}."
        return f"{action[:1].upper()}{action[1:]} and {self.in_link}."


BANK_WANTS = {
    "ITEM_LOCKED": BankWants("Your bank has locked your online banking", at_bank="Unlock it at your bank"),
    "PASSWORD_RESET_REQUIRED": BankWants("Your bank needs you to reset your password there", at_bank="Reset it"),
    "USER_SETUP_REQUIRED": BankWants(
        "Your bank needs you to finish something on its own site (such as accepting new terms)", at_bank="Do that"
    ),
    "ACCESS_NOT_GRANTED": BankWants(
        "Your bank is not sharing the data finsync needs", in_link="allow access to your accounts and transactions"
    ),
    "NO_ACCOUNTS": BankWants("Your bank shares no accounts with finsync", in_link="choose at least one account"),
}
_ERRORS = {
    "TOKEN_UNREADABLE": "The saved connection cannot be read (the encryption keys changed or the data was "
    "altered). Remove it and link the bank again.",
    "PRODUCTS_NOT_SUPPORTED": "Your bank no longer makes its transactions available through Plaid, so this "
    "connection cannot sync. Remove it; you can keep its history.",
    "INSTITUTION_NO_LONGER_SUPPORTED": "Plaid no longer supports this bank, so this connection cannot sync. Remove "
    "it; you can keep its history.",
    "KEY_MISSING": "This server no longer has the encryption key that protects this connection. Nothing is lost: "
    "ask the operator to put the key back; until then it cannot sync or be removed.",
}


@dataclass(frozen=True)
class AccountView:
    """One account of a linked bank; balances in minor units (Plaid's meaning: credit `current` is owed)."""

    id: uuid.UUID
    name: str
    official_name: str | None
    mask: str | None
    type: str
    subtype: str | None
    currency: str | None
    current_minor: int | None
    available_minor: int | None
    limit_minor: int | None
    balance_updated_at: datetime | None
    unshared_since: datetime | None = None  # the bank stopped listing it: history kept, balance as of then


@dataclass(frozen=True)
class ItemView:
    """One linked bank login with its accounts and what, if anything, the user must do."""

    id: uuid.UUID
    institution_id: str
    institution_name: str
    status: str
    status_code: str | None
    status_message: str
    consent_expires_at: datetime | None
    needs_repair: bool
    created_at: datetime
    accounts: list[AccountView]

    @property
    def needs_attention(self) -> bool:
        """The user must act: repair it, or (access revoked, connection unreadable) remove it and link again."""
        return self.status in NEEDS_ATTENTION


@dataclass(frozen=True)
class LinkStart:
    """What the page needs to open Plaid Link: the token, our session id, the script, and the item it repairs."""

    link_token: str = field(repr=False)
    link_session_id: uuid.UUID
    script_url: str
    repair_item_id: uuid.UUID | None = None  # set for update mode (a repair), None for a new link


def status_message(status: str, code: str | None, consent_expires_at: datetime | None = None) -> str:
    """The status in words a user can act on."""
    when = consent_expires_at.strftime("%d %b %Y") if consent_expires_at is not None else None
    if status == "pending_expiration" and when:
        return f"Your permission to read this bank expires on {when}. Use “Repair connection” to renew it."
    if status == "pending_disconnect" and when:
        return f"This bank connection will stop working on {when}. Use “Repair connection” to keep it."
    if status == "login_required" and code in BANK_WANTS:
        wants = BANK_WANTS[code]
        return f"{wants.situation}. {wants.then('use “Repair connection”')}"
    if status in _MESSAGES:
        return _MESSAGES[status]
    if code in _ERRORS:
        return _ERRORS[code]
    return f"The bank reported a problem ({code or 'unknown'}). Try again later; if it stays, repair or relink it."


def healthy(new_accounts_since: datetime | None) -> tuple[str, str | None]:
    """The status of a connection that works again: "ok", or still asking which new accounts to share."""
    return ("new_accounts_available", "NEW_ACCOUNTS_AVAILABLE") if new_accounts_since is not None else ("ok", None)


def needs_repair(status: str) -> bool:
    """True when Link's update mode is the fix."""
    return status in NEEDS_REPAIR
