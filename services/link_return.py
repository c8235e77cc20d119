"""Coming back from a bank's OAuth sign-in signed out: what to keep across sign-in, and where to go next.

Only Plaid's ``oauth_state_id`` is carried, and only when it is a short token of safe characters (Plaid's
are UUIDs). The destination is the path of PLAID_REDIRECT_URI, set by the operator, never a URL or path the
visitor sent, so sign-in cannot be turned into an open redirect.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

OAUTH_STATE_PARAM = "oauth_state_id"
_OAUTH_STATE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Plain path segments only: no "//host", no "/\host" (browsers read a backslash as a slash), no dot tricks.
_OWN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")


def oauth_state_id(value: object) -> str | None:
    """The value when it can be Plaid's ``oauth_state_id``; anything else is dropped (None)."""
    return value if isinstance(value, str) and _OAUTH_STATE_ID.fullmatch(value) else None


def redirect_path(redirect_uri: str | None) -> str:
    """The path of PLAID_REDIRECT_URI on this origin (the root when it is unset or not a plain path)."""
    path = urlsplit(redirect_uri or "").path.rstrip("/")
    return path if _OWN_PATH.fullmatch(path) else "/"


def after_sign_in(redirect_uri: str | None, state: object) -> str:
    """Where the browser goes once signed in: back to the bank's return URL to resume Link, or home."""
    token = oauth_state_id(state)
    if token is None:
        return "/"
    return f"{redirect_path(redirect_uri)}?{urlencode({OAUTH_STATE_PARAM: token})}"
