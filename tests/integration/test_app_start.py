"""The server refuses to start on a database it cannot trust, says why in one line, and changes nothing.

The app never migrates by itself (a hosted app must not alter a shared schema on a restart): an operator who
deployed new code before running ``db upgrade`` is told to run it, instead of getting pages that fail on a
missing column.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from services import migrations
from services.db import make_engine

ROOT = Path(__file__).resolve().parents[2]


def _start_the_app(database_url: str) -> subprocess.CompletedProcess[str]:
    """Import app.py in a child process, as `streamlit run app.py` does (it starts the scheduler when it can)."""
    return subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", "import app"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},  # isolated_env points FINSYNC_DATA_DIR at tmp
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_app_refuses_a_database_behind_its_migrations_and_leaves_it_as_it_was(db_url: str) -> None:
    engine = make_engine(db_url)
    head = migrations.head_revision(engine)
    try:
        migrations.downgrade(engine, "-1")  # new code deployed, `db upgrade` forgotten
        behind = migrations.current_revision(engine)
        assert behind and behind != head
        tables = set(inspect(engine).get_table_names())
        started = _start_the_app(db_url)
        assert started.returncode == 2, started.stderr[-2000:]
        lines = started.stderr.strip().splitlines()
        assert lines[-1] == (
            f"finsync: cannot start: the database schema is at {behind}, not {head}: "
            "run `python -m services.cli db upgrade`"
        )
        assert "Traceback" not in started.stderr
        assert migrations.current_revision(engine) == behind  # the app did not migrate on its own
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        migrations.upgrade(engine)  # the shared PostgreSQL database serves the tests after this one
        engine.dispose()


def test_the_app_refuses_a_database_file_that_is_not_there_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "finsync.db"  # a mistyped DATABASE_URL
    started = _start_the_app(f"sqlite:///{missing}")
    assert started.returncode == 2, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1] == (
        f"finsync: cannot start: there is no database at {missing}: run `python -m services.cli db upgrade` "
        "to create it, or check DATABASE_URL"
    )
    assert not missing.exists() and not missing.parent.exists()
    assert not (tmp_path / "data").exists()  # no secrets file, no log, no outbox: nothing written before the refusal


def _start_the_app_with_secrets(tmp_path: Path, secrets_toml: str) -> subprocess.CompletedProcess[str]:
    """Import app.py as `streamlit run` does, from a folder whose `.streamlit/secrets.toml` holds the settings (what
    Streamlit Community Cloud writes from the app's Secrets box); the environment names no database."""
    folder = tmp_path / "deployed"
    (folder / ".streamlit").mkdir(parents=True)
    (folder / ".streamlit" / "secrets.toml").write_text(secrets_toml, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", "import app"],
        cwd=folder,
        env={**env, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_app_reads_its_settings_from_streamlit_secrets(tmp_path: Path) -> None:
    """README: on Streamlit Community Cloud the settings are top-level Secrets, which Streamlit exports as environment
    variables. It does so only once something reads st.secrets, and `streamlit run` imports app.py first: the app
    started without them (its default SQLite file in the working folder, fresh keys) instead of on the database the
    Secrets name."""
    named = tmp_path / "from-secrets" / "finsync.db"
    started = _start_the_app_with_secrets(tmp_path, f'DATABASE_URL = "sqlite:///{named}"\n')
    assert started.returncode == 2, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1] == (
        f"finsync: cannot start: there is no database at {named}: run `python -m services.cli db upgrade` "
        "to create it, or check DATABASE_URL"
    )


def test_a_secrets_file_that_is_not_toml_stops_the_app_in_one_line_without_its_values(tmp_path: Path) -> None:
    started = _start_the_app_with_secrets(tmp_path, 'FINSYNC_SECRET_KEY = "hunter2hunter2hunter2hunter2hunter2\n')
    assert started.returncode == 2, started.stderr[-2000:]
    last = started.stderr.strip().splitlines()[-1]
    assert last.startswith("finsync: cannot start: Streamlit secrets: ") and "secrets.toml" in last
    assert "hunter2" not in started.stderr and "Traceback" not in started.stderr


def test_a_setting_written_under_a_secrets_section_is_named_not_taken_for_unset(tmp_path: Path) -> None:
    """In TOML every key after a [section] line belongs to it, and Streamlit exports only top-level keys: a
    DATABASE_URL pasted below a [connections] table was not read, and the app, looking for its default SQLite file,
    said "there is no database at .../data/finsync.db" to someone who had set DATABASE_URL."""
    named = tmp_path / "from-secrets" / "finsync.db"
    secrets = f'[connections.reports]\ntype = "sql"\n\nDATABASE_URL = "sqlite:///{named}"\n'
    started = _start_the_app_with_secrets(tmp_path, secrets)
    assert started.returncode == 2, started.stderr[-2000:]
    assert started.stderr.strip().splitlines()[-1] == (
        "finsync: cannot start: Streamlit secrets: DATABASE_URL is inside [connections.reports], where finsync does "
        "not read it: move it above the first [section] line of the secrets"
    )
    assert "Traceback" not in started.stderr and str(named) not in started.stderr
    assert not (tmp_path / "deployed" / "data").exists()
    top = f'DATABASE_URL = "sqlite:///{named}"\n\n[connections.reports]\ntype = "sql"\n'
    started = _start_the_app_with_secrets(tmp_path / "top", top)  # above the section: read, as README says
    assert started.stderr.strip().splitlines()[-1].startswith(f"finsync: cannot start: there is no database at {named}")
