"""Outgoing mail: SMTP when SMTP_URL is set, otherwise `.eml` files in the data dir's outbox."""

from __future__ import annotations

import email.policy
import hashlib
import os
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from services.errors import InputError

_HEADER_UNSAFE = re.compile(r"[\r\n\x00]")


class Mailer(Protocol):
    """Anything that can send one plain-text message."""

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None: ...


def sender_problem(sender: str) -> str | None:
    """What is wrong with a From line (FINSYNC_MAIL_FROM), or None: one address, ``name <local@domain>`` or bare.

    Checked at start-up: a From the email package cannot read raised at every send (the mail waited and was retried
    until it expired), and one it reads with a guess ("finsync no-reply@example.com") gives SMTP a wrong sender.
    """
    if _HEADER_UNSAFE.search(sender):
        return "cannot contain line breaks"
    try:
        header = email.policy.default.header_factory("From", sender)
        addresses, defects = header.addresses, header.defects
    except Exception:  # the parser raises IndexError and others on some malformed lines
        addresses, defects = (), ("unreadable",)
    if len(addresses) != 1 or defects or not addresses[0].username or not addresses[0].domain:
        return "must be one email address, such as no-reply@example.com or finsync <no-reply@example.com>"
    return None


def message_id_for(key: uuid.UUID) -> str:
    """The Message-ID of every delivery of one queued mail: a retry of a mail already handed over (the database could
    not cross it off) is the same message, which the recipient's mail system keeps once (RFC 5322 section 3.6.4)."""
    return f"<{key.hex}@finsync.local>"


def build_message(sender: str, to: str, subject: str, body: str, message_id: str | None = None) -> EmailMessage:
    """A plain-text message; CR/LF in any header is refused (no header injection)."""
    for name, value in (("recipient", to), ("subject", subject), ("sender", sender)):
        if _HEADER_UNSAFE.search(value):
            raise InputError(f"The {name} of an email cannot contain line breaks.")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain="finsync.local")
    message.set_content(body)
    return message


@dataclass
class OutboxMailer:
    """Writes each message as an `.eml` file (mode 0600) in ``folder``: the default with no SMTP."""

    folder: Path
    sender: str

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
        message = build_message(self.sender, to, subject, body, message_id)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # One file per message: a queued mail written again (its first write was never crossed off) replaces its own
        # file instead of adding a copy; written aside first, so a process killed mid-write leaves no half message.
        key = hashlib.sha256(message_id.encode()).hexdigest()[:32] if message_id else uuid.uuid4().hex
        path, part = self.folder / f"{key}.eml", self.folder / f"{key}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(bytes(message))
        os.replace(part, path)


@dataclass
class SmtpMailer:
    """Sends through ``smtp://``, ``smtp+starttls://`` or ``smtps://`` URLs."""

    url: str
    sender: str
    timeout: float = 15.0

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
        message = build_message(self.sender, to, subject, body, message_id)
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, parts.port or 587, timeout=self.timeout)
        try:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
        except BaseException:
            client.close()
            raise
        _goodbye(client)


def _goodbye(client: smtplib.SMTP) -> None:
    """QUIT once the server took the message: an error now cannot unsend it, so it is no failure (a retry would
    mail it twice; ``with client`` raises on any reply to QUIT but 221)."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


@dataclass
class MemoryMailer:
    """Keeps messages in a list: for tests, where there is no SMTP server to reach."""

    sent: list[EmailMessage] = field(default_factory=list)
    sender: str = "finsync <no-reply@finsync.local>"

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
        self.sent.append(build_message(self.sender, to, subject, body, message_id))


# Enhanced status codes (RFC 3463) that are about this one message: its mailbox or domain (5.1.x), its size
# (5.2.3, 5.3.4) or its content (5.6.x). A policy refusal (5.7.x: relay denied, not authenticated) is the server's
# set-up, not the message: every mail would be refused alike, and an operator can fix it before they expire.
_THIS_MESSAGE = re.compile(rb"^\s*5\.(1\.\d+|2\.3|3\.4|6\.\d+)\b")


def _replies(exc: Exception) -> list[tuple[int, bytes]]:
    """The server's refusals of this one message (its recipient or its data), if that is what ``exc`` is."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies: list[tuple[int, bytes | str]] = list(exc.recipients.values())
    elif isinstance(exc, smtplib.SMTPDataError):
        replies = [(exc.smtp_code, exc.smtp_error)]
    else:
        return []
    return [(code, text if isinstance(text, bytes) else str(text).encode()) for code, text in replies]


def refused_for_good(exc: Exception) -> str | None:
    """Why the server will never take this message (a 5xx whose enhanced code is about its mailbox, size or content;
    or it cannot be written at all), else None. The words name no address."""
    if isinstance(exc, InputError):
        return "it cannot be written as an email"
    replies = _replies(exc)
    if replies and all(500 <= code < 600 and _THIS_MESSAGE.match(text) for code, text in replies):
        return f"the mail server refused it for good ({type(exc).__name__} {replies[0][0]})"
    return None


def refused_this_one(exc: Exception) -> bool:
    """The server is up and answered about this message alone: the mail behind it can still go."""
    return bool(_replies(exc))


def make_mailer(smtp_url: str | None, outbox: Path, sender: str) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url, sender)
    return OutboxMailer(outbox, sender)
