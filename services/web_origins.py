"""Whether a browser's ``Origin`` is one of finsync's own pages (the check on Streamlit's socket)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def _site(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an http(s) URL as a browser's ``Origin`` names it: lower case, the host in
    IDNA, the scheme's default port left out. None for anything else (another scheme, a bad port, "null")."""
    try:
        parts = urlsplit(url.strip())
        port, name = parts.port, parts.hostname
        if parts.scheme.lower() not in ("http", "https") or not name:
            return None
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except (ValueError, UnicodeError):
        return None
    scheme = parts.scheme.lower()
    name = f"[{name}]" if ":" in name else name  # IPv6
    return scheme, name if port in (None, 80 if scheme == "http" else 443) else f"{name}:{port}"


# Names only the local network resolves (RFC 6762 .local, RFC 8375 .home.arpa, .internal, .lan, .localhost):
# an attacker's page on the internet cannot be served under them.
_LOCAL_SUFFIXES = (".local", ".home.arpa", ".internal", ".lan", ".localhost")


def _named_by_no_one_else(site: str) -> bool:
    """True for IP addresses, ``localhost``, a machine's bare name and local-network names (any port): names no
    one else's DNS can point at this server."""
    name = (urlsplit(f"//{site}").hostname or "").rstrip(".")
    if "." not in name or name.endswith(_LOCAL_SUFFIXES):
        return bool(name)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def own_page(origin: str, host: str | None, public_url: str | None) -> bool:
    """True when a browser's ``Origin`` is a page of this server: the operator's public URL, or the host (and port)
    the request was sent to. A page on another port of the same machine is neither.

    With a public URL set, the request's own host counts only when it is an address or a local name (the
    operator opening the server directly, at home or on the machine). Any other name is DNS rebinding: a page of evil.example whose name
    now resolves to this server sends ``Host`` and ``Origin`` both evil.example (Streamlit's
    ``server.allowedHosts`` guards the same way, but only when filled in by hand)."""
    seen = _site(origin)
    if seen is None:
        return False
    if public_url is not None and _site(public_url) == seen:
        return True
    if not host or _site(f"{seen[0]}://{host}") != seen:
        return False
    return public_url is None or _named_by_no_one_else(seen[1])
