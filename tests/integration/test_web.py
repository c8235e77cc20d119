"""Our HTTP surface: health route and security headers on every response."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from services.container import Container
from services.db import make_engine
from services.web import SecurityHeadersMiddleware, health_route


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
        assert "strict-transport-security" not in headers


def test_hsts_only_under_https(container: Container) -> None:
    headers = client(container, https=True).get("/").headers
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


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
