"""The client's address behind reverse proxies: trust X-Forwarded-For only as far as the operator says.

Behind nginx or a platform's proxy every request comes from the proxy, so one address would stand for
every user and the per-address sign-in limit would shut everyone out together. With
``FINSYNC_PROXY_HOPS=N`` the client is the N-th address from the right of ``X-Forwarded-For``: each proxy
appends the address it saw, so entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress


def client_address(peer: str | None, forwarded_for: str | None, hops: int) -> str:
    """The address to count and record for a request (``""`` when unknown)."""
    if hops <= 0 or not forwarded_for:
        return peer or ""
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if len(chain) < hops:
        return peer or ""  # fewer proxies than configured wrote here: the header is not theirs
    candidate = chain[-hops]
    try:
        return str(ipaddress.ip_address(candidate.strip("[]")))
    except ValueError:
        return peer or ""  # not an address (a port, a name, garbage): do not count by it


def sender(address: str) -> str:
    """Whose budget a request spends: its IPv4 address, or its IPv6 address's /64 (one host's own range)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # no address (a unix socket): one shared budget, under the ceiling like the rest
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
