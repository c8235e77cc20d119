"""finsync's command line: ``python -m services.cli COMMAND``; every command has ``--help``.

Each group of commands lives in a module of its own: db_cli, keys_cli, users_cli, plaid_cli, sync_cli and export_cli.

Exit codes: 0 success, 1 a requested operation failed, 2 bad input or configuration, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from services.db import is_outage, outage_reason
from services.db_cli import register_db
from services.errors import FinsyncError
from services.keys_cli import register_keys
from services.logs import configure_logging
from services.plaid_cli import register_plaid
from services.users_cli import register_users

Handler = Callable[[argparse.Namespace], int]


def interrupted_line(args: argparse.Namespace) -> str:
    """What an operator who pressed Ctrl-C needs to know: a command sets ``on_interrupt`` (formatted with its own
    arguments) to say what its work keeps and how to carry on; the others are just "interrupted"."""
    said = getattr(args, "on_interrupt", "")
    return "finsync: interrupted" + (f": {said.format(**vars(args))}" if said else "")


# sync bot: sync, worker, export (services/sync_cli.py, services/export_cli.py) -------------------
def _sync_bot(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.export_cli import register_export
    from services.sync_cli import register_sync

    register_sync(sub)
    register_export(sub)


COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    register_db,
    register_keys,
    register_users,
    register_plaid,
    _sync_bot,  # in --help's order
]


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
