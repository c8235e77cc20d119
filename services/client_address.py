"""The client's address behind reverse proxies: trust X-Forwarded-For only as far as the operator says.

Behind nginx or a platform's proxy every request comes from the proxy, so one address would stand for
every user and the per-address sign-in limit would shut everyone out together. With
``FINSYNC_PROXY_HOPS=N`` the client is the N-th address from the right of ``X-Forwarded-For``: each proxy
appends the address it saw, so entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress


def _same_computer(peer: str | None) -> str:
    """The connection's address as people read it: an IPv4 address in IPv6 dress as IPv4, and the computer's own
    loopback as 127.0.0.1, whichever way it connected (Streamlit hides a loopback peer from pages, which then
    record 127.0.0.1; a route sees ::1 when the browser took IPv6: one computer must not look like two)."""
    try:
        ip = ipaddress.ip_address((peer or "").strip("[]"))
    except ValueError:
        return peer or ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return "127.0.0.1" if ip.is_loopback else str(ip)


def client_address(peer: str | None, forwarded_for: str | None, hops: int) -> str:
    """The address to count and record for a request (``""`` when unknown)."""
    if hops <= 0 or not forwarded_for:
        return _same_computer(peer)
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if len(chain) < hops:
        return _same_computer(peer)  # fewer proxies than configured wrote here: the header is not theirs
    candidate = chain[-hops]
    try:
        return _same_computer(str(ipaddress.ip_address(candidate.strip("[]"))))
    except ValueError:
        return _same_computer(peer)  # not an address (a port, a name, garbage): do not count by it


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
