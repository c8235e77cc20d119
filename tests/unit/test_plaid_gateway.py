"""The gateway's wiring without a network: a timeout on every call, and the host each PLAID_ENV reaches."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import plaid
import pytest
import urllib3

from services.container import build_gateway
from services.plaid_client import PlaidGateway
from services.plaid_errors import Transient
from tests.factories import make_settings

# Public methods that are not one Plaid call each; anything else public must pass a timeout.
NOT_API_CALLS = {"with_recorder"}


class _Stop(urllib3.exceptions.ProtocolError):
    """Raised where the SDK would open a connection: the gateway reports it as a network error."""


@pytest.fixture
def sdk_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``ApiClient.call_api`` the SDK makes: the host it would reach and its keyword arguments."""
    calls: list[dict[str, Any]] = []

    def call_api(self: plaid.ApiClient, resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append({"url": self.configuration.host + resource_path, "method": method, **kwargs})
        raise _Stop("no network in unit tests")

    monkeypatch.setattr(plaid.ApiClient, "call_api", call_api)
    return calls


def _api_methods() -> list[str]:
    names = [n for n, _ in inspect.getmembers(PlaidGateway, inspect.isfunction) if not n.startswith("_")]
    return sorted(set(names) - NOT_API_CALLS)


def _call(gateway: PlaidGateway, name: str) -> None:
    """Call a gateway method with a placeholder for every required argument."""
    method = getattr(gateway, name)
    required = [
        p
        for p in inspect.signature(method).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    positional = [f"{p.name}-1" for p in required if p.kind is p.POSITIONAL_OR_KEYWORD]
    keywords = {p.name: f"{p.name}-1" for p in required if p.kind is p.KEYWORD_ONLY}
    with pytest.raises(Transient):
        method(*positional, **keywords)


def test_the_gateway_has_the_methods_this_test_enumerates() -> None:
    """A guard on the enumeration itself: it finds the calls the app depends on."""
    assert {"exchange_public_token", "transactions_sync", "item_remove", "webhook_verification_key_get"} <= set(
        _api_methods()
    )


@pytest.mark.parametrize("name", _api_methods())
def test_every_gateway_call_passes_the_request_timeout(name: str, sdk_calls: list[dict[str, Any]]) -> None:
    """The SDK sets no timeout; security bar L8 wants (5, 30) on every call (a new method without it fails here)."""
    _call(PlaidGateway("sandbox", "client", "secret"), name)
    assert sdk_calls, f"{name} made no SDK call"
    assert [c["_request_timeout"] for c in sdk_calls] == [(5.0, 30.0)] * len(sdk_calls)


def test_a_configured_timeout_reaches_the_sdk(sdk_calls: list[dict[str, Any]]) -> None:
    _call(PlaidGateway("sandbox", "client", "secret", timeout=(1.5, 7.0)), "item_get")
    assert [c["_request_timeout"] for c in sdk_calls] == [(1.5, 7.0)]


@pytest.mark.parametrize(
    ("env", "api_url", "host"),
    [
        ("sandbox", None, "https://sandbox.plaid.com"),
        ("production", None, "https://production.plaid.com"),
        ("sandbox", "http://127.0.0.1:9/plaid", "http://127.0.0.1:9/plaid"),
        ("production", "http://127.0.0.1:9/plaid", "http://127.0.0.1:9/plaid"),
        ("demo", "http://127.0.0.1:9/bank", "http://127.0.0.1:9/bank"),
    ],
)
def test_build_gateway_reaches_the_host_of_plaid_env_unless_plaid_api_url_overrides_it(
    tmp_path: Path, sdk_calls: list[dict[str, Any]], env: str, api_url: str | None, host: str
) -> None:
    overrides: dict[str, object] = {"PLAID_ENV": env, "PLAID_CLIENT_ID": "client", "PLAID_SECRET": "secret-value"}
    if api_url:
        overrides["PLAID_API_URL"] = api_url
    gateway = build_gateway(make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db", **overrides))
    assert gateway is not None and gateway.env == env and gateway.base_url == host
    _call(gateway, "item_get")
    assert [c["url"] for c in sdk_calls] == [f"{host}/item/get"]  # where the SDK's request would go
