"""What a banking call to Plaid needs: the configured gateway, our webhook URL and an item's access token."""

from __future__ import annotations

import uuid

from services import banking_store as store
from services.container import Container
from services.db import unit_of_work
from services.errors import DecryptionError, FinsyncError
from services.plaid_client import PlaidGateway


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
        except DecryptionError:
            store.set_status(item, "error", "TOKEN_UNREADABLE", c.clock())
            name = item.institution_name
    raise DecryptionError(
        f"The saved connection to {name} cannot be read (the encryption keys changed or the data was altered). "
        "Remove it and link the bank again."
    )
