"""finsync's command line: ``python -m services.cli COMMAND``; every command has ``--help``.

Exit codes: 0 success, 1 a requested operation failed, 2 bad input or configuration, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from services import audit, banking, migrations, retention
from services.banking_sandbox import default_institution
from services.config import load_settings
from services.container import Container, build_container, command_container
from services.crypto import rotate_keys, values_to_rotate, versions_in_use
from services.db import check_database, is_outage, make_engine, outage_reason, unit_of_work
from services.db_roles import grant_app_role
from services.errors import FinsyncError, InputError
from services.key_ring import new_key_entry
from services.local_secrets import LOCAL_SECRETS_FILE, ensure_local_secrets, write_local_key_ring
from services.logs import configure_logging
from services.settings import Settings, env_files
from services.users import create_user

Handler = Callable[[argparse.Namespace], int]
COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def command(register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]) -> None:
    """Register a function that adds a command group to the parser (later modules add theirs)."""
    COMMANDS.append(register)


def container() -> Container:
    return command_container()


def interrupted_line(args: argparse.Namespace) -> str:
    """What an operator who pressed Ctrl-C needs to know: a command sets ``on_interrupt`` (formatted with its own
    arguments) to say what its work keeps and how to carry on; the others are just "interrupted"."""
    said = getattr(args, "on_interrupt", "")
    return "finsync: interrupted" + (f": {said.format(**vars(args))}" if said else "")


NOT_TEXT = "The password is not UTF-8 text, which is what a browser sends at sign-in: give it as UTF-8."


def read_password(prompt: str = "Password: ") -> str:
    """From the terminal without echo, or the first line of stdin as UTF-8; never from argv."""
    if sys.stdin.isatty():
        try:
            first = getpass.getpass(prompt)
            if getpass.getpass("Repeat: ") != first:
                raise FinsyncError("The two passwords differ.")
            first.encode("utf-8")  # a byte the terminal's encoding could not read is kept as a lone surrogate
        except UnicodeError:
            raise InputError(NOT_TEXT) from None
        return first
    # The bytes, not sys.stdin's text: that decodes by the locale and keeps bytes it cannot read as lone
    # surrogates, which passed the password checks and then ended the command with a traceback when hashed.
    line = sys.stdin.buffer.readline(64 * 1024)
    try:
        # "-sig": a file saved with a byte-order mark would otherwise begin the password with one no one types
        return line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(NOT_TEXT) from None


# db ---------------------------------------------------------------------------------------
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
    for table, count in retention.purge(container()).items():
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


@command
def _db(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _batch_size(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of rows from 1 to 100000")
    return int(text)


# keys -------------------------------------------------------------------------------------
def _keys_generate(args: argparse.Namespace) -> int:
    settings = load_settings(create_secrets=False)
    from_env = settings.encryption_keys is not None
    local = settings.data_dir / LOCAL_SECRETS_FILE
    if not from_env and local.exists():
        settings = ensure_local_secrets(settings, announce=False)
    ring = settings.key_ring if settings.encryption_keys else ()
    version = max((e.version for e in ring), default=0) + 1
    entry = new_key_entry(version)
    current = settings.encryption_keys.get_secret_value() if settings.encryption_keys else ""
    value = f"{entry}{',' + current if current else ''}"
    if args.write:
        if from_env:  # pydantic-settings: a variable of the process wins over a line of .env
            where = "the environment" if os.environ.get("FINSYNC_ENCRYPTION_KEYS") else str(env_files()[0])
            raise FinsyncError(f"FINSYNC_ENCRYPTION_KEYS is set in {where}: update it there, not with --write.")
        write_local_key_ring(settings.data_dir, value)
        print(f"added key version {version} first in {local}; restart finsync, then run `keys rotate`")
        return 0
    print(f"new key entry:          {entry}")
    print(f"FINSYNC_ENCRYPTION_KEYS={value}")
    print("Put the new entry first, restart finsync, then run `python -m services.cli keys rotate`.")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    c = container()
    report = rotate_keys(c.engine, c.cipher, batch_size=args.batch_size)
    print(
        f"re-encrypted {report.rewritten} value(s) in {report.batches} batch(es) with key version {c.cipher.primary_version}"
    )
    in_use = versions_in_use(c.engine, c.cipher)
    unused = [v for v in c.cipher.versions if v not in in_use and v != c.cipher.primary_version]
    if unused:
        print(f"key version(s) {', '.join(map(str, unused))} protect nothing now and can be removed from the ring")
    if report.unreadable:
        print(f"{report.unreadable} value(s) could not be read and were left as they were{_missing_keys(c, in_use)}")
        return 1
    return 0


def _keys_status(args: argparse.Namespace) -> int:
    c = container()
    in_use = versions_in_use(c.engine, c.cipher)
    for version in c.cipher.versions:
        role = "encrypts" if version == c.cipher.primary_version else "decrypts"
        print(f"key {version}: {role}, protects {in_use.get(version, 0)} value(s)")
    lost = {v: n for v, n in in_use.items() if v not in c.cipher.versions}
    for version, n in sorted(lost.items()):
        name = f"key {version}: NOT IN THE RING" if version else "damaged values (no readable key version):"
        print(f"{name}, {n} value(s) cannot be read")
    if stale := values_to_rotate(c.engine, c.cipher):
        print(
            f"{stale} value(s) are not on key {c.cipher.primary_version} in the current format yet: run `keys rotate`"
        )
    if lost:
        print(f"unreadable values{_missing_keys(c, in_use)}")
        return 1
    return 0


def _missing_keys(c: Container, in_use: dict[int, int]) -> str:
    """What to do about values no key of the ring reads: the versions to put back, when that is the cause."""
    missing = sorted(v for v in in_use if v and v not in c.cipher.versions)
    if not missing:
        return " (damaged: restore them from a backup)"
    return (
        f": put key version(s) {', '.join(map(str, missing))} back in FINSYNC_ENCRYPTION_KEYS (after the first entry),"
        " restart, then run `keys rotate`"
    )


@command
def _keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="encryption key ring").add_subparsers(dest="action", required=True)
    generate = keys.add_parser("generate", help="make a new key to put first in FINSYNC_ENCRYPTION_KEYS")
    generate.add_argument(
        "--write", action="store_true", help="put it first in the local secrets file under the data dir"
    )
    generate.set_defaults(handler=_keys_generate)
    rotate = keys.add_parser("rotate", help="re-encrypt every encrypted field with the first key (resumable)")
    rotate.add_argument("--batch-size", type=_batch_size, default=500, help="rows per committed batch (default 500)")
    rotate.set_defaults(
        handler=_keys_rotate,
        on_interrupt="nothing is lost (the batches done are committed, the one in hand was rolled back); "
        "run the same command again to resume",
    )
    keys.add_parser("status", help="how many values each key version protects").set_defaults(handler=_keys_status)


# users ------------------------------------------------------------------------------------
def _users_create(args: argparse.Namespace) -> int:
    generated = secrets.token_urlsafe(18) if args.generate_password else None
    password = generated or read_password()  # first: a password that is not text stops before anything is made
    c = container()
    with unit_of_work(c.engine) as session:
        user = create_user(
            session,
            email=args.email,
            username=args.username,
            password=password,
            pepper=c.pepper,
            role="admin" if args.admin else "user",
            email_verified=True,
        )
        # An account made here (an admin above all) must show in the audit log like one made in the browser.
        detail = f"{user.role} account, {audit.COMMAND_LINE}"
        audit.record(session, event="registered", user_id=user.id, detail=detail, at=c.clock())
    print(f"created {'admin' if args.admin else 'user'} {user.username} ({user.id})")
    if generated:
        print(f"password: {generated}  (shown once; change it after signing in)")
    return 0


def _users_import_authenticator(args: argparse.Namespace) -> int:
    from services.authenticator_import import import_authenticator

    report = import_authenticator(container(), Path(args.file))
    for name in report.imported:
        print(f"imported {name} (unverified; the hash is upgraded at the first sign-in)")
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}")
    print(f"{len(report.imported)} imported, {len(report.skipped)} skipped")
    return 0


@command
def _users(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="user accounts").add_subparsers(dest="action", required=True)
    create = users.add_parser("create", help="create a user; the password is read from stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--username", required=True)
    create.add_argument("--admin", action="store_true", help="give the admin role")
    create.add_argument("--generate-password", action="store_true", help="generate a random password and print it")
    create.set_defaults(handler=_users_create)
    imp = users.add_parser(
        "import-authenticator", help="import users from a streamlit-authenticator config.yaml (hashed passwords only)"
    )
    imp.add_argument("file", help="path of the YAML file")
    imp.set_defaults(handler=_users_import_authenticator)


# plaid ------------------------------------------------------------------------------------
def _plaid_link_sandbox(args: argparse.Namespace) -> int:
    c = container()
    institution = args.institution or default_institution(c)
    item_id = banking.link_sandbox(c, email=args.email, institution_id=institution, username=args.username)
    print(item_id)
    print(f"linked {institution} for {args.email}", file=sys.stderr)
    return 0


def _plaid_reset_login(args: argparse.Namespace) -> int:
    item = uuid.UUID(args.item) if args.item else None
    print(banking.reset_login_sandbox(container(), email=args.email, institution_id=args.institution, item_id=item))
    return 0


def _plaid_fire_webhook(args: argparse.Namespace) -> int:
    item = uuid.UUID(args.item) if args.item else None
    c = container()
    print(
        banking.fire_webhook_sandbox(c, email=args.email, code=args.code, institution_id=args.institution, item_id=item)
    )
    return 0


def _item_id(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an item id (a UUID, as link-sandbox prints)") from None
    return value


_INSTITUTION_HELP = "institution id (default: ins_demo_1 with PLAID_ENV=demo, ins_109508 with PLAID_ENV=sandbox)"


@command
def _plaid(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plaid = sub.add_parser("plaid", help="linked banks").add_subparsers(dest="action", required=True)
    link = plaid.add_parser(
        "link-sandbox", help="link a bank for a user without Plaid Link (demo or sandbox mode); prints the item id"
    )
    link.add_argument("--email", required=True, help="the user's email address")
    link.add_argument("--institution", default=None, help=_INSTITUTION_HELP)
    link.add_argument("--username", default=None, help="sandbox username that picks the bank's behaviour")
    link.set_defaults(handler=_plaid_link_sandbox)
    reset = plaid.add_parser(
        "reset-login", help="force a user's bank into 'needs sign-in again' (demo or sandbox), to try the repair flow"
    )
    reset.add_argument("--email", required=True, help="the user's email address")
    reset.add_argument("--institution", default=None, help=_INSTITUTION_HELP)
    reset.add_argument(
        "--item", type=_item_id, default=None, help="the item id (as link-sandbox prints) when the user has several"
    )
    reset.set_defaults(handler=_plaid_reset_login)
    fire = plaid.add_parser(
        "fire-webhook",
        help="have the bank send a webhook for a user's bank (demo or sandbox): NEW_ACCOUNTS_AVAILABLE opens an "
        "account to share through Repair, SYNC_UPDATES_AVAILABLE makes the bot sync",
    )
    fire.add_argument("--email", required=True, help="the user's email address")
    fire.add_argument("--code", required=True, choices=banking.FIRABLE_WEBHOOKS, help="the webhook code")
    fire.add_argument("--institution", default=None, help=_INSTITUTION_HELP)
    fire.add_argument(
        "--item", type=_item_id, default=None, help="the item id (as link-sandbox prints) when the user has several"
    )
    fire.set_defaults(handler=_plaid_fire_webhook)


# sync bot: sync, worker, export (services/sync_cli.py) -----------------------------------------
def _sync_bot(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.sync_cli import register_export, register_sync

    register_sync(sub)
    register_export(sub)


command(_sync_bot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.cli", description="finsync command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging("WARNING")  # stderr stays one clear line per failure; FINSYNC_LOG_LEVEL=INFO shows more
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FinsyncError as exc:
        print(f"finsync: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_outage(exc):  # a bug: its traceback is what its fixer needs
            raise
        print(
            f"finsync: the database stopped answering ({outage_reason(exc)}): check that it is running and run the "
            "command again",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback, and not silence
        print(interrupted_line(args), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
