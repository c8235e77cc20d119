"""Alembic driven from code: the scripts live in models/migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import ProgrammingError

from services.errors import ConfigError

# insufficient_privilege, and must-be-owner (PostgreSQL reports both as 42501)
_NO_RIGHTS = ("42501",)
MIGRATIONS = Path(__file__).resolve().parent.parent / "models" / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def _run(engine: Engine, fn_name: str, target: str) -> None:
    """One transaction for every step. On SQLite, foreign keys are off meanwhile (checked before the commit):
    batch mode rebuilds a table to drop a column, and dropping the old one would otherwise delete, by cascade,
    every row that refers to it (a user's banks, accounts and transactions)."""
    config = alembic_config(engine)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection if connection.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # outside the transaction: SQLite ignores it inside one
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                getattr(command, fn_name)(config, target)
                if raw is not None and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError(f"database {fn_name} to {target} would leave rows pointing at nothing")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade(engine: Engine, target: str = "head") -> None:
    """Apply migrations up to ``target``.

    Raises ``ConfigError`` when the database refuses the change for want of rights (the app's own role, which
    ``db grant`` keeps from altering the schema): nothing is changed, as every step is one transaction."""
    try:
        _run(engine, "upgrade", target)
    except (CommandError, ResolutionError) as exc:  # a revision this finsync does not know: asked, or in the database
        raise _unknown_revision(engine, target, exc) from None
    except ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) not in _NO_RIGHTS:
            raise
        who = engine.url.username or "this role"
        raise ConfigError(
            "DATABASE_URL",
            f"{who} may not change the schema ({str(exc.orig).splitlines()[0][:120]}): run db upgrade as the role "
            f"that owns finsync's tables, then db grant for the app's role.",
        ) from None


def _unknown_revision(engine: Engine, target: str, exc: Exception) -> ConfigError:
    """The database's revision is one this finsync does not know (DATABASE_URL's), or the one asked for is."""
    try:
        current = current_revision(engine)
    except (CommandError, ResolutionError):
        current = None
    if current is not None and not is_known(engine, current):
        return ConfigError("DATABASE_URL", newer_schema(current))
    problem = f"there is no revision {target[:32]!r} (the newest is {head_revision(engine)}): {str(exc)[:120]}"
    return ConfigError("--revision", problem)  # was "DATABASE_URL: there is no revision '-1'": the wrong thing to fix


def is_known(engine: Engine, revision: str) -> bool:
    """Whether ``revision`` is one of this finsync's migrations."""
    try:
        return ScriptDirectory.from_config(alembic_config(engine)).get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False


def newer_schema(revision: str) -> str:
    return (
        f"the database is at revision {revision[:32]}, which this finsync does not know: a newer finsync "
        "migrated it. Run that version (or restore a backup taken before it)."
    )


def downgrade(engine: Engine, target: str = "base") -> None:
    """Revert migrations down to ``target``."""
    _run(engine, "downgrade", target)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def revise(engine: Engine, message: str) -> None:
    """Autogenerate a new revision against ``engine`` (a developer tool)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)
