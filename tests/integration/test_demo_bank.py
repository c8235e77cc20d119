"""The demo bank seen through the real plaid-python SDK (default type checking) and a browser's eyes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import jwt
import plaid
import pytest
from plaid.api import plaid_api
from plaid.model.accounts_balance_get_request import AccountsBalanceGetRequest
from plaid.model.accounts_get_request import AccountsGetRequest
from plaid.model.country_code import CountryCode
from plaid.model.institutions_get_by_id_request import InstitutionsGetByIdRequest
from plaid.model.item_get_request import ItemGetRequest
from plaid.model.item_public_token_exchange_request import ItemPublicTokenExchangeRequest
from plaid.model.item_remove_request import ItemRemoveRequest
from plaid.model.link_token_create_request import LinkTokenCreateRequest
from plaid.model.link_token_create_request_user import LinkTokenCreateRequestUser
from plaid.model.products import Products
from plaid.model.sandbox_item_fire_webhook_request import SandboxItemFireWebhookRequest
from plaid.model.sandbox_item_reset_login_request import SandboxItemResetLoginRequest
from plaid.model.sandbox_public_token_create_request import SandboxPublicTokenCreateRequest
from plaid.model.transactions_recurring_get_request import TransactionsRecurringGetRequest
from plaid.model.transactions_refresh_request import TransactionsRefreshRequest
from plaid.model.transactions_sync_request import TransactionsSyncRequest
from plaid.model.webhook_verification_key_get_request import WebhookVerificationKeyGetRequest

from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, DemoBankHandle, start_demo_bank
from services.demo_bank.links import PASSWORD, link_login
from services.plaid_client import PlaidGateway
from services.plaid_errors import InvalidRequest, PlaidError, Transient, error_from_body
from services.plaid_types import Transaction
from tests.integration.conftest_bank import BANK_TODAY, LinkedItem, WebhookSink


def sdk(url: str, secret: str = DEMO_SECRET) -> plaid_api.PlaidApi:
    cfg = plaid.Configuration(
        host=url, api_key={"clientId": DEMO_CLIENT_ID, "secret": secret, "plaidVersion": "2020-09-14"}
    )
    return plaid_api.PlaidApi(plaid.ApiClient(cfg))


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_every_endpoint_decodes_through_the_sdk_with_type_checking(fresh_demo_bank: DemoBankHandle) -> None:
    demo_bank = fresh_demo_bank
    api = sdk(demo_bank.url)
    link = api.link_token_create(
        LinkTokenCreateRequest(
            client_name="finsync",
            language="en",
            country_codes=[CountryCode("US")],
            user=LinkTokenCreateRequestUser(client_user_id="u-1"),
            products=[Products("transactions")],
        )
    )
    assert link.link_token.startswith("link-") and link.expiration.tzinfo is not None
    public = api.sandbox_public_token_create(
        SandboxPublicTokenCreateRequest(institution_id="ins_demo_1", initial_products=[Products("transactions")])
    ).public_token
    ex = api.item_public_token_exchange(ItemPublicTokenExchangeRequest(public_token=public))
    token = ex.access_token
    accounts = api.accounts_get(AccountsGetRequest(access_token=token))
    assert sorted(str(a.subtype) for a in accounts.accounts) == ["checking", "credit card", "savings"]
    assert api.accounts_balance_get(AccountsBalanceGetRequest(access_token=token)).item.item_id == ex.item_id
    page = api.transactions_sync(TransactionsSyncRequest(access_token=token, count=500))
    assert page.added and all(
        t.personal_finance_category.detailed.startswith(t.personal_finance_category.primary) for t in page.added
    )
    assert any(t.pending for t in page.added) and any(t.pending_transaction_id for t in page.added)
    assert api.transactions_refresh(TransactionsRefreshRequest(access_token=token)).request_id
    recurring = api.transactions_recurring_get(TransactionsRecurringGetRequest(access_token=token))
    outflow = {s.merchant_name for s in recurring.outflow_streams}
    assert {"Netflix", "Spotify", "Greenleaf Property"} <= outflow
    assert [str(s.frequency) for s in recurring.inflow_streams if s.merchant_name == "Acme Corp"] == ["BIWEEKLY"]
    assert api.item_get(ItemGetRequest(access_token=token)).item.institution_id == "ins_demo_1"
    assert api.sandbox_item_reset_login(SandboxItemResetLoginRequest(access_token=token)).reset_login is True
    broken = api.item_get(ItemGetRequest(access_token=token)).item.error  # a PlaidError, decoded with type checks
    assert (str(broken.error_type), broken.error_code) == ("ITEM_ERROR", "ITEM_LOGIN_REQUIRED")
    assert broken.display_message and "status" not in broken  # `status` is for webhooks only
    inst = api.institutions_get_by_id(
        InstitutionsGetByIdRequest(institution_id="ins_demo_3", country_codes=[CountryCode("US")])
    )
    assert inst.institution.name == "Harbor National"
    kid = demo_bank.bank.webhooks.current.kid
    key = api.webhook_verification_key_get(WebhookVerificationKeyGetRequest(key_id=kid)).key
    assert (key.alg, key.crv, key.kid, key.expired_at) == ("ES256", "P-256", kid, None)
    assert api.item_remove(ItemRemoveRequest(access_token=token)).request_id
    with pytest.raises(plaid.ApiException) as caught:
        api.item_get(ItemGetRequest(access_token=token))
    assert json.loads(caught.value.body)["error_code"] == "INVALID_ACCESS_TOKEN"


def test_wrong_secret_gets_plaids_error_shape_with_request_id(demo_bank: DemoBankHandle) -> None:
    with pytest.raises(plaid.ApiException) as caught:
        sdk(demo_bank.url, "not-the-secret").institutions_get_by_id(
            InstitutionsGetByIdRequest(institution_id="ins_demo_1", country_codes=[CountryCode("US")])
        )
    body = json.loads(caught.value.body)
    assert caught.value.status == 400
    assert (body["error_type"], body["error_code"]) == ("INVALID_INPUT", "INVALID_API_KEYS")
    assert len(body["request_id"]) == 15 and "display_message" in body
    status, missing = post(demo_bank.url + "/item/get", {"client_id": DEMO_CLIENT_ID, "secret": DEMO_SECRET})
    assert (status, missing["error_code"]) == (400, "MISSING_FIELDS")


def call(url: str, body: dict[str, Any] | None, method: str = "POST") -> tuple[int, str, bytes]:
    """An authenticated raw request; returns status, content type and body."""
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "PLAID-CLIENT-ID": DEMO_CLIENT_ID, "PLAID-SECRET": DEMO_SECRET},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


PLAID_ERROR_FIELDS = {"error_type", "error_code", "error_message", "display_message", "request_id",
                      "documentation_url", "suggested_action"}  # fmt: skip

WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    ("/accounts/get", {"options": {"account_ids": 5}}, "options.account_ids"),
    ("/accounts/balance/get", {"options": "all"}, "options"),
    ("/institutions/get_by_id", {"institution_id": {"a": 1}, "country_codes": ["US"]}, "institution_id"),
    ("/transactions/recurring/get", {"account_ids": 7}, "account_ids"),
    ("/transactions/sync", {"count": True}, "count"),
    ("/transactions/sync", {"cursor": 12}, "cursor"),
    ("/item/get", {"access_token": ["access-demo-x"]}, "access_token"),
    ("/item/public_token/exchange", {"public_token": 12}, "public_token"),
    ("/sandbox/public_token/create", {"institution_id": "ins_demo_1", "initial_products": ["transactions"],
                                      "options": {"override_username": 1}}, "options.override_username"),
    ("/link/token/create", {"client_name": "x", "language": "en", "country_codes": ["US"], "user": "u-1"}, "user"),
    ("/link/token/create", {"client_name": "x", "language": "en", "country_codes": ["US"],
                            "user": {"client_user_id": "u-1"}, "update": {"account_selection_enabled": "yes"}},
     "update.account_selection_enabled"),
    ("/link/token/create", {"client_name": "x", "language": "en", "country_codes": ["US"],
                            "user": {"client_user_id": "u-1"}, "transactions": {"days_requested": "90"}},
     "transactions.days_requested"),
    ("/sandbox/public_token/create", {"institution_id": "ins_demo_1", "initial_products": ["transactions"],
                                      "options": {"transactions": 30}}, "options.transactions"),
]  # fmt: skip


def test_wrong_field_types_are_plaids_400_invalid_field_not_a_500(demo_bank: DemoBankHandle, item: LinkedItem) -> None:
    for path, body, field_name in WRONG_TYPES:
        status, ctype, raw = call(demo_bank.url + path, {"access_token": item.access_token, **body})
        err = json.loads(raw)
        assert (status, ctype, err["error_type"], err["error_code"]) == (
            400, "application/json", "INVALID_REQUEST", "INVALID_FIELD"), (path, raw)  # fmt: skip
        assert err["error_message"].startswith(field_name + " must be") and len(err["request_id"]) == 15
        # Our gateway must see a request to fix, never a Plaid outage to retry.
        assert isinstance(error_from_body(status, raw), InvalidRequest)


def test_get_and_crashes_answer_in_plaids_error_shape(
    fresh_demo_bank: DemoBankHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, ctype, raw = call(fresh_demo_bank.url + "/accounts/get", None, method="GET")
    err = json.loads(raw)
    assert (status, ctype, err["error_type"]) == (405, "application/json", "INVALID_REQUEST") and err["request_id"]
    assert not isinstance(error_from_body(status, raw), Transient)

    _, token = fresh_demo_bank.link_item()

    def bug(*args: object) -> None:
        raise RuntimeError("a bug in the demo bank")

    monkeypatch.setattr(fresh_demo_bank.bank, "item_for", bug)
    gateway = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, fresh_demo_bank.url)
    with pytest.raises(Transient) as caught:  # Plaid's own 500: API_ERROR / INTERNAL_SERVER_ERROR, with a request id
        gateway.accounts_get(token)
    assert (caught.value.code, caught.value.error_type, caught.value.http_status) == (
        "INTERNAL_SERVER_ERROR", "API_ERROR", 500)  # fmt: skip
    assert caught.value.request_id and len(caught.value.request_id) == 15


def test_api_errors_carry_only_the_fields_plaid_sends(demo_bank: DemoBankHandle, item: LinkedItem) -> None:
    status, _, raw = call(demo_bank.url + "/item/get", {"access_token": "access-demo-unknown"})
    err = json.loads(raw)
    assert status == 400 and err["error_code"] == "INVALID_ACCESS_TOKEN"
    # PlaidError: `status` only in webhooks, `causes` only for Assets/user errors, `error_code_reason` only for OAuth.
    assert set(err) == PLAID_ERROR_FIELDS
    demo_bank.set_fault(item.item_id, "login_required")
    status, _, raw = call(demo_bank.url + "/accounts/get", {"access_token": item.access_token})
    assert status == 400 and set(json.loads(raw)) == PLAID_ERROR_FIELDS


def test_same_seed_same_history() -> None:
    banks = [start_demo_bank(today=BANK_TODAY) for _ in range(2)]
    try:
        a, b = (bank.truth(bank.link_item("ins_demo_1")[0]) for bank in banks)
        assert a == b and len(a) > 150
    finally:
        for bank in banks:
            bank.stop()


def test_link_stand_in_signs_in_and_refuses_bad_passwords(demo_bank: DemoBankHandle, gateway: PlaidGateway) -> None:
    link = gateway.link_token_create("user-7")
    status, session = post(demo_bank.url + "/link/demo/session", {"link_token": link.link_token})
    assert status == 200 and [i["institution_id"] for i in session["institutions"]] == [
        "ins_demo_1",
        "ins_demo_2",
        "ins_demo_3",
    ]  # Plaid's sandbox test institutions answer scripts by id but stay out of the demo's picker
    body = {"link_token": link.link_token, "institution_id": "ins_demo_2", "username": "user_good", "password": "wrong"}
    status, err = post(demo_bank.url + "/link/demo/login", body)
    assert (status, err["error_code"]) == (400, "INVALID_CREDENTIALS") and err["display_message"]
    status, ok = post(demo_bank.url + "/link/demo/login", {**body, "password": "pass_good"})
    assert status == 200 and ok["institution"] == {"name": "Maple Credit Union", "institution_id": "ins_demo_2"}
    assert {a["subtype"] for a in ok["accounts"]} == {"checking", "savings", "credit card"}
    access = gateway.exchange_public_token(ok["public_token"])
    assert {a.account_id for a in gateway.accounts_get(access.access_token).accounts} == {
        a["id"] for a in ok["accounts"]
    }
    with pytest.raises(Exception, match="INVALID_PUBLIC_TOKEN"):
        gateway.exchange_public_token(ok["public_token"])  # single use
    status, _ = post(demo_bank.url + "/link/demo/session", {"link_token": "link-demo-forged"})
    assert status == 400


def test_a_script_written_for_plaids_sandbox_runs_unchanged(demo_bank: DemoBankHandle) -> None:
    """Plaid's sandbox test institutions (First Platypus Bank, ins_109508) and its Transactions test users
    (`user_transactions_dynamic`, any non-blank password), as Plaid's docs and quickstarts use them."""
    api = sdk(demo_bank.url)
    made = api.sandbox_public_token_create(
        SandboxPublicTokenCreateRequest(
            institution_id="ins_109508",
            initial_products=[Products("transactions")],
            options={"override_username": "user_transactions_dynamic", "override_password": "any words at all"},
        )
    )
    access = api.item_public_token_exchange(ItemPublicTokenExchangeRequest(public_token=made.public_token))
    item = api.item_get(ItemGetRequest(access_token=access.access_token)).item
    assert (item.institution_id, item.institution_name) == ("ins_109508", "First Platypus Bank")
    synced = api.transactions_sync(TransactionsSyncRequest(access_token=access.access_token, count=500))
    assert len(synced.added) > 100 and not synced.has_more
    found = api.institutions_get_by_id(
        InstitutionsGetByIdRequest(institution_id="ins_109511", country_codes=[CountryCode("US")])
    )
    assert found.institution.name == "Tartan Bank"

    items_before = len(demo_bank.bank.items)
    refused = [
        ("ins_109508", {"override_username": "user_good", "override_password": "any words at all"}),
        ("ins_109508", {"override_username": "user_transactions_dynamic", "override_password": "   "}),
        ("ins_109508", {"override_username": "user_nobody"}),
        ("ins_999999", {}),
    ]
    for institution, options in refused:
        request = SandboxPublicTokenCreateRequest(
            institution_id=institution, initial_products=[Products("transactions")], options=options
        )
        with pytest.raises(plaid.ApiException) as caught:
            api.sandbox_public_token_create(request)
        assert json.loads(caught.value.body)["error_code"] in {"INVALID_CREDENTIALS", "INVALID_INSTITUTION"}
    assert len(demo_bank.bank.items) == items_before  # a refused login makes no item


def test_link_stand_in_takes_plaids_transactions_test_user_with_any_password(
    demo_bank: DemoBankHandle, gateway: PlaidGateway
) -> None:
    link = gateway.link_token_create("user-9")
    body = {"link_token": link.link_token, "institution_id": "ins_demo_3", "username": "user_transactions_dynamic"}
    status, err = post(demo_bank.url + "/link/demo/login", {**body, "password": ""})
    assert (status, err["error_code"]) == (400, "INVALID_CREDENTIALS")
    status, ok = post(demo_bank.url + "/link/demo/login", {**body, "password": "hunter two"})
    assert status == 200 and ok["institution"]["name"] == "Harbor National"


def test_link_account_picker_shares_only_the_ticked_accounts(demo_bank: DemoBankHandle, gateway: PlaidGateway) -> None:
    """Plaid Link's Account Select: the item, its balances and its transactions cover the ticked accounts only."""
    link = gateway.link_token_create("user-8")
    creds = {"link_token": link.link_token, "institution_id": "ins_demo_1", "username": "user_good"}
    status, err = post(demo_bank.url + "/link/demo/accounts", {**creds, "password": "wrong"})
    assert (status, err["error_code"]) == (400, "INVALID_CREDENTIALS")  # the picker is behind the sign-in
    status, offer = post(demo_bank.url + "/link/demo/accounts", {**creds, "password": "pass_good"})
    assert status == 200 and [a["key"] for a in offer["accounts"]] == ["checking", "savings", "credit"]
    for bad in ([], ["checking", "brokerage"], "checking"):
        status, err = post(demo_bank.url + "/link/demo/login", {**creds, "password": "pass_good", "account_keys": bad})
        assert (status, err["error_code"]) == (400, "INVALID_FIELD"), bad
    status, ok = post(
        demo_bank.url + "/link/demo/login", {**creds, "password": "pass_good", "account_keys": ["checking", "credit"]}
    )
    assert status == 200 and [a["subtype"] for a in ok["accounts"]] == ["checking", "credit card"]
    masks = {a["key"]: a["mask"] for a in offer["accounts"]}
    assert [a["mask"] for a in ok["accounts"]] == [masks["checking"], masks["credit"]]  # what the picker showed
    access = gateway.exchange_public_token(ok["public_token"])
    shared = {a["id"] for a in ok["accounts"]}
    assert {a.account_id for a in gateway.accounts_get(access.access_token).accounts} == shared
    page = gateway.transactions_sync(access.access_token, count=500)
    seen = {t.account_id for t in page.added}
    while page.has_more:
        page = gateway.transactions_sync(access.access_token, page.next_cursor, count=500)
        seen |= {t.account_id for t in page.added}
    assert seen == shared  # the savings account's transactions (its transfers too) never leave the bank
    assert {t["account_id"] for t in demo_bank.truth(access.item_id)} == shared


def test_fire_webhook_needs_a_webhook_url_and_a_code_the_bank_can_fire(
    demo_bank: DemoBankHandle, gateway: PlaidGateway
) -> None:
    access = gateway.exchange_public_token(gateway.sandbox_public_token_create("ins_demo_2"))  # no webhook URL
    with pytest.raises(Exception, match="SANDBOX_WEBHOOK_INVALID"):
        gateway.sandbox_item_fire_webhook(access.access_token, "NEW_ACCOUNTS_AVAILABLE")
    assert demo_bank.bank.items[access.item_id].offered == []  # refused: nothing changed at the bank
    with pytest.raises(Exception, match="INVALID_FIELD"):
        gateway.sandbox_item_fire_webhook(access.access_token, "PRODUCT_READY")


def test_update_mode_link_repairs_the_item(demo_bank: DemoBankHandle, gateway: PlaidGateway, item: LinkedItem) -> None:
    demo_bank.set_fault(item.item_id, "login_required")
    link = gateway.link_token_create("user-1", access_token=item.access_token)
    _, session = post(demo_bank.url + "/link/demo/session", {"link_token": link.link_token})
    assert session["update_institution_id"] == "ins_demo_1"
    body = {
        "link_token": link.link_token,
        "institution_id": "ins_demo_1",
        "username": "user_good",
        "password": "pass_good",
    }
    status, _ = post(demo_bank.url + "/link/demo/login", body)
    assert status == 200
    assert gateway.item_get(item.access_token).error_code is None
    assert gateway.transactions_sync(item.access_token).added


def test_link_script_and_cors_for_the_browser(demo_bank: DemoBankHandle) -> None:
    with urllib.request.urlopen(demo_bank.url + "/link/link-initialize.js", timeout=5) as resp:
        script = resp.read().decode()
        assert "javascript" in resp.headers["Content-Type"]
    assert "window.Plaid" in script and "innerHTML" not in script and "textContent" in script
    req = urllib.request.Request(
        demo_bank.url + "/link/demo/login",
        method="OPTIONS",
        headers={
            "Origin": "http://127.0.0.1:8501",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] in ("*", "http://127.0.0.1:8501")
    # The Plaid API itself is for servers: a web page on another origin gets no CORS grant for it.
    api = urllib.request.Request(
        demo_bank.url + "/item/remove",
        data=b"{}",
        method="POST",
        headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(api, timeout=5)
    except urllib.error.HTTPError as refused:  # 400: no keys; what matters is the missing grant
        assert refused.headers.get("Access-Control-Allow-Origin") is None
    else:
        raise AssertionError("the API answered a keyless request")


def verify_webhook(headers: dict[str, str], body: bytes, gateway: PlaidGateway, max_age: int = 300) -> bool:
    """Plaid's documented receiver steps (test-side helper until the app's webhook module exists)."""
    token = headers.get("plaid-verification", "")
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "ES256":
        return False
    key = gateway.webhook_verification_key_get(header["kid"])
    try:
        claims = jwt.decode(token, jwt.PyJWK(key.jwk()).key, algorithms=["ES256"], options={"require": ["iat"]})
    except jwt.PyJWTError:
        return False
    if time.time() - claims["iat"] > max_age:
        return False
    return hmac.compare_digest(claims["request_body_sha256"], hashlib.sha256(body).hexdigest())


def test_signed_webhooks_verify_and_tampering_fails(
    demo_bank: DemoBankHandle, gateway: PlaidGateway, item: LinkedItem, webhook_sink: WebhookSink
) -> None:
    demo_bank.set_webhook(item.item_id, webhook_sink.url)
    gateway.transactions_sync(item.access_token)  # SYNC_UPDATES_AVAILABLE only fires after a first sync
    demo_bank.advance(item.item_id, 1)
    headers, body = webhook_sink.wait(1)[0]
    payload = json.loads(body)
    assert (payload["webhook_type"], payload["webhook_code"], payload["item_id"]) == (
        "TRANSACTIONS",
        "SYNC_UPDATES_AVAILABLE",
        item.item_id,
    )
    assert body.startswith(b'{\n  "')  # Plaid's 2-space indented body; hash the raw bytes
    assert verify_webhook(headers, body, gateway)
    assert not verify_webhook(headers, body.replace(b"SYNC_UPDATES", b"SYNC_UPDATEZ"), gateway)
    stale = {"plaid-verification": demo_bank.sign_webhook(body, iat=int(time.time()) - 600)}
    assert not verify_webhook(stale, body, gateway)
    forged = jwt.encode(
        {"iat": int(time.time()), "request_body_sha256": hashlib.sha256(body).hexdigest()}, "k" * 32, algorithm="HS256"
    )
    assert not verify_webhook({"plaid-verification": forged}, body, gateway)


def test_login_required_fault_sends_item_error_webhook(
    demo_bank: DemoBankHandle, item: LinkedItem, webhook_sink: WebhookSink
) -> None:
    demo_bank.set_webhook(item.item_id, webhook_sink.url)
    demo_bank.set_fault(item.item_id, "login_required")
    payload = json.loads(webhook_sink.wait(1)[0][1])
    assert (payload["webhook_type"], payload["webhook_code"]) == ("ITEM", "ERROR")
    assert payload["error"]["error_code"] == "ITEM_LOGIN_REQUIRED"
    assert payload["error"]["status"] == 400 and "request_id" not in payload["error"]  # webhook-delivered errors
    delivery = demo_bank.fire_webhook(
        item.item_id, "ITEM", "PENDING_EXPIRATION", consent_expiration_time="2025-04-01T00:00:00Z"
    )
    assert delivery is not None and delivery.status == 200


def test_access_withdrawn_by_the_user_is_item_not_found_on_every_endpoint_for_good(
    demo_bank: DemoBankHandle, gateway: PlaidGateway, item: LinkedItem, webhook_sink: WebhookSink
) -> None:
    """As at Plaid: USER_PERMISSION_REVOKED (the sandbox fires it too), then ITEM_NOT_FOUND from every call, the item
    management ones included, so an app that only ever met a demo that kept serving the item learns it here."""
    demo_bank.set_webhook(item.item_id, webhook_sink.url)
    api = sdk(demo_bank.url)
    fire = SandboxItemFireWebhookRequest(access_token=item.access_token, webhook_code="USER_PERMISSION_REVOKED")
    assert api.sandbox_item_fire_webhook(fire).webhook_fired
    payload = json.loads(webhook_sink.wait(1)[0][1])
    assert (payload["webhook_type"], payload["webhook_code"], payload["item_id"]) == (
        "ITEM", "USER_PERMISSION_REVOKED", item.item_id
    )  # fmt: skip
    assert (payload["error"]["error_code"], payload["error"]["status"]) == ("USER_PERMISSION_REVOKED", 400)
    user = LinkTokenCreateRequestUser(client_user_id="u-1")
    update = LinkTokenCreateRequest(client_name="finsync", language="en", country_codes=[CountryCode("US")],
                                    user=user, access_token=item.access_token)  # fmt: skip
    calls = [
        lambda: api.transactions_sync(TransactionsSyncRequest(access_token=item.access_token)),
        lambda: api.accounts_get(AccountsGetRequest(access_token=item.access_token)),
        lambda: api.item_get(ItemGetRequest(access_token=item.access_token)),
        lambda: api.link_token_create(update),
        lambda: api.item_remove(ItemRemoveRequest(access_token=item.access_token)),
        lambda: api.item_remove(ItemRemoveRequest(access_token=item.access_token)),  # removing did not bring it back
    ]
    for call in calls:
        with pytest.raises(plaid.ApiException) as caught:
            call()
        body = json.loads(caught.value.body)
        assert caught.value.status == 400
        assert (body["error_type"], body["error_code"]) == ("ITEM_ERROR", "ITEM_NOT_FOUND")
        assert body["request_id"] and "removed" in body["error_message"]
    with pytest.raises(PlaidError) as ours:
        gateway.transactions_sync(item.access_token)
    assert ours.value.code == "ITEM_NOT_FOUND" and ours.value.request_id


def test_new_days_bring_new_transactions_through_clock(demo_bank: DemoBankHandle, gateway: PlaidGateway) -> None:
    fresh = start_demo_bank(today=BANK_TODAY)
    try:
        item_id, token = fresh.link_item()
        local = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, fresh.url)
        first = local.transactions_sync(token)
        while first.has_more:
            first = local.transactions_sync(token, first.next_cursor)
        fresh.advance_clock(2)
        later = local.transactions_sync(token, first.next_cursor)
        assert later.added and max(t.date for t in later.added) == fresh.clock()
        assert len(fresh.truth(item_id)) > 0
    finally:
        fresh.stop()


def _all_added(gw: PlaidGateway, access_token: str) -> list[Transaction]:
    added, cursor, more = [], "", True
    while more:
        page = gw.transactions_sync(access_token, cursor, 500)
        added, cursor, more = added + list(page.added), page.next_cursor, page.has_more
    return added


def test_history_goes_back_as_far_as_link_asked_and_no_further() -> None:
    """Plaid's `transactions.days_requested` (1 to 730; 90 when absent): a login linked for 30 days gets the last
    30 days of the very life it has when linked for more, and its recurring streams start there too."""
    fresh = start_demo_bank(today=BANK_TODAY)
    try:
        gw = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, fresh.url)

        def linked(days: int) -> str:
            public = gw.sandbox_public_token_create("ins_demo_1", days_requested=days)
            return gw.exchange_public_token(public).access_token

        def life(txns: list[Transaction]) -> list[tuple[object, ...]]:  # what a person sees, ids aside
            return sorted((t.date, t.name, t.amount_minor, t.pending) for t in txns)

        since = BANK_TODAY - timedelta(days=29)
        full, short = (_all_added(gw, linked(days)) for days in (730, 30))
        assert min(t.date for t in full) < since  # the bank has older history than was asked for
        assert life(short) == life([t for t in full if t.date >= since]) and short
        streams = gw.transactions_recurring_get(linked(30))
        firsts = [s.first_date for s in (*streams.inflow, *streams.outflow)]
        assert firsts and all(first is not None and first >= since for first in firsts)

        # Through Link as a person links: the link token carries the days.
        token = gw.link_token_create("u-30", days_requested=30).link_token
        ok = link_login(fresh.bank, token, "ins_demo_1", "user_good", PASSWORD)
        assert life(_all_added(gw, gw.exchange_public_token(ok["public_token"]).access_token)) == life(short)

        # Outside Plaid's range: INVALID_FIELD, and nothing is linked.
        items = len(fresh.bank.items)
        link_body = {"client_name": "x", "language": "en", "country_codes": ["US"], "user": {"client_user_id": "u"}}
        sandbox_body = {"institution_id": "ins_demo_1", "initial_products": ["transactions"]}
        for days in (0, 731, -5):
            link = {**link_body, "transactions": {"days_requested": days}}
            sandbox = {**sandbox_body, "options": {"transactions": {"days_requested": days}}}
            for path, body in (("/link/token/create", link), ("/sandbox/public_token/create", sandbox)):
                status, _, raw = call(fresh.url + path, body)
                err = json.loads(raw)
                assert (status, err["error_code"]) == (400, "INVALID_FIELD"), (path, days)
                assert "days_requested must be between 1 and 730" in err["error_message"]
        assert len(fresh.bank.items) == items
    finally:
        fresh.stop()


@pytest.mark.slow
def test_large_history_pages_completely(demo_bank: DemoBankHandle, gateway: PlaidGateway) -> None:
    """Every generated transaction comes through the pages once (its speed is bench/bench_decode.py's job)."""
    item_id, token = demo_bank.link_item("ins_demo_3")
    demo_bank.generate_history(item_id, 20_000)
    total, cursor, more = 0, "", True
    while more:
        page = gateway.transactions_sync(token, cursor, 500)
        total, cursor, more = total + len(page.added), page.next_cursor, page.has_more
    assert total == len(demo_bank.truth(item_id)) >= 20_000


def test_a_removed_transaction_sent_again_keeps_its_id_and_each_cursor_hears_what_it_missed(
    demo_bank: DemoBankHandle, gateway: PlaidGateway, item: LinkedItem
) -> None:
    """The "restore" mutation: a bank puts back a transaction it removed, under the same id. A client that saw the
    removal gets it added again; one whose cursor is from before the removal hears of the removal that stuck."""

    def drain(cursor: str) -> tuple[set[str], set[str], set[str], str]:
        added, modified, removed, more = set(), set(), set(), True
        while more:
            page = gateway.transactions_sync(item.access_token, cursor, 500)
            added |= {t.transaction_id for t in page.added}
            modified |= {t.transaction_id for t in page.modified}
            removed |= set(page.removed)
            cursor, more = page.next_cursor, page.has_more
        return added, modified, removed, cursor

    *_, start = drain("")
    t = demo_bank.mutate(item.item_id, "add", cents=4200, name="BOOKSHOP")
    assert t is not None
    tid = t["transaction_id"]
    added, *_, had = drain(start)
    assert tid in added
    demo_bank.mutate(item.item_id, "remove", transaction_id=tid)
    *_, removed, saw_removal = drain(had)
    assert tid in removed
    demo_bank.mutate(item.item_id, "restore", transaction_id=tid)
    assert tid in {x["transaction_id"] for x in demo_bank.truth(item.item_id)}
    assert tid in drain(saw_removal)[0]
    added, modified, removed, _ = drain(had)
    assert tid in added | modified and tid not in removed
    demo_bank.mutate(item.item_id, "remove", transaction_id=tid)
    assert tid in drain(had)[2]
    assert tid not in set().union(*drain(saw_removal)[:3])
