"""``db upgrade``, ``db purge`` and ``db grant``: the schema, retention and the app's own PostgreSQL role."""

from __future__ import annotations

import argparse
import sys

from services import migrations, retention
from services.config import load_settings
from services.container import build_container, command_container
from services.db import check_database, make_engine
from services.db_roles import grant_app_role
from services.settings import Settings


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings(create_secrets=False)
    engine = make_engine(settings.effective_database_url)
    check_database(engine, encoding=True)
    migrations.upgrade(engine, args.revision)
    if args.revision == "head" and _keys_belong_here(settings):
        build_container(settings, engine=engine)  # first start: local secrets and the key canary
    print(f"database at revision {migrations.current_revision(engine)}")
    return 0


def _keys_belong_here(settings: Settings) -> bool:
    """Whether ``db upgrade`` may bind a key ring to the database: its own SQLite file under the data dir (whose
    secrets file is its ring), or both secrets given. Run from a laptop against a hosted database with only
    DATABASE_URL (as the README's deploy steps say), it made a ring under ./data and recorded its canary there, and
    the deployed app, with the ring of its Secrets, then refused to start: "key version 1 is not the key ...".
    """
    return settings.database_url is None or (settings.secret_key is not None and settings.encryption_keys is not None)


def _db_purge(args: argparse.Namespace) -> int:
    for table, count in retention.purge(command_container()).items():
        print(f"{table}: {count} {'mail file(s)' if table == 'outbox' else 'row(s)'} deleted")
    return 0


def _db_grant(args: argparse.Namespace) -> int:
    settings = load_settings(create_secrets=False)
    engine = make_engine(settings.effective_database_url)
    check_database(engine)
    done = grant_app_role(engine, args.role)
    print(
        f"{done.role} may read and write the rows of finsync's {done.tables} tables and use their {done.sequences} "
        f"sequence(s), and will on the tables later migrations add; it may not delete audit_events rows, change the "
        f"migration record or the schema. Point the app's and the workers' DATABASE_URL at it."
    )
    if done.may_create:
        print(
            f"warning: {done.role} may still create tables in schema {done.schema} (PostgreSQL 14 and older grant "
            f"that to everyone): as its owner, REVOKE CREATE ON SCHEMA {done.schema} FROM PUBLIC.",
            file=sys.stderr,
        )
    return 0


def register_db(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database schema and retention").add_subparsers(dest="action", required=True)
    up = db.add_parser("upgrade", help="apply migrations (default: to the newest)")
    up.add_argument("--revision", type=_revision, default="head", help="target revision (default: head)")
    up.set_defaults(
        handler=_db_upgrade,
        on_interrupt="nothing is lost (the upgrade is one transaction: all of it or none); run the same command again",
    )
    purge = db.add_parser(
        "purge",
        help="delete rows past retention now (old sessions, tokens, webhooks, Plaid calls, sync runs)",
        description="Delete rows past their retention period (services/retention.py) and print how many per table. "
        "The scheduler and the worker do this once a day by themselves.",
    )
    purge.set_defaults(
        handler=_db_purge, on_interrupt="the rest is left as it was; run the same command again to purge it"
    )
    grant = db.add_parser(
        "grant",
        help="give the app's own PostgreSQL role the rows it needs and no more (run as the tables' owner)",
        description="Run as the role that owns the tables (the one that ran db upgrade). ROLE gets the rows of "
        "every table and sequence, now and of tables later migrations add, but may not delete audit_events rows, "
        "change the migration record or alter the schema. Then run the app and workers as ROLE.",
    )
    grant.add_argument("role", metavar="ROLE", help="an existing PostgreSQL role, not a superuser")
    grant.set_defaults(handler=_db_grant)


def _revision(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a revision: head (the default) or a number such as 0016")
    return text.strip()
