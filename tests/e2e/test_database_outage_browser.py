"""A real PostgreSQL refuses the app mid-session (a restart, a failover): the page says so in words, and the same
browser carries on, still signed in, once the database is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.db import make_engine
from tests.conftest import PG_URL
from tests.e2e.conftest import Server, shot, sign_in, start_server
from tests.factories import drop_pg_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
PASSWORD = "harbor lantern quill 6610 spruce"


def admin(sql: str) -> None:
    engine = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of its own (the outage must not reach the other tests' database)."""
    if not PG_URL:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    name = f"finsync_outage_{uuid.uuid4().hex[:8]}"
    admin(f'CREATE DATABASE "{name}"')
    yield name
    drop_pg_database(PG_URL, name)


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Server]:
    url = make_url(PG_URL).set(database=database).render_as_string(hide_password=False)
    yield from start_server(tmp_path_factory, DATABASE_URL=url)


def test_the_database_going_away_mid_session_is_said_in_words_and_survived(
    pg_server: Server, database: str, browser: object
) -> None:
    made = pg_server.cli(
        "users", "create", "--email", "olive@example.com", "--username", "olive", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, pg_server, "olive", PASSWORD)

    # The server turns the app away: no new connections to its database, and the open ones are cut.
    admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')  # applies to superusers too
    admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    page.get_by_role("link", name="Transactions").click()
    page.get_by_text("finsync cannot reach its database right now.").wait_for(timeout=30_000)
    shot(page, "database-outage")
    assert page.get_by_test_id("stException").count() == 0
    body = page.inner_text("body")
    assert "5432" not in body and "SELECT" not in body and "Traceback" not in body
    log = pg_server.log.read_text()
    assert "a page could not use the database" in log and "SELECT" not in log.split("could not use the database")[1]

    admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')  # back
    page.get_by_role("button", name="Try again").click()
    page.get_by_role("heading", name="Transactions").wait_for(timeout=30_000)
    assert page.get_by_text("cannot reach its database").count() == 0
    assert page.get_by_text("Signed in as olive").count() == 1  # the same session, not signed out
    page.context.close()
