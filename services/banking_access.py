"""What a banking call to Plaid needs: the configured gateway, our webhook URL and an item's access token."""

from __future__ import annotations

import uuid

from services import banking_store as store
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError, KeyMissing
from services.plaid_client import PlaidGateway

KEY_MISSING = "KEY_MISSING"


def gateway(c: Container) -> PlaidGateway:
    """The Plaid gateway, or a clear error when bank linking is not configured."""
    if c.plaid is None:
        raise FinsyncError("Bank linking is not set up: set PLAID_CLIENT_ID and PLAID_SECRET, or run in demo mode.")
    return c.plaid


def webhook_url(c: Container) -> str:
    return f"{c.settings.base_url}/webhooks/plaid"


def get_access_token(c: Container, user_id: uuid.UUID, item_id: uuid.UUID) -> str:
    """Decrypt an item's access token (for sync); an unreadable token marks the item "error"."""
    with unit_of_work(c.engine) as session:
        item = store.owned_item(session, user_id, item_id)
        try:
            return store.decrypt_token(c.cipher, item)
        except DecryptionError as exc:
            missing = exc.version if isinstance(exc, KeyMissing) else None
            store.set_status(item, "error", KEY_MISSING if missing else "TOKEN_UNREADABLE", c.clock())
            name = item.institution_name
    if missing:  # not "remove it": with the key back it reads again; removed, it stays linked at Plaid for good
        raise KeyMissing(
            f"The saved connection to {name} is locked with encryption key version {missing}, which this server "
            "no longer has. Nothing is lost: the operator must put that key back in FINSYNC_ENCRYPTION_KEYS.",
            missing,
        )
    raise DecryptionError(
        f"The saved connection to {name} cannot be read (the encryption keys changed or the data was altered). "
        "Remove it and link the bank again."
    )
