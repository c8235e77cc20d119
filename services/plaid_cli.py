"""``plaid link-sandbox``, ``plaid reset-login`` and ``plaid fire-webhook``: linked banks in demo or sandbox."""

from __future__ import annotations

import argparse
import sys
import uuid

from services import banking
from services.banking_sandbox import default_institution
from services.container import command_container


def _plaid_link_sandbox(args: argparse.Namespace) -> int:
    c = command_container()
    institution = args.institution or default_institution(c)
    item_id = banking.link_sandbox(c, email=args.email, institution_id=institution, username=args.username)
    print(item_id)
    print(f"linked {institution} for {args.email}", file=sys.stderr)
    return 0


def _plaid_reset_login(args: argparse.Namespace) -> int:
    item = uuid.UUID(args.item) if args.item else None
    print(
        banking.reset_login_sandbox(
            command_container(), email=args.email, institution_id=args.institution, item_id=item
        )
    )
    return 0


def _plaid_fire_webhook(args: argparse.Namespace) -> int:
    item = uuid.UUID(args.item) if args.item else None
    c = command_container()
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


def register_plaid(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
