"""Plaid-shaped API errors raised inside the demo bank and rendered as Plaid's error body."""

from __future__ import annotations

from typing import Any


class BankError(Exception):
    """An error the demo bank answers with, in Plaid's `{error_type, error_code, ...}` shape."""

    def __init__(self, status: int, error_type: str, error_code: str, message: str, display: str | None = None) -> None:
        super().__init__(error_code)
        self.status = status
        self.error_type = error_type
        self.error_code = error_code
        self.message = message
        self.display = display

    def fields(self) -> dict[str, Any]:
        """The error's own fields, the same in an API answer, an item's `error` and a webhook."""
        # PlaidError (2020-09-14 spec): `error_code_reason` only for OAuth item errors, `causes` only for
        # Assets and user errors, `status` only in webhooks; each is omitted otherwise, not sent empty.
        return {
            "error_type": self.error_type,
            "error_code": self.error_code,
            "error_message": self.message,
            "display_message": self.display,
            "documentation_url": f"https://plaid.com/docs/errors/#{self.error_code.lower()}",
            "suggested_action": None,
        }

    def body(self, request_id: str) -> dict[str, Any]:
        """Return the JSON body Plaid answers an API call with for this error."""
        return {**self.fields(), "request_id": request_id}

    def webhook_body(self) -> dict[str, Any]:
        """Return the `error` object of an ITEM ERROR webhook: with `status`, without `request_id`."""
        return {**self.fields(), "status": self.status}


def invalid_keys() -> BankError:
    """Wrong or missing client_id/secret."""
    return BankError(400, "INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided")


def invalid_token(kind: str = "access") -> BankError:
    """An access, public or link token the bank does not know."""
    code = {"access": "INVALID_ACCESS_TOKEN", "public": "INVALID_PUBLIC_TOKEN", "link": "INVALID_LINK_TOKEN"}[kind]
    return BankError(400, "INVALID_INPUT", code, f"could not find matching {kind} token")


def item_not_found() -> BankError:
    """Every call for an item whose access the user withdrew (Plaid's item errors: ITEM_NOT_FOUND)."""
    return BankError(
        400,
        "ITEM_ERROR",
        "ITEM_NOT_FOUND",
        "The Item you requested cannot be found. This Item does not exist, has been previously removed via "
        "/item/remove, or has had access removed by the user.",
    )


def permission_revoked() -> BankError:
    """The `error` an ITEM USER_PERMISSION_REVOKED webhook carries."""
    return BankError(
        400,
        "ITEM_ERROR",
        "USER_PERMISSION_REVOKED",
        "the holder of this account has revoked their permission for your application to access it",
    )


def invalid_field(message: str) -> BankError:
    """A request field with a bad value."""
    return BankError(400, "INVALID_REQUEST", "INVALID_FIELD", message)


def missing_fields(names: list[str]) -> BankError:
    """Required request fields that are absent."""
    return BankError(
        400, "INVALID_REQUEST", "MISSING_FIELDS", "the following required fields are missing: " + ", ".join(names)
    )


def invalid_body() -> BankError:
    """A body that is not a JSON object."""
    return BankError(400, "INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON")


def login_required() -> BankError:
    """The item needs the user to sign in again through Link update mode."""
    return BankError(
        400,
        "ITEM_ERROR",
        "ITEM_LOGIN_REQUIRED",
        "the login details of this item have changed (credentials, MFA, or required user action) and a user login "
        "is required to update this information. use Link's update mode to restore the item to a good state",
        "The login details of this item have changed. Please log in again to restore access.",
    )


# Each code as plaid.com/docs/errors/rate-limit-exceeded names it for that endpoint; any other endpoint: RATE_LIMIT.
RATE_LIMIT_CODES = {
    "/transactions/sync": "TRANSACTIONS_SYNC_LIMIT",
    "/transactions/refresh": "TRANSACTIONS_REFRESH_LIMIT",
    "/accounts/get": "ACCOUNTS_LIMIT",
    "/accounts/balance/get": "ACCOUNTS_BALANCE_GET_LIMIT",
    "/item/get": "ITEM_GET_LIMIT",
}


def rate_limited(path: str) -> BankError:
    """HTTP 429 with Plaid's endpoint-specific code under error_type RATE_LIMIT_EXCEEDED."""
    code = RATE_LIMIT_CODES.get(path, "RATE_LIMIT")
    return BankError(
        429, "RATE_LIMIT_EXCEEDED", code, "rate limit exceeded for attempts to access this item. please try again later"
    )


def internal_error() -> BankError:
    """HTTP 500 API_ERROR."""
    return BankError(500, "API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred")


def institution_down() -> BankError:
    """The institution is not answering."""
    return BankError(
        400,
        "INSTITUTION_ERROR",
        "INSTITUTION_DOWN",
        "this institution is not currently responding to this request. please try again soon",
        "This financial institution is not currently responding to requests. We apologize for the inconvenience.",
    )


def mutation_during_pagination() -> BankError:
    """The ledger changed between two pages of one /transactions/sync pagination."""
    return BankError(
        400,
        "TRANSACTIONS_ERROR",
        "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
        "Underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
    )


def not_found(path: str) -> BankError:
    """An endpoint the demo bank does not emulate."""
    return BankError(404, "INVALID_REQUEST", "NOT_FOUND", f"unknown endpoint {path}")


def wrong_method(path: str, method: str) -> BankError:
    """A method other than POST on an API endpoint (every Plaid endpoint is POST with a JSON body)."""
    return BankError(
        405, "INVALID_REQUEST", "NOT_FOUND", f"{method} {path} is not supported: use POST with a JSON body"
    )
