"""Where sign-in sends the browser after a bank's OAuth return: always a path of ours, whatever the inputs."""

from __future__ import annotations

import pytest

from services.link_return import after_sign_in


@pytest.mark.parametrize(
    ("redirect_uri", "expected"),
    [
        (None, "/?oauth_state_id=abc-123"),
        ("https://finsync.example.com", "/?oauth_state_id=abc-123"),
        ("https://finsync.example.com/accounts", "/accounts?oauth_state_id=abc-123"),
        ("https://finsync.example.com/money/accounts", "/money/accounts?oauth_state_id=abc-123"),
        # A mistyped setting still keeps the browser on this origin (protocol-relative or backslash paths).
        ("https://finsync.example.com//evil.example/x", "/?oauth_state_id=abc-123"),
        ("https://finsync.example.com/\\evil.example", "/?oauth_state_id=abc-123"),
        ("https://finsync.example.com/../accounts", "/?oauth_state_id=abc-123"),
    ],
)
def test_the_destination_is_the_configured_path_on_this_origin(redirect_uri: str | None, expected: str) -> None:
    assert after_sign_in(redirect_uri, "abc-123") == expected


@pytest.mark.parametrize("state", [None, 7, ["abc"], "", "a b", "abc?x=1", "abc#frag", "%2F%2Fevil", "é", "a" * 129])
def test_anything_but_an_oauth_state_id_goes_home(state: object) -> None:
    assert after_sign_in("https://finsync.example.com/accounts", state) == "/"
