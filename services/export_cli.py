"""CLI command ``export transactions --email E --format csv --out FILE [--from YYYY-MM-DD] [--to YYYY-MM-DD]``
(a contract for cron and operators; keep the names)."""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

from services.container import command_container
from services.errors import InputError
from services.export import export_csv
from services.sync import resolve_user


def _day(text: str) -> date:
    """A YYYY-MM-DD date (``fromisoformat`` alone also reads "20261201" and week dates such as "2026-W01")."""
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-01-31")


def _export(args: argparse.Namespace) -> int:
    if args.format != "csv":
        raise InputError("Only --format csv is supported.")
    if args.start and args.end and args.start > args.end:
        raise InputError("--from is after --to.")
    c = command_container()
    count = export_csv(c, resolve_user(c, args.email), Path(args.out), args.start, args.end)
    print(f"wrote {count} transaction(s) to {args.out}")
    return 0


def register_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``export transactions``."""
    export = sub.add_parser("export", help="export data").add_subparsers(dest="what", required=True)
    tx = export.add_parser("transactions", help="a user's transactions as CSV")
    tx.add_argument("--email", required=True, help="the user's email address")
    tx.add_argument("--format", default="csv", choices=["csv"])
    tx.add_argument("--out", required=True, metavar="FILE", help="file to write (replaced when it exists)")
    tx.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first date, inclusive")
    tx.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last date, inclusive")
    tx.set_defaults(
        handler=_export,
        on_interrupt="{out} is as it was or the whole export, never half written; run the same command again",
    )
