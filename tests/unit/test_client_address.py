"""Which address a request counts as, behind 0, 1 or 2 reverse proxies (the per-address sign-in limit uses it)."""

from __future__ import annotations

from services.client_address import client_address


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("203.0.113.7", "198.51.100.1", 0) == "203.0.113.7"  # a client cannot pick its address


def test_behind_one_proxy_the_rightmost_entry_is_the_client_and_a_forged_prefix_is_ignored() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", 1) == "198.51.100.1"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.1", 1) == "198.51.100.1"  # "6.6.6.6" came from the client


def test_behind_two_proxies_the_second_from_the_right() -> None:
    assert client_address("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.1", 2) == "198.51.100.1"
    assert client_address("10.0.0.2", "2001:db8::1, 10.0.0.1", 2) == "2001:db8::1"


def test_a_short_or_garbled_header_falls_back_to_the_connection() -> None:
    assert client_address("10.0.0.2", "198.51.100.1", 2) == "10.0.0.2"  # fewer entries than proxies
    assert client_address("127.0.0.1", "not-an-address", 1) == "127.0.0.1"
    assert client_address(None, "", 1) == ""


def test_one_computer_reads_as_one_address_however_it_connected() -> None:
    # the browser on the server itself reaches the route over IPv6 and the page over IPv4 (Streamlit hides a
    # loopback peer and the page records 127.0.0.1): Settings must not show the same computer twice
    for loopback in ("::1", "[::1]", "127.0.0.1", "127.0.1.1", "::ffff:127.0.0.1"):
        assert client_address(loopback, None, 0) == "127.0.0.1", loopback
    assert client_address("::ffff:203.0.113.9", None, 0) == "203.0.113.9"  # IPv4 in IPv6 dress
    assert client_address("10.0.0.2", "::ffff:198.51.100.4", 1) == "198.51.100.4"
    assert client_address("2001:db8::7", None, 0) == "2001:db8::7"  # a real IPv6 client stays itself
