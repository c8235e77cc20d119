"""``users create`` and ``users import-authenticator``: accounts made from the command line."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from services import audit
from services.container import command_container
from services.db import unit_of_work
from services.errors import FinsyncError, InputError
from services.users import create_user

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


def _users_create(args: argparse.Namespace) -> int:
    generated = secrets.token_urlsafe(18) if args.generate_password else None
    password = generated or read_password()  # first: a password that is not text stops before anything is made
    c = command_container()
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

    report = import_authenticator(command_container(), Path(args.file))
    for name in report.imported:
        print(f"imported {name} (unverified; the hash is upgraded at the first sign-in)")
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}")
    print(f"{len(report.imported)} imported, {len(report.skipped)} skipped")
    return 0


def register_users(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
