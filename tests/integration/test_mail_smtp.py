"""The SMTP mailer against a mail server on loopback: what the server took is never sent again."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from models import AuditEvent, QueuedMail
from services import mail_queue
from services.container import Container
from services.db import unit_of_work
from services.mailer import SmtpMailer
from services.notices import Mail
from tests.factories import FakeClock


class _Session(socketserver.StreamRequestHandler):
    """Just enough SMTP: takes every message (but for a ``bounce@`` mailbox), then answers QUIT with ``quit_reply``."""

    server: _MailServer

    def _say(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self._say("220 loopback ESMTP")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            refusal = next((why for who, why in self.server.refusals.items() if who in line), None)
            if verb == "RCPT" and refusal:
                self._say(refusal)
            elif verb in ("EHLO", "HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 go ahead")
                body = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body += chunk
                self.server.taken.append(body)
                self._say("250 queued")
            elif verb == "QUIT":
                self._say(self.server.quit_reply)
                return
            else:
                self._say("502 not here")


class _MailServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, quit_reply: str) -> None:
        super().__init__(("127.0.0.1", 0), _Session)
        self.taken: list[bytes] = []
        self.quit_reply = quit_reply
        self.refusals = {b"bounce@": "550 5.1.1 no such mailbox", b"relay@": "554 5.7.1 Relay access denied"}


@pytest.fixture
def grumpy_server() -> Iterator[_MailServer]:
    """A mail server that takes each message and then answers QUIT with an error (some do, or a proxy does)."""
    server = _MailServer("554 5.3.0 closing with an error")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _sending_to(container: Container, server: _MailServer) -> Container:
    """The container with a real SMTP mailer pointed at ``server``."""
    url = f"smtp://127.0.0.1:{server.server_address[1]}"
    return replace(container, mailer=SmtpMailer(url, "finsync <no-reply@finsync.local>", 5.0))


def _refused_then_ada(c: Container, clock: FakeClock, refused: str) -> None:
    """Queue a mail the server refuses, then (a second later, so it is tried after it) one for ada it takes."""
    with unit_of_work(c.engine) as session:
        mail_queue.enqueue(session, c, Mail(refused, "finsync: digest", "GUM", "notification"))
    clock.advance(seconds=1)
    with unit_of_work(c.engine) as session:
        mail_queue.enqueue(session, c, Mail("ada@example.com", "finsync: digest", "GUM", "notification"))


def test_a_mail_the_server_took_is_not_sent_again_when_its_goodbye_fails(
    container: Container, grumpy_server: _MailServer, clock: FakeClock
) -> None:
    c = _sending_to(container, grumpy_server)
    with unit_of_work(c.engine) as session:
        mail_queue.enqueue(session, c, Mail("ada@example.com", "finsync: 1 new transaction", "GUM", "notification"))
    assert mail_queue.send(c) == 1  # the server took it: sent, whatever it said to QUIT
    assert len(grumpy_server.taken) == 1
    clock.advance(hours=1)  # every retry would be due by now
    assert mail_queue.send(c) == 0
    assert len(grumpy_server.taken) == 1  # once


def test_a_mail_the_server_refuses_for_good_is_given_up_and_the_rest_still_go(
    container: Container, grumpy_server: _MailServer, clock: FakeClock
) -> None:
    """A mailbox that does not exist (550) will not exist on the next try: that mail is given up at once, audited, and
    does not hold back everyone else's mail (one failure ends a pass, as when the server is down)."""
    c = _sending_to(container, grumpy_server)
    _refused_then_ada(c, clock, "bounce@example.com")
    assert mail_queue.send(c) == 1  # the refused one first, then ada's, in one pass
    assert len(grumpy_server.taken) == 1
    with unit_of_work(c.engine) as session:
        assert session.execute(select(QueuedMail)).first() is None  # nothing left to retry
        (event,) = session.execute(select(AuditEvent).where(AuditEvent.event == "mail_given_up")).scalars()
        detail = event.detail or ""
        assert "refused it for good (SMTPRecipientsRefused 550)" in detail and "bounce" not in detail


def test_a_mail_refused_by_the_servers_policy_waits_for_it_to_be_fixed_and_does_not_hold_back_the_rest(
    container: Container, grumpy_server: _MailServer, clock: FakeClock
) -> None:
    """A relay refusal (5.7.1) is the server's set-up, not the mailbox: it would refuse everyone's mail alike, so the
    mail is kept and tried again (an operator can fix the server before it expires), and the next mail still goes."""
    c = _sending_to(container, grumpy_server)
    _refused_then_ada(c, clock, "relay@example.com")
    assert mail_queue.send(c) == 1  # ada's went in the same pass
    with unit_of_work(c.engine) as session:
        (waiting,) = session.execute(select(QueuedMail)).scalars()
        assert waiting.attempts == 1 and waiting.next_attempt_at > clock()
        assert session.execute(select(AuditEvent).where(AuditEvent.event == "mail_given_up")).first() is None
    del grumpy_server.refusals[b"relay@"]  # the operator fixed the server
    clock.advance(minutes=2)
    assert mail_queue.send(c) == 1
    assert len(grumpy_server.taken) == 2
    with unit_of_work(c.engine) as session:
        assert session.execute(select(QueuedMail)).first() is None
