"""The emails of the account flows: plain text, links from settings.base_url, never a password."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services import tokens
from services.container import Container


@dataclass(frozen=True)
class Mail:
    """One message for the mail queue; ``lifetime`` is how long sending it still makes sense."""

    to: str
    subject: str
    body: str
    kind: str
    lifetime: timedelta = timedelta(hours=24)


def _footer() -> str:
    return "\n\nIf this was not you, reset your password and contact your finsync administrator.\n"


def verify_email(c: Container, to: str, token: str, *, change: bool = False) -> Mail:
    """The link that confirms an address: a new account's, or (``change``) the new address of an existing one, whose
    page then speaks of a change (``&change=1`` picks its words; the token alone decides what happens)."""
    link = f"{c.settings.base_url}/?verify={token}{'&change=1' if change else ''}"
    what = "make this your finsync account's email address" if change else "verify your email address for finsync"
    body = f"Hello,\n\nOpen this link within 48 hours to {what}:\n\n{link}\n\nIt works once."
    # Someone may have typed another person's address: its owner should not confirm it for them.
    if change:
        body += (
            "\n\nIf you did not ask to use this address for a finsync account, do not open the link: ignore this "
            "email and nothing changes."
        )
    else:
        body += (
            "\n\nIf you did not create a finsync account, do not open the link: ignore this email, or use "
            "“Forgot your password?” on the sign-in page to take the account over."
        )
    ttl = tokens.TTL[tokens.EMAIL_CHANGE if change else tokens.VERIFY]
    return Mail(to, "Verify your email for finsync", body + "\n", "verify", ttl)


def reset(c: Container, to: str, token: str) -> Mail:
    link = f"{c.settings.base_url}/?reset={token}"
    body = (
        "Hello,\n\nSomeone asked to reset the password of your finsync account.\n"
        f"Open this link within 30 minutes to choose a new password:\n\n{link}\n\n"
        "It works once. If you did not ask for this, ignore this email: your password stays as it is.\n"
    )
    return Mail(to, "Reset your finsync password", body, "reset", tokens.TTL[tokens.RESET])


def registration_attempt(c: Container, to: str, at: datetime) -> Mail:
    """To the owner of an address someone tried to register again: what to do, and no link that changes anything."""
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Hello,\n\nSomeone tried to create a finsync account with this email address ({when}). It already "
        "has an account, so no new account was made and nothing was changed.\n\n"
        f"If it was you, sign in at {c.settings.base_url} with your username or this address. If you do not "
        "remember your password, choose “Forgot your password?” on the sign-in page.\n"
        "If it was not you, you can ignore this email.\n"
    )
    return Mail(to, "finsync: someone tried to register with your email address", body, "registration_attempt")


def email_change_attempt(c: Container, to: str, at: datetime) -> Mail:
    """To the owner of an address another account tried to move onto: nothing changed, and no link."""
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Hello,\n\nSomeone signed in to another finsync account tried to change its email address to this one "
        f"({when}). This address already has an account, so nothing was changed: your account is as it was.\n\n"
        f"You can ignore this email. To check your account, sign in at {c.settings.base_url}.\n"
    )
    return Mail(to, "finsync: someone tried to use your email address", body, "email_change_attempt")


def notice(to: str, subject: str, what: str, at: datetime, *, advice: str | None = None) -> Mail:
    """A security notice: what happened and when (UTC), then what to do if it was not you (``advice``: other words
    than resetting the password, for a notice that leaves none to reset)."""
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    footer = f"\n\n{advice}\n" if advice else _footer()
    return Mail(to, f"finsync: {subject}", f"Hello,\n\n{what} ({when}).{footer}", "notice")


def locked(to: str, until: datetime, *, for_good: bool = False) -> Mail:
    when = until.strftime("%Y-%m-%d %H:%M UTC")
    pause = (
        "so sign-in is stopped until you reset your password (or an administrator unlocks the account)"
        if for_good
        else f"so sign-in is paused until {when}"
    )
    body = (
        f"Hello,\n\nThere were {'100 failed sign-in attempts in a row' if for_good else 'several failed sign-in attempts'}"
        f" on your finsync account, {pause}.\nYou can clear it at any time by resetting your password."
        f"{_footer()}"
    )
    return Mail(to, "finsync: sign-in paused after failed attempts", body, "locked")
