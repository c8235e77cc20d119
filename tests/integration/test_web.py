"""Our HTTP surface: health route and security headers on every response."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.container import Container
from services.db import make_engine
from services.web import health_route
from services.web_csp import content_security_policy, inline_script_hashes
from services.web_headers import SecurityHeadersMiddleware
from tests.factories import FakeClock

ROOT = Path(__file__).resolve().parents[2]


def client(container: Container, *, https: bool = False) -> TestClient:
    async def page(_request: object) -> PlainTextResponse:
        return PlainTextResponse("page")

    app = Starlette(
        routes=[health_route(lambda: container), Route("/", page)],
        middleware=[Middleware(SecurityHeadersMiddleware, https=https)],
    )
    return TestClient(app)


def test_healthz_ok_when_database_answers(container: Container) -> None:
    response = client(container).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_healthz_503_when_database_is_gone(container: Container) -> None:
    broken = Container(**{**container.__dict__, "engine": make_engine("postgresql+psycopg2://u:p@127.0.0.1:1/x")})
    response = client(broken).get("/healthz")
    assert response.status_code == 503
    assert "127.0.0.1" not in response.text


def test_security_headers_everywhere(container: Container) -> None:
    for path in ("/", "/healthz"):
        headers = client(container).get(path).headers
        csp = headers["content-security-policy"]
        for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "https://cdn.plaid.com"):
            assert directive in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers


def test_a_crash_of_ours_answers_a_bare_500_with_every_header_and_one_traceback_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette's error page sits outside our middleware: without this, a bug's 500 went out with no CSP, no
    nosniff, no no-store, and every hit wrote a whole traceback to the log."""
    from services import web_headers
    from services.ratelimit import TokenBucket

    monkeypatch.setattr(web_headers, "_crashes", TokenBucket(rate=1 / 60, burst=1, clock=lambda: 0.0))

    async def broken(_request: object) -> PlainTextResponse:
        raise RuntimeError("secret detail of a bug")

    app = Starlette(routes=[Route("/broken", broken)], middleware=[Middleware(SecurityHeadersMiddleware)])
    http = TestClient(app, raise_server_exceptions=False)
    for _ in range(5):
        answer = http.get("/broken")
        assert (answer.status_code, answer.text) == (500, "Internal Server Error")
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    crashes = [r for r in caplog.records if r.name == "finsync.web" and "unhandled error on GET /broken" in r.message]
    assert len(crashes) == 5 and sum(r.exc_info is not None for r in crashes) == 1


def test_inline_script_hashes_name_each_inline_script_and_nothing_loaded_by_src() -> None:
    page = (
        "<html><head><script>window.ready = false</script>"
        '<script type="module" src="./static/js/index.js"></script>'
        "<script>if (a < b && c > d) { go() }</script></head><body><script>window.ready = false</script></body></html>"
    )

    def sha(text: str) -> str:
        return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"

    assert inline_script_hashes(page) == (sha("window.ready = false"), sha("if (a < b && c > d) { go() }"))
    assert inline_script_hashes("<html><script src='/x.js'></script></html>") == ()
    csp = _directives(content_security_policy(script_hashes=inline_script_hashes(page)))
    assert csp["script-src"][:3] == ["'self'", sha("window.ready = false"), sha("if (a < b && c > d) { go() }")]
    assert "'unsafe-inline'" not in csp["script-src"]


def _directives(csp: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (d.split() for d in csp.split(";"))}


LINK_SCRIPT_URL = "http://127.0.0.1:9911/link/v2/stable/link-initialize.js"  # a Link script served from elsewhere


def test_the_link_script_settings_origin_is_allowed_to_load_connect_and_frame(container: Container) -> None:
    import dataclasses

    from services.web_csp import link_origins

    def origins(**update: object) -> tuple[str, ...]:
        settings = container.settings.model_copy(update={"plaid_env": "sandbox", **update})
        return link_origins(dataclasses.replace(container, settings=settings, plaid=None))

    assert origins() == ()  # Plaid's own CDN is allowed already
    assert origins(plaid_link_script_url="https://cdn.plaid.com/link/v2/stable/link-initialize.js") == ()
    assert origins(plaid_link_script_url=LINK_SCRIPT_URL) == ("http://127.0.0.1:9911",)
    app = Starlette(
        routes=[Route("/", lambda _r: PlainTextResponse("page"))],
        middleware=[
            Middleware(SecurityHeadersMiddleware, extra_origins=origins(plaid_link_script_url=LINK_SCRIPT_URL))
        ],
    )
    csp = _directives(TestClient(app).get("/").headers["content-security-policy"])
    for name in ("script-src", "connect-src", "frame-src"):
        assert "http://127.0.0.1:9911" in csp[name] and "https://cdn.plaid.com" in csp[name], name
    assert not any("127.0.0.1" in v for name in ("default-src", "img-src", "form-action") for v in csp[name])


def test_no_store_overrides_a_routes_own_cache_control_except_on_hashed_static_bundles() -> None:
    async def no_cache(_request: Request) -> Response:
        return PlainTextResponse("balances", headers={"Cache-Control": "no-cache"})  # what Streamlit sends on `/`

    async def bundle(_request: Request) -> Response:
        return PlainTextResponse("js", headers={"Cache-Control": "public, immutable, max-age=31536000"})

    async def revalidated(_request: Request) -> Response:
        return Response(status_code=304, headers={"ETag": '"x"'})

    app = Starlette(
        routes=[
            Route("/", no_cache),
            Route("/media/report.pdf", bundle),  # long-lived outside /static/ is still refused
            Route("/static/js/index.abc123.js", bundle),
            Route("/static/js/old.js", revalidated),
            Route("/static/js/fallback", no_cache),  # Streamlit's index.html fallback under /static/
        ],
        middleware=[Middleware(SecurityHeadersMiddleware)],
    )
    web = TestClient(app)
    for path in ("/", "/media/report.pdf", "/static/js/fallback"):
        assert web.get(path).headers.get_list("cache-control") == ["no-store"], path
    assert web.get("/static/js/index.abc123.js").headers["cache-control"] == "public, immutable, max-age=31536000"
    assert "cache-control" not in web.get("/static/js/old.js").headers  # a 304 must not turn the copy no-store


# Run in a child process: importing app.py starts the scheduler, and Streamlit allows one Runtime per process.
_REAL_APP_PROBE = """
import json, os, sys
from services.cli import main
main(["db", "upgrade"])
from starlette.testclient import TestClient
from streamlit import file_util
import app
from services.scheduler import stop_scheduler

bundle = "/static/js/" + sorted(os.listdir(os.path.join(file_util.get_static_dir(), "static", "js")))[0]
out = {}
with TestClient(app.app) as web:
    for path in ("/", "/healthz", "/_stcore/health", "/_stcore/metrics", bundle):
        r = web.get(path)
        out[path] = [r.status_code, r.headers.get_list("cache-control"), r.headers.get("x-content-type-options")]
    page = web.get("/")
    csp, body = page.headers["content-security-policy"], page.text
    try:  # a page of another server on this machine (Streamlit itself lets any localhost port in)
        with web.websocket_connect("/_stcore/stream", headers={"origin": "http://localhost:9999"}):
            socket = "opened"
    except Exception as exc:
        socket = f"{type(exc).__name__} {getattr(exc, 'code', '')}"
stop_scheduler()
print(json.dumps({"bundle": bundle, "answers": out, "csp": csp, "page": body, "socket": socket}))
"""


def _probe_real_app(**env: str) -> dict[str, Any]:
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", _REAL_APP_PROBE],
        cwd=ROOT,
        env={**os.environ, "SYNC_TICK_SECONDS": "3600", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return probe


def test_the_real_app_answers_no_store_except_on_streamlits_hashed_bundles() -> None:
    """Security bar G5 through app.py's own ``st.App`` (Streamlit itself sends ``no-cache`` on `/` and its health).

    Its Content-Security-Policy also lets Link load from PLAID_LINK_SCRIPT_URL's origin.
    """
    # isolated_env has pointed FINSYNC_DATA_DIR at tmp; the demo bank serves Link, but the script comes from elsewhere
    probe = _probe_real_app(PLAID_LINK_SCRIPT_URL=LINK_SCRIPT_URL)
    answers = probe["answers"]
    for path in ("/", "/healthz", "/_stcore/health"):
        assert answers[path] == [200, ["no-store"], "nosniff"], path
    assert answers["/_stcore/metrics"][0] == 404  # Streamlit's metrics count the open sessions: not for strangers
    status, cache, _ = answers[probe["bundle"]]
    assert status == 200 and cache == ["public, immutable, max-age=31536000"]
    csp = _directives(probe["csp"])  # app.py allows the Link script's origin and the demo bank's
    for name in ("script-src", "connect-src", "frame-src"):
        assert "http://127.0.0.1:9911" in csp[name], name
        assert sum(v.startswith("http://127.0.0.1:") for v in csp[name]) == 2, csp[name]
    # no FINSYNC_BASE_URL: sockets only to the Host the page was asked for (the test client's)
    assert [v for v in csp["connect-src"] if v.startswith("ws")] == ["ws://testserver", "wss://testserver"]
    # Scripts: the served page's own inline scripts by hash, and no 'unsafe-inline' that would run injected ones.
    inline = re.findall(r"<script>(.*?)</script>", probe["page"], re.S)
    assert inline, "Streamlit's page has an inline script: the hash below must allow it"
    for text in inline:
        assert f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'" in csp["script-src"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert probe["socket"] == "WebSocketDisconnect 1008"  # app.py's guard refuses another site's page


def test_the_real_app_names_the_operators_public_url_as_the_only_socket_origin() -> None:
    """app.py hands FINSYNC_BASE_URL to the headers middleware: the Host a request claims no longer counts."""
    csp = _directives(_probe_real_app(FINSYNC_BASE_URL=HTTPS)["csp"])
    assert [v for v in csp["connect-src"] if v.startswith("ws")] == ["wss://finsync.example"]


def test_hsts_only_under_https(container: Container) -> None:
    headers = client(container, https=True).get("/").headers
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def _policy_for(host: str, public_url: str | None = None) -> dict[str, list[str]]:
    """The CSP a browser gets when it asks for the page with this Host header."""
    app = Starlette(
        routes=[Route("/", lambda _r: PlainTextResponse("page"))],
        middleware=[Middleware(SecurityHeadersMiddleware, public_url=public_url)],
    )
    return _directives(TestClient(app).get("/", headers={"host": host}).headers["content-security-policy"])


def _any_host_sockets(values: list[str]) -> list[str]:
    return [v for v in values if v.rstrip("/") in ("ws:", "wss:", "ws://*", "wss://*") or "*" in v.split(":")[0]]


def test_websockets_may_go_only_to_the_pages_own_host() -> None:
    """Injected script cannot open a socket to another host: no bare ws:/wss:, only the Host the page came from."""
    csp = _policy_for("127.0.0.1:8501")
    assert _any_host_sockets(csp["connect-src"]) == []
    sockets = [v for v in csp["connect-src"] if v.startswith(("ws", "wss"))]
    assert sockets == ["ws://127.0.0.1:8501", "wss://127.0.0.1:8501"]  # a TLS-ending proxy may sit in front
    assert csp["connect-src"][0] == "'self'" and "https://cdn.plaid.com" in csp["connect-src"]
    assert [v for v in _policy_for("Finsync.Example")["connect-src"] if v.startswith("ws")] == [
        "ws://finsync.example",
        "wss://finsync.example",
    ]
    assert "wss://[::1]:8501" in _policy_for("[::1]:8501")["connect-src"]


def test_a_public_url_names_the_socket_origin_whatever_host_the_request_claims() -> None:
    csp = _policy_for("attacker.example", public_url=HTTPS)
    assert [v for v in csp["connect-src"] if v.startswith("ws")] == ["wss://finsync.example"]  # HTTPS page: wss only
    assert not any("attacker" in v for values in csp.values() for v in values)
    plain = _policy_for("attacker.example", public_url="http://192.168.1.20:8501")
    assert [v for v in plain["connect-src"] if v.startswith("ws")] == ["ws://192.168.1.20:8501"]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example; script-src *",
        "evil.example connect-src *",
        "'unsafe-eval'",
        '"evil.example"',
        "evil.example,ws:",
        "*",
        "ws:",
        "evil.example:99999",
        "[::1",
        "evil.example/path",
        "user@evil.example",
    ],
)
def test_a_hostile_host_header_never_reaches_the_policy(host: str) -> None:
    """A forged Host cannot add sources or directives: the policy falls back to 'self' for sockets."""
    csp = _policy_for(host)
    baseline = _policy_for("127.0.0.1:8501")
    assert csp["connect-src"] == [v for v in baseline["connect-src"] if not v.startswith("ws")]
    assert {k: v for k, v in csp.items() if k != "connect-src"} == {
        k: v for k, v in baseline.items() if k != "connect-src"
    }
    assert not any("evil" in v or v in ("*", "ws:", "'unsafe-eval'") for values in csp.values() for v in values)


def test_the_session_hand_off_takes_one_ticket_and_refuses_big_or_cross_site_bodies(container: Container) -> None:
    from services import auth
    from services.web import auth_routes
    from tests.integration.auth_support import PASSWORD, make_user

    make_user(container)
    app = Starlette(routes=auth_routes(lambda: container))
    web = TestClient(app, base_url="http://testserver")
    same = {"Sec-Fetch-Site": "same-origin"}

    def ticket() -> str:
        step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
        assert step.ticket
        return step.ticket

    assert web.post("/auth/session", content=ticket(), headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    big = web.post("/auth/session", content=ticket().encode() + b" " * 1_000_000, headers=same)
    assert big.status_code == 413 and "set-cookie" not in big.headers  # refused before the body is held
    ok = web.post("/auth/session", content=ticket(), headers=same)
    assert ok.status_code == 200 and "httponly" in ok.headers["set-cookie"].lower()


def test_the_session_hand_off_refuses_an_address_that_keeps_posting_dead_tickets(
    container: Container, clock: FakeClock
) -> None:
    """Guessing at hand-off tickets is limited per client address like sign-in: after ``IP_LIMIT`` refused tickets the
    next post from that address is answered 429 with a plain reason and Retry-After (even with a live ticket, which
    it does not spend), while someone signing in from another address gets their cookie, and the address may try
    again once the window has passed."""
    import dataclasses

    from services import auth, sessions, throttle
    from services.web import auth_routes
    from tests.integration.auth_support import PASSWORD, make_user

    alice = make_user(container)
    proxied = dataclasses.replace(container, settings=container.settings.model_copy(update={"proxy_hops": 1}))
    web = TestClient(Starlette(routes=auth_routes(lambda: proxied)), base_url="http://testserver")
    guesser = {"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "203.0.113.9"}
    someone = {"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "198.51.100.40"}

    def ticket() -> str:
        step = auth.begin_sign_in(container, login="alice", password=PASSWORD, ip="192.0.2.1")
        assert step.ticket
        return step.ticket

    for n in range(throttle.IP_LIMIT):
        dead = web.post("/auth/session", content=f"guess-{n}-" + "x" * 30, headers=guesser)
        assert dead.status_code == 401 and "set-cookie" not in dead.headers
    live = ticket()
    refused = web.post("/auth/session", content=live, headers=guesser)
    assert refused.status_code == 429 and "set-cookie" not in refused.headers
    assert "Too many" in refused.json()["error"] and "minutes" in refused.json()["error"]
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert sessions.list_sessions(container, alice.id, None) == []

    other = web.post("/auth/session", content=live, headers=someone)  # not spent by the refusal
    assert other.status_code == 200 and "httponly" in other.headers["set-cookie"].lower()
    assert [s.ip for s in sessions.list_sessions(container, alice.id, None)] == ["198.51.100.40"]

    # The guesser's address may post again once the window has passed.
    clock.advance(minutes=15, seconds=1)
    later = web.post("/auth/session", content=ticket(), headers=guesser)
    assert later.status_code == 200


def test_a_flood_of_dead_tickets_past_the_limit_fills_no_table(container: Container) -> None:
    """The refusals past the limit are answered from what is stored: the activity log says once that the address was
    paused (when it was), and a script posting on at HTTP speed adds no row and rewrites nothing, as the webhook
    route keeps forgeries from filling the database (security bar L7)."""
    import dataclasses

    from sqlalchemy import select

    from models import AuditEvent, ThrottleCounter
    from services import throttle
    from services.db import unit_of_work
    from services.web import auth_routes

    proxied = dataclasses.replace(container, settings=container.settings.model_copy(update={"proxy_hops": 1}))
    web = TestClient(Starlette(routes=auth_routes(lambda: proxied)), base_url="http://testserver")
    guesser = {"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "203.0.113.9"}

    def stored() -> tuple[list[tuple[str, str, str]], list[str]]:
        with unit_of_work(container.engine) as session:
            said = session.execute(select(AuditEvent.event, AuditEvent.ip, AuditEvent.detail)).all()
            counters = session.execute(select(ThrottleCounter.recent)).scalars().all()
            return [(e, i, d) for e, i, d in said], list(counters)

    statuses = [web.post("/auth/session", content=f"guess-{n}-" + "x" * 30, headers=guesser).status_code
                for n in range(throttle.IP_LIMIT + 1)]  # fmt: skip
    assert statuses == [401] * throttle.IP_LIMIT + [429]
    before = stored()
    assert before[0] == [("ip_throttled", "203.0.113.9", "sign-in hand-off")]  # said once, when the pause began
    for n in range(40):
        assert web.post("/auth/session", content=f"more-{n}-" + "x" * 30, headers=guesser).status_code == 429
    assert stored() == before


def test_a_busy_database_while_queueing_sign_in_syncs_still_signs_the_person_in(
    container: Container, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Queueing the banks' sync at sign-in is a courtesy (the scheduler's own schedule syncs them anyway): when the
    database refused it (SQLite's write lock held past its wait by a sync committing, a dropped connection), the
    route answered a bare 500 after the session was made and the ticket spent, and the person read "Your sign-in
    expired". The session's cookie is set all the same; the failure is logged without the statement's text."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from services import auth, jobs, sessions
    from services.web import auth_routes
    from tests.integration.auth_support import PASSWORD, make_user

    alice = make_user(container)

    def locked(_c: Container, _user_id: object) -> int:
        raise OperationalError("INSERT INTO sync_jobs ...", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(jobs, "request_sync_on_sign_in", locked)
    web = TestClient(Starlette(routes=auth_routes(lambda: container)), base_url="http://testserver")
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    response = web.post("/auth/session", content=str(step.ticket), headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 200
    token = response.cookies.get("finsync_session")
    view = sessions.current_user(container, token)
    assert view is not None and view.user.id == alice.id
    assert "database is locked" in caplog.text and "INSERT INTO" not in caplog.text


def test_behind_a_trusted_proxy_the_session_records_the_forwarded_address(container: Container) -> None:
    import dataclasses

    from services import auth, sessions
    from services.web import auth_routes
    from tests.integration.auth_support import PASSWORD, make_user

    alice = make_user(container)
    proxied = dataclasses.replace(container, settings=container.settings.model_copy(update={"proxy_hops": 1}))
    web = TestClient(Starlette(routes=auth_routes(lambda: proxied)), base_url="http://testserver")
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    assert step.ticket
    headers = {"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "6.6.6.6, 198.51.100.23"}
    response = web.post("/auth/session", content=step.ticket, headers=headers)
    assert response.status_code == 200
    [row] = sessions.list_sessions(container, alice.id, None)
    assert row.ip == "198.51.100.23"  # the proxy's entry, not the client's forged one nor the proxy itself

    # A proxy that adds its own header line (rather than extend the client's) is read the same way: every line.
    step = auth.begin_sign_in(container, login="alice", password=PASSWORD)
    lines = [("sec-fetch-site", "same-origin"), ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.24")]
    assert web.post("/auth/session", content=step.ticket, headers=lines).status_code == 200
    assert sorted(r.ip for r in sessions.list_sessions(container, alice.id, None)) == ["198.51.100.23", "198.51.100.24"]


def test_the_pages_read_every_forwarded_for_line_too(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign-in's address limit counts the address the proxy saw, not a line the client wrote first."""
    import dataclasses
    from types import SimpleNamespace

    from streamlit.runtime.context import StreamlitHeaders

    from pages.ui import session as ui_session

    proxied = dataclasses.replace(container, settings=container.settings.model_copy(update={"proxy_hops": 1}))
    monkeypatch.setattr(ui_session, "container", lambda: proxied)
    seen = set()
    for forged in ("6.6.6.6", "7.7.7.7"):
        lines = [("Host", "finsync.example"), ("X-Forwarded-For", forged), ("X-Forwarded-For", "198.51.100.23")]
        context = SimpleNamespace(ip_address="10.0.0.2", headers=StreamlitHeaders(lines))
        monkeypatch.setattr(ui_session, "st", SimpleNamespace(context=context))
        seen.add(ui_session.client_ip())
    assert seen == {"198.51.100.23"}


HTTPS = "https://finsync.example"
HTTP = "http://127.0.0.1:8501"
SAME_SITE = {"Sec-Fetch-Site": "same-origin"}


def _served_at(container: Container, base_url: str) -> tuple[Container, TestClient]:
    """The auth routes of a finsync whose FINSYNC_BASE_URL is ``base_url``, and a client on that scheme."""
    import dataclasses

    from services.web import auth_routes

    c = dataclasses.replace(container, settings=container.settings.model_copy(update={"base_url": base_url}))
    scheme = urlsplit(base_url).scheme
    return c, TestClient(Starlette(routes=auth_routes(lambda: c)), base_url=f"{scheme}://testserver")


def _set_cookie(response: Response) -> tuple[str, str, dict[str, str]]:
    """The one Set-Cookie header: name, value and attributes (names lower-cased, flags as "")."""
    (header,) = response.headers.get_list("set-cookie")
    pair, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = pair.partition("=")
    flags = dict(a.partition("=")[::2] for a in attributes)
    return name, value.strip('"'), {k.lower(): v.lower() for k, v in flags.items()}


@pytest.mark.parametrize(("base_url", "name"), [(HTTPS, "__Host-finsync_session"), (HTTP, "finsync_session")])
def test_the_session_cookie_is_host_only_http_only_lax_and_secure_under_https(
    container: Container, base_url: str, name: str
) -> None:
    """Security bar: ``__Host-`` + Secure under HTTPS (ASVS 3.3.1, 3.3.3), HttpOnly (3.3.4), SameSite=Lax (3.3.2)."""
    from services import auth, sessions
    from tests.integration.auth_support import PASSWORD, make_user

    alice = make_user(container)
    c, web = _served_at(container, base_url)
    step = auth.begin_sign_in(c, login="alice", password=PASSWORD)
    response = web.post("/auth/session", content=str(step.ticket), headers=SAME_SITE)
    assert response.status_code == 200
    cookie_name, token, flags = _set_cookie(response)
    assert cookie_name == name
    assert flags.pop("secure", None) == ("" if base_url == HTTPS else None)
    assert flags == {"httponly": "", "samesite": "lax", "path": "/", "max-age": str(12 * 3600)}  # no Domain: host-only
    view = sessions.current_user(c, token)
    assert view is not None and view.user.id == alice.id


@pytest.mark.parametrize(("base_url", "name"), [(HTTPS, "__Host-finsync_session"), (HTTP, "finsync_session")])
def test_logout_revokes_the_server_session_and_clears_the_cookie(
    container: Container, base_url: str, name: str
) -> None:
    from services import audit, sessions
    from tests.integration.auth_support import make_user, sign_in

    alice = make_user(container)
    c, web = _served_at(container, base_url)
    token = sign_in(c)
    cookie = {"Cookie": f"{name}={token}"}
    assert web.post("/auth/logout", headers={"Sec-Fetch-Site": "cross-site", **cookie}).status_code == 403
    assert sessions.current_user(c, token) is not None  # a cross-site post signs nobody out
    response = web.post("/auth/logout", headers={**SAME_SITE, **cookie})
    assert response.status_code == 200
    cookie_name, value, flags = _set_cookie(response)
    assert (cookie_name, value, flags["max-age"], flags["path"]) == (name, "", "0", "/")
    assert "httponly" in flags and ("secure" in flags) == (base_url == HTTPS)  # the same cookie, so it is replaced
    assert sessions.current_user(c, token) is None and sessions.list_sessions(c, alice.id, None) == []
    assert "sign_out" in [e.event for e in audit.list_events(c, alice.id)]


def _stream_app(public_url: str | None = None) -> Starlette:
    async def stream(
        ws: WebSocket,
    ) -> None:  # stands in for Streamlit's socket: it would run pages as the cookie's user
        await ws.accept()
        await ws.send_text("your transactions")
        await ws.close()

    return Starlette(
        routes=[WebSocketRoute("/_stcore/stream", stream)],
        middleware=[Middleware(SecurityHeadersMiddleware, public_url=public_url)],
    )


def _opens(web: TestClient, origin: str | None, host: str) -> bool:
    headers = {"host": host} | ({"origin": origin} if origin else {})
    try:
        with web.websocket_connect("/_stcore/stream", headers=headers) as ws:
            return ws.receive_text() == "your transactions"
    except WebSocketDisconnect as refused:
        assert refused.code == 1008
        return False


@pytest.mark.parametrize(
    "hostile",
    [
        "http://localhost:9999",  # another local server's page: the same site, so the browser sends the cookie
        "http://127.0.0.1:8501",
        "https://evil.example",
        "http://localhost:8501.evil.example",
        "null",  # a sandboxed frame or a file:// page
    ],
)
def test_only_finsyncs_own_pages_may_open_the_socket_that_carries_the_session(hostile: str) -> None:
    """Pentest finding: any page on localhost could open Streamlit's socket with the user's cookie and read their
    ledger. Now the socket's Origin must be the page's own; a client sending none is not a browser (no cookie)."""
    web, host = TestClient(_stream_app()), "localhost:8501"
    assert _opens(web, "http://localhost:8501", host) and _opens(web, None, host)
    assert not _opens(web, hostile, host)
    public = TestClient(_stream_app("http://localhost:8501"))  # FINSYNC_BASE_URL as .env.example has it
    assert not _opens(public, hostile, host)


@pytest.mark.parametrize(
    ("public_url", "origin", "host"),
    [
        ("https://finsync.example", "https://finsync.example", "10.0.0.5:8501"),  # behind a proxy that sets its Host
        ("https://finsync.example:443", "https://finsync.example", "10.0.0.5:8501"),  # browsers leave 443 out
        ("https://Bücher.example", "https://xn--bcher-kva.example", "10.0.0.5:8501"),  # and send the IDNA name
        ("http://localhost:8501", "http://127.0.0.1:8501", "127.0.0.1:8501"),  # the page opened by another name
        (None, "https://finsync.example", "finsync.example:443"),
        (None, "http://[::1]:8501", "[::1]:8501"),
        ("https://finsync.example", "http://localhost:8501", "localhost:8501"),  # the operator, on the machine
        ("https://finsync.example", "http://192.168.1.5:8501", "192.168.1.5:8501"),  # or from the home network
        ("https://finsync.example", "http://[::1]:8501", "[::1]:8501"),
        ("https://finsync.example", "http://nas:8501", "nas:8501"),  # the machine's own name on the home network
        ("https://finsync.example", "http://nas.local:8501", "nas.local:8501"),
        ("https://finsync.example", "http://nas.home.arpa:8501", "nas.home.arpa:8501"),
        (None, "http://nas.home.arpa:8501", "nas.home.arpa:8501"),  # no public URL: any name the page came by
    ],
)
def test_finsyncs_own_page_opens_the_socket_however_its_address_is_written(
    public_url: str | None, origin: str, host: str
) -> None:
    assert _opens(TestClient(_stream_app(public_url)), origin, host)


@pytest.mark.parametrize("public_url", ["https://finsync.example", "http://localhost:8501"])
def test_a_page_whose_name_was_rebound_to_this_server_cannot_open_the_socket(public_url: str) -> None:
    """DNS rebinding: evil.example's page, its name now resolving to this server, opens the socket; the browser
    sends ``Host`` and ``Origin`` both evil.example, so "same host" says nothing. With FINSYNC_BASE_URL set, a
    name other than its own is refused (the attacker's page would otherwise drive sign-in and registration
    from inside the victim's network). Addresses and local names stay open: no one else's DNS names them."""
    public = TestClient(_stream_app(public_url))
    for name in ("evil.example:8501", "evil.example", "localhost.evil.example:8501", "127.0.0.1.nip.io:8501",
                 "finsync.example.evil.example", "local.evil.example"):  # fmt: skip
        assert not _opens(public, f"http://{name}", name), name
    assert _opens(public, "http://127.0.0.1:8501", "127.0.0.1:8501")


def test_healthz_answers_503_in_time_and_leaves_the_server_serving_while_the_database_hangs(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from services import web

    release = threading.Event()
    monkeypatch.setattr(web, "HEALTH_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(web, "check_database", lambda _engine: release.wait(10))
    answers: dict[str, tuple[int, float]] = {}
    with client(container) as http:

        def probe() -> None:
            started = time.monotonic()
            answers["healthz"] = (http.get("/healthz").status_code, time.monotonic() - started)

        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.2)  # the health check is now hanging
        started = time.monotonic()
        assert http.get("/").text == "page"
        assert time.monotonic() - started < 0.5  # the page did not wait for the database
        prober.join(5)
        release.set()
    status, took = answers["healthz"]
    assert status == 503 and took < 2.0
