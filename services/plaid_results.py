"""Whole gateway results mapped from Plaid JSON: accounts with their item, recurring streams, a webhook key."""

from __future__ import annotations

from services.plaid_mapping import Json, as_datetime, map_accounts, map_item, map_stream
from services.plaid_types import AccountsResult, RecurringResult, WebhookKey


def map_accounts_result(d: Json) -> AccountsResult:
    """Map an /accounts/get or /accounts/balance/get body."""
    return AccountsResult(map_accounts(d["accounts"]), map_item(d["item"]), str(d["request_id"]))


def map_recurring_result(d: Json) -> RecurringResult:
    """Map a /transactions/recurring/get body."""
    return RecurringResult(
        tuple(map_stream(s) for s in d["inflow_streams"]),
        tuple(map_stream(s) for s in d["outflow_streams"]),
        as_datetime(d.get("updated_datetime")),
        str(d["request_id"]),
    )


def map_webhook_key(k: Json) -> WebhookKey:
    """Map the ``key`` of a /webhook_verification_key/get body."""
    return WebhookKey(
        str(k["kid"]), str(k["alg"]), str(k["crv"]), str(k["kty"]), str(k["use"]), str(k["x"]), str(k["y"]),
        int(k["created_at"]), None if k.get("expired_at") is None else int(k["expired_at"]),
    )  # fmt: skip
