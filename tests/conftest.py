"""Shared fixtures: isolated environment, every database test on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from services import migrations
from services.config import get_settings
from services.container import Container, build_container
from services.db import make_engine
from services.demo_bank_runtime import stop_demo_banks
from services.mailer import MemoryMailer
from tests.factories import FakeClock, drop_pg_database, make_settings

pytest_plugins = ["tests.integration.conftest_bank", "tests.integration.sync_helpers"]

PG_URL = os.environ.get("TEST_POSTGRES_URL", "")
ISOLATED_PREFIXES = ("FINSYNC_", "PLAID_", "DATABASE_URL", "SMTP_URL", "SESSION_", "SYNC_", "STREAMLIT_")
_pg_counts = {"ran": 0, "skipped": 0}


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No developer `.env`, no real settings: every test starts from a clean environment."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    stop_demo_banks()  # a page or CLI call in demo mode started one for this test's data dir: it polls until stopped


# --- databases ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for each test (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this run, migrated once, dropped at the end."""
    if not PG_URL:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    base = make_url(PG_URL)
    name = f"finsync_t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    yield url
    admin.dispose()
    drop_pg_database(PG_URL, name)


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_database")
    _truncate_engine = make_engine(url)
    _truncate(_truncate_engine)
    _truncate_engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mailer() -> MemoryMailer:
    return MemoryMailer()


@pytest.fixture
def container(engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock, mailer: MemoryMailer) -> Container:
    """The composition root wired with a fake clock and an in-memory mailer."""
    settings = make_settings(tmp_path / "data", db_url)
    return build_container(settings, engine=engine, mailer=mailer, clock=clock)


# --- reporting ------------------------------------------------------------------------------
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.keywords:
        return
    if report.when == "call":
        _pg_counts["ran"] += 1
    elif report.when == "setup" and report.skipped:
        _pg_counts["skipped"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ran, skipped = _pg_counts["ran"], _pg_counts["skipped"]
    if skipped and not ran:
        terminalreporter.write_line(
            f"PostgreSQL cases: {skipped} SKIPPED because TEST_POSTGRES_URL is not set (CI sets it).", yellow=True
        )
    else:
        terminalreporter.write_line(f"PostgreSQL cases: {ran} ran, {skipped} skipped.", green=not skipped)
