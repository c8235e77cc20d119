"""The PostgreSQL role the app and workers run as: what it needs, and no more (README "Running on PostgreSQL").

An owner role runs the migrations; the app's role only reads and writes rows. So a compromised app cannot
drop the audit log's append-only trigger, delete audit rows, rewrite the migration record or change the
schema. Rows are all it needs, and their sequences too: ``transaction_history`` numbers its rows with one,
and without ``USAGE`` on it the first change a bank makes to a transaction would fail every sync of that bank.

Tables created later by the owner get the same rights through default privileges; a migration that rebuilds
``audit_events`` must be followed by ``db grant`` again (the README says to run it after every upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from services.db import is_sqlite
from services.errors import InputError

APPEND_ONLY = ("audit_events",)  # rows are added; ip and detail may be blanked (its trigger checks the rest)
READ_ONLY = ("alembic_version",)  # the app reads the schema's revision at start-up, never writes it
ROW_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"


@dataclass(frozen=True)
class Granted:
    """What ``grant_app_role`` left the role with."""

    role: str
    schema: str
    tables: int
    sequences: int
    may_create: bool  # CREATE on the schema granted to PUBLIC (PostgreSQL 14 and older): not ours to take away


def grant_app_role(engine: Engine, role: str) -> Granted:
    """Give ``role`` the rows of finsync's tables (and tables later migrations add), run as their owner.

    Raises ``InputError`` for a role that does not exist, is a superuser (no grant limits it), or is the owner
    running this; and on SQLite, which has no roles."""
    if is_sqlite(engine):
        raise InputError(
            "db grant is for PostgreSQL: a SQLite file has no roles (finsync keeps it readable by its owner only)."
        )
    with engine.begin() as conn:
        found = conn.execute(
            text("SELECT rolsuper, rolname = current_user FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        if found is None:
            raise InputError(
                f"no PostgreSQL role named {role[:63]!r}: create it first (CREATE ROLE … LOGIN PASSWORD …)."
            )
        superuser, is_me = found
        if is_me:
            raise InputError(f"{role} runs this command and owns the tables: give the app a role of its own.")
        if superuser:
            raise InputError(f"{role} is a superuser, which no grant limits: give the app a role without SUPERUSER.")
        schema = str(conn.execute(text("SELECT current_schema()")).scalar())
        who, where = _quote(conn, role), _quote(conn, schema)
        for statement in (
            f"GRANT USAGE ON SCHEMA {where} TO {who}",
            f"GRANT {ROW_RIGHTS} ON ALL TABLES IN SCHEMA {where} TO {who}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
            # what the owner's later migrations create (its own objects only, in this schema)
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {where} GRANT {ROW_RIGHTS} ON TABLES TO {who}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {where} GRANT USAGE, SELECT ON SEQUENCES TO {who}",
            *(f"REVOKE DELETE, TRUNCATE ON {where}.{_quote(conn, t)} FROM {who}" for t in APPEND_ONLY),
            *(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {where}.{_quote(conn, t)} FROM {who}" for t in READ_ONLY),
        ):
            conn.exec_driver_sql(statement)
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = :s),"
                " (SELECT count(*) FROM pg_sequences WHERE schemaname = :s),"
                " has_schema_privilege(:r, :s, 'CREATE')"
            ),
            {"s": schema, "r": role},
        ).one()
    return Granted(role, schema, int(counts[0]), int(counts[1]), bool(counts[2]))


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(name))
