"""The Plaid gateway over real HTTP against the demo bank: mapping, paging, cursors and errors."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from services.demo_bank import DEMO_CLIENT_ID, DemoBankHandle
from services.errors import FinsyncError
from services.plaid_client import PlaidGateway
from services.plaid_errors import (
    InstitutionDown,
    InvalidRequest,
    LoginRequired,
    MutationDuringPagination,
    PlaidError,
    RateLimited,
    Transient,
)
from services.plaid_types import CallEvent, SyncPage
from tests.integration.conftest_bank import LinkedItem


def sync_all(gateway: PlaidGateway, token: str, cursor: str = "", count: int = 500) -> tuple[list[SyncPage], str]:
    """Pull every page from `cursor`; return the pages and the final cursor."""
    pages = []
    while True:
        page = gateway.transactions_sync(token, cursor, count)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


def test_full_sync_pages_with_has_more_and_matches_the_banks_truth(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    pages, _ = sync_all(gateway, item.access_token, count=40)
    assert len(pages) > 2
    assert all(p.has_more for p in pages[:-1]) and not pages[-1].has_more
    synced = {t.transaction_id: t for p in pages for t in p.added}
    truth = {t["transaction_id"]: t for t in demo_bank.truth(item.item_id)}
    assert synced.keys() == truth.keys()
    for tid, row in truth.items():
        # The statement sign: Plaid's positive (money out) becomes negative minor units.
        assert synced[tid].amount_minor == -round(row["amount"] * 100)
    kinds = {(t.category_primary, t.amount_minor > 0) for t in synced.values()}
    assert ("INCOME", True) in kinds and ("RENT_AND_UTILITIES", False) in kinds


def test_resuming_from_an_old_cursor_replays_the_same_changes(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    _, resting = sync_all(gateway, item.access_token)
    assert demo_bank.advance(item.item_id, days=3) > 0
    first, _ = sync_all(gateway, item.access_token, resting)
    again, _ = sync_all(gateway, item.access_token, resting)

    def ids(pages: list[SyncPage]) -> tuple[set[str], set[str], set[str]]:
        return (
            {t.transaction_id for p in pages for t in p.added},
            {t.transaction_id for p in pages for t in p.modified},
            {r for p in pages for r in p.removed},
        )

    assert ids(first) == ids(again)
    assert ids(first)[0], "three new days must bring new transactions"


def test_pending_posts_under_a_new_id_that_points_back(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    _, cursor = sync_all(gateway, item.access_token)
    pending = demo_bank.mutate(item.item_id, "add", account="credit", cents=4210, name="SQ *CAFE", pending=True)
    assert pending is not None
    page = gateway.transactions_sync(item.access_token, cursor)
    assert [(t.transaction_id, t.pending, t.amount_minor) for t in page.added] == [
        (pending["transaction_id"], True, -4210)
    ]
    posted = demo_bank.mutate(item.item_id, "post", transaction_id=pending["transaction_id"], cents=4910)
    assert posted is not None
    later = gateway.transactions_sync(item.access_token, page.next_cursor)
    assert later.removed == (pending["transaction_id"],)
    (new,) = later.added
    assert new.transaction_id != pending["transaction_id"]
    assert new.pending_transaction_id == pending["transaction_id"] and not new.pending
    assert new.amount_minor == -4910  # the tip changed the amount


def test_mutation_on_a_chosen_page_raises_and_a_restart_sees_the_change(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    demo_bank.set_fault(item.item_id, "mutation_during_pagination", page=3)
    first = gateway.transactions_sync(item.access_token, "", 50)
    second = gateway.transactions_sync(item.access_token, first.next_cursor, 50)
    with pytest.raises(MutationDuringPagination) as caught:
        gateway.transactions_sync(item.access_token, second.next_cursor, 50)
    assert caught.value.code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION" and caught.value.request_id
    pages, _ = sync_all(gateway, item.access_token, "", 50)
    synced = {t.transaction_id: t.name for p in pages for t in p.added}
    truth = {t["transaction_id"]: t["name"] for t in demo_bank.truth(item.item_id)}
    assert synced == truth  # restarting from the starting cursor yields exactly the truth


@pytest.mark.parametrize(
    ("fault", "exc", "code", "status"),
    [
        ("rate_limit", RateLimited, "TRANSACTIONS_SYNC_LIMIT", 429),
        ("server_error", Transient, "INTERNAL_SERVER_ERROR", 500),
        ("institution_down", InstitutionDown, "INSTITUTION_DOWN", 400),
    ],
)
def test_counted_faults_map_to_our_exceptions_then_clear(
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    item: LinkedItem,
    plaid_events: list[CallEvent],
    fault: str,
    exc: type[PlaidError],
    code: str,
    status: int,
) -> None:
    demo_bank.set_fault(item.item_id, fault, times=2)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(exc) as caught:
            gateway.transactions_sync(item.access_token)
        assert caught.value.code == code and caught.value.http_status == status
        assert caught.value.retry_after == (1.0 if status == 429 else None)  # the demo bank's 429 says "Retry-After: 1"
    assert gateway.transactions_sync(item.access_token).added
    assert [(e.error_code, e.http_status) for e in plaid_events] == [(code, status), (code, status), (None, 200)]


def test_login_required_persists_until_repaired(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    demo_bank.set_fault(item.item_id, "login_required")
    for call in (gateway.transactions_sync, gateway.accounts_get, gateway.transactions_recurring_get):
        with pytest.raises(LoginRequired) as caught:
            call(item.access_token)
        assert "sign in again" in str(caught.value).lower() or "log in again" in str(caught.value).lower()
    assert gateway.item_get(item.access_token).error_code == "ITEM_LOGIN_REQUIRED"
    demo_bank.repair(item.item_id)
    assert gateway.item_get(item.access_token).error_code is None
    assert gateway.accounts_get(item.access_token).accounts


def test_fault_usernames_make_faulty_items(gateway: PlaidGateway) -> None:
    bad = gateway.exchange_public_token(
        gateway.sandbox_public_token_create("ins_demo_2", username="user_login_required")
    )
    with pytest.raises(LoginRequired):
        gateway.transactions_sync(bad.access_token)
    down = gateway.exchange_public_token(
        gateway.sandbox_public_token_create("ins_demo_3", username="user_institution_down")
    )
    with pytest.raises(InstitutionDown):
        gateway.accounts_get(down.access_token)


def test_not_ready_item_returns_empty_cursor_then_data(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    demo_bank.set_ready(item.item_id, False)
    page = gateway.transactions_sync(item.access_token)
    assert (page.next_cursor, page.update_status, page.added, page.has_more) == ("", "NOT_READY", (), False)
    demo_bank.set_ready(item.item_id, True)
    assert gateway.transactions_sync(item.access_token).update_status == "HISTORICAL_UPDATE_COMPLETE"


def test_wrong_secret_is_an_invalid_request_that_never_echoes_the_secret(demo_bank: DemoBankHandle) -> None:
    wrong = PlaidGateway("demo", DEMO_CLIENT_ID, "sup3r-wrong-secret", demo_bank.url)
    with pytest.raises(InvalidRequest) as caught:
        wrong.institution_get_by_id("ins_demo_1")
    assert caught.value.code == "INVALID_API_KEYS"
    assert "sup3r-wrong-secret" not in str(caught.value) and "sup3r" not in repr(caught.value.args)
    assert isinstance(caught.value, FinsyncError)


def test_foreign_cursor_is_rejected(gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem) -> None:
    _, cursor = sync_all(gateway, item.access_token)
    _, other_token = demo_bank.link_item("ins_demo_2")
    with pytest.raises(InvalidRequest) as caught:
        gateway.transactions_sync(other_token, cursor)
    assert caught.value.code == "INVALID_FIELD"
    with pytest.raises(InvalidRequest):
        gateway.transactions_sync(item.access_token, cursor[:-4] + "AAAA")


def test_tokens_never_reach_messages_events_or_reprs(
    gateway: PlaidGateway, item: LinkedItem, plaid_events: list[CallEvent]
) -> None:
    access = gateway.exchange_public_token(gateway.sandbox_public_token_create("ins_demo_1"))
    link = gateway.link_token_create("user-1", access_token=access.access_token)
    assert access.access_token not in repr(access) and link.link_token not in repr(link)
    gateway.item_remove(access.access_token)
    with pytest.raises(InvalidRequest) as caught:
        gateway.accounts_get(access.access_token)
    assert caught.value.code == "INVALID_ACCESS_TOKEN"
    assert access.access_token not in str(caught.value)
    assert all(e.request_id for e in plaid_events)
    assert not any(access.access_token in repr(e) for e in plaid_events)


def test_update_mode_link_can_turn_on_account_selection(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    def session(link_token: str) -> dict[str, object]:
        req = urllib.request.Request(demo_bank.url + "/link/demo/session", data=json.dumps({"link_token": link_token}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=5) as resp:
            data: dict[str, object] = json.loads(resp.read())
        return data

    # NEW_ACCOUNTS_AVAILABLE: without `update.account_selection_enabled` Link cannot offer the new accounts.
    picking = gateway.link_token_create("user-1", access_token=item.access_token, account_selection=True)
    assert session(picking.link_token)["account_selection"] is True
    plain = gateway.link_token_create("user-1", access_token=item.access_token)
    assert session(plain.link_token)["account_selection"] is False
    with pytest.raises(InvalidRequest, match="update mode"):
        gateway.link_token_create("user-1", account_selection=True)


def test_unreachable_and_slow_banks_are_transient(demo_bank: DemoBankHandle, item: LinkedItem) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = PlaidGateway("demo", DEMO_CLIENT_ID, "demo-secret", f"http://127.0.0.1:{dead_port}")
    with pytest.raises(Transient) as caught:
        dead.item_get(item.access_token)
    assert caught.value.code == "NETWORK_ERROR" and item.access_token not in str(caught.value)

    # The bank answers, correctly, after 3 s: only a read timeout that works turns that into an error.
    impatient = PlaidGateway("demo", DEMO_CLIENT_ID, "demo-secret", demo_bank.url, timeout=(1.0, 0.3))
    demo_bank.set_fault(item.item_id, "delay", seconds=3.0)
    with pytest.raises(Transient) as slow:
        impatient.accounts_get(item.access_token)
    assert slow.value.code == "NETWORK_ERROR"
    demo_bank.clear_faults(item.item_id)


def test_demo_env_requires_a_base_url() -> None:
    with pytest.raises(FinsyncError):
        PlaidGateway("demo", DEMO_CLIENT_ID, "demo-secret")


def test_retry_after_is_read_from_a_preloaded_answer_too(
    gateway: PlaidGateway, demo_bank: DemoBankHandle, item: LinkedItem
) -> None:
    demo_bank.set_fault(item.item_id, "rate_limit", times=1, endpoint="/accounts/get")
    with pytest.raises(RateLimited) as caught:  # unlike /transactions/sync, the SDK decodes this answer itself
        gateway.accounts_get(item.access_token)
    assert (caught.value.code, caught.value.retry_after) == ("ACCOUNTS_LIMIT", 1.0)


class _Answer:
    """What urllib3 hands plaid.ApiException: a status, a body and the answer's headers."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.reason, self.headers = status, "Too Many Requests", headers
        self.data = json.dumps({"error_type": "RATE_LIMIT_EXCEEDED", "error_code": "RATE_LIMIT", "request_id": "r"})

    def getheaders(self) -> dict[str, str]:
        return self.headers


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("86400", 300.0), ("soon", None), ("-3", None), ("1e9", None), ("", None), (None, None)],
)
def test_a_429s_retry_after_reaches_the_error_clamped_and_garbage_ignored(
    gateway: PlaidGateway, header: str | None, seconds: float | None
) -> None:
    import plaid

    headers = {"Content-Type": "application/json"} | ({"rEtRy-AfTeR": header} if header is not None else {})
    with pytest.raises(RateLimited) as caught, gateway._call("/transactions/sync"):
        raise plaid.ApiException(http_resp=_Answer(429, headers))
    assert caught.value.retry_after == seconds and caught.value.code == "RATE_LIMIT"


Scripted = dict[str, tuple[int, dict[str, str], bytes]]


@pytest.fixture
def proxy() -> Iterator[tuple[str, Scripted]]:
    """A server in Plaid's place (a misbehaving proxy) that answers every request with ``script["next"]``."""
    script: Scripted = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, body = script["next"]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


def _behind(url: str, events: list[CallEvent]) -> PlaidGateway:
    return PlaidGateway("demo", DEMO_CLIENT_ID, "demo-secret", url, timeout=(1.0, 2.0), recorder=events.append)


_PAGE = {"added": [], "modified": [], "removed": [], "next_cursor": "c", "has_more": False, "request_id": "r"}


@pytest.mark.parametrize(
    "body",
    [b"[]", b"null", json.dumps({**_PAGE, "accounts": [[1]]}), json.dumps({**_PAGE, "accounts": [{"balances": [1]}]})],
    ids=["an array", "null", "an account that is a list", "balances that are a list"],
)
def test_a_sync_page_of_the_wrong_shape_is_unreadable_not_a_crash(
    proxy: tuple[str, Scripted], body: str | bytes
) -> None:
    """These escaped as AttributeError: the run ended "internal error" and was never retried."""
    url, script = proxy
    script["next"] = (200, {"Content-Type": "application/json"}, body.encode() if isinstance(body, str) else body)
    events: list[CallEvent] = []
    with pytest.raises(Transient) as caught:
        _behind(url, events).transactions_sync("access-demo-token")
    assert caught.value.code == "MALFORMED_RESPONSE" and [e.error_code for e in events] == ["MALFORMED_RESPONSE"]


@pytest.mark.parametrize("method", ["exchange_public_token", "item_remove", "transactions_sync"])
@pytest.mark.parametrize(("status", "kind"), [(502, Transient), (429, RateLimited)])
def test_a_proxys_error_page_in_latin_1_keeps_its_status(
    proxy: tuple[str, Scripted], method: str, status: int, kind: type[PlaidError]
) -> None:
    """The SDK decodes every error body as UTF-8: a Latin-1 502 was "unreadable" (not retried), a 429 lost its wait."""
    url, script = proxy
    page = "<html>Service indisponible, réessayez</html>".encode("latin-1")
    script["next"] = (status, {"Content-Type": "text/html; charset=iso-8859-1", "Retry-After": "9"}, page)
    events: list[CallEvent] = []
    with pytest.raises(PlaidError) as caught:
        getattr(_behind(url, events), method)("access-demo-token")
    err = caught.value
    assert (type(err), err.code, err.http_status, err.retry_after) == (kind, f"HTTP_{status}", status, 9.0)
    assert [(e.error_code, e.http_status) for e in events] == [(f"HTTP_{status}", status)]


@pytest.mark.parametrize("method", ["exchange_public_token", "item_remove", "accounts_get"])
def test_an_answer_in_an_unknown_charset_is_unreadable(proxy: tuple[str, Scripted], method: str) -> None:
    """LookupError ("unknown encoding") escaped: after an exchange, the new item was not removed at Plaid again."""
    url, script = proxy
    script["next"] = (200, {"Content-Type": "application/json; charset=bogus"}, b'{"request_id": "r"}')
    with pytest.raises(Transient) as caught:
        getattr(_behind(url, []), method)("access-demo-token")
    assert caught.value.code == "MALFORMED_RESPONSE"
