"""Migrations: upgrade an empty database, autogenerate finds no drift, downgrade to base."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from services import migrations
from services.db import make_engine
from tests.conftest import PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL case: TEST_POSTGRES_URL is not set")
    url: str = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    migrations.downgrade(engine, "base")
    engine.dispose()
    request.addfinalizer(lambda: _restore(url))
    return url


def _restore(url: str) -> None:
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()


def test_upgrade_autogenerate_clean_and_downgrade(empty_url: str) -> None:
    engine = make_engine(empty_url)
    assert not set(inspect(engine).get_table_names()) & set(SQLModel.metadata.tables)
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision(engine)
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    migrations.downgrade(engine, "base")
    assert not set(inspect(engine).get_table_names()) & set(SQLModel.metadata.tables)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 0
    engine.dispose()
