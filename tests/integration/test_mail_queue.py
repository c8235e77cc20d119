"""An SMTP outage delays mail and never loses it (security bar, faults: "SMTP down"); mail past its use is dropped."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from models import AuditEvent, QueuedMail
from services import admin, audit, auth, mail_queue
from services.container import Container, build_container
from services.db import unit_of_work
from services.errors import PermissionDenied
from services.mailer import MemoryMailer
from services.scheduler import Scheduler
from tests.factories import FakeClock, make_settings
from tests.integration.auth_support import PASSWORD, fast_hashing, link_token, make_admin, make_user  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")


class MailServerDown(ConnectionRefusedError):
    """What smtplib raises when nothing listens on the mail server's port."""


class ProcessKilled(BaseException):
    """Stands for SIGKILL while a mail is handed over: no ``except Exception`` gets to run."""


@dataclass
class FlakyMailer(MemoryMailer):
    """A mail server the test takes down (refusing) or kills mid-send, and brings back."""

    down: bool = False
    kill_next: bool = False

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
        if self.kill_next:
            self.kill_next = False
            raise ProcessKilled
        if self.down:
            raise MailServerDown("Connection refused")
        super().send(to, subject, body, message_id=message_id)


@pytest.fixture
def mailer() -> FlakyMailer:
    return FlakyMailer()


def queued(c: Container) -> list[QueuedMail]:
    with unit_of_work(c.engine) as session:
        return list(session.execute(select(QueuedMail)).scalars())


def subjects(sent: list[EmailMessage]) -> list[str]:
    return [str(m["Subject"]) for m in sent]


def test_a_verification_email_waits_out_an_smtp_outage_then_works(
    container: Container, mailer: FlakyMailer, clock: FakeClock
) -> None:
    mailer.down = True
    answer = auth.register(container, email="alice@example.com", username="alice", password=PASSWORD)
    assert answer is not None  # the page shows its usual "check your email", no error
    (row,) = queued(container)
    assert mailer.sent == [] and row.kind == "verify" and row.attempts == 1 and row.last_error == "MailServerDown"
    assert b"alice@example.com" not in row.message_enc and b"verify=" not in row.message_enc  # encrypted at rest

    mailer.down = False
    scheduler = Scheduler(container)
    scheduler.run_once()
    assert mailer.sent == []  # the retry waits its minute
    clock.advance(seconds=61)
    scheduler.run_once()
    assert subjects(mailer.sent) == ["Verify your email for finsync"] and queued(container) == []
    user = auth.verify_email(container, link_token(mailer, "verify"))
    assert user.email_verified


def test_retries_back_off_and_a_reset_link_past_its_30_minutes_is_dropped_not_sent(
    container: Container, mailer: FlakyMailer, clock: FakeClock
) -> None:
    make_user(container)
    mailer.down = True
    auth.request_password_reset(container, email="alice@example.com")
    waits = []
    for _ in range(5):
        (row,) = queued(container)
        waits.append(round((row.next_attempt_at - clock()).total_seconds() / 60))
        clock.now = row.next_attempt_at
        mailer.down = len(waits) < 5  # the server is back for the fifth try, 31 minutes after the request
        assert mail_queue.send(container) == 0
    assert waits == [1, 2, 4, 8, 16]  # minutes: 1, doubling (capped at 30)
    assert mailer.sent == [] and queued(container) == []
    with unit_of_work(container.engine) as session:
        (event,) = session.execute(select(AuditEvent).where(AuditEvent.event == "mail_given_up")).scalars()
    assert event.detail.startswith("reset mail; 5 attempt(s); past its use") and "reset=" not in event.detail


def test_a_process_killed_while_sending_leaves_the_mail_to_be_sent_once_after_the_lease(
    container: Container, mailer: FlakyMailer, clock: FakeClock
) -> None:
    make_user(container)
    mailer.down = True
    auth.request_password_reset(container, email="alice@example.com")
    mailer.down, mailer.kill_next = False, True
    clock.advance(minutes=1)
    with pytest.raises(ProcessKilled):
        mail_queue.send(container)
    clock.advance(minutes=4)
    assert mail_queue.send(container) == 0  # leased by the dead process: another must not send it yet
    clock.advance(minutes=1, seconds=1)
    assert mail_queue.send(container) == 1 and mail_queue.send(container) == 0
    assert subjects(mailer.sent) == ["Reset your finsync password"]
    assert auth.reset_password(container, token=link_token(mailer, "reset"), new_password=PASSWORD + " again") is None


def test_deleting_an_account_drops_its_waiting_mail_but_the_goodbye_still_goes(
    container: Container, mailer: FlakyMailer, clock: FakeClock
) -> None:
    alice = make_user(container)
    mailer.down = True
    auth.request_password_reset(container, email="alice@example.com")
    auth.delete_account(container, alice.id, password=PASSWORD, remove_bank_items=lambda _: None)
    (row,) = queued(container)
    assert row.user_id is None and row.attempts == 1  # the reset mail went with the account

    mailer.down = False
    clock.advance(minutes=2)
    Scheduler(container).run_once()
    assert subjects(mailer.sent) == ["finsync: your account was deleted"]
    said = mailer.sent[0].get_content()  # no advice to reset a password that is gone with the account
    assert "reset your password" not in said and "contact your finsync administrator" in said


def test_a_flow_that_fails_queues_nothing(
    container: Container, mailer: FlakyMailer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail is queued in the flow's own transaction: a change that did not happen is not announced."""
    carol = make_user(container, "carol")
    real = audit.record

    def fails_after_the_link_is_queued(session: object, **kw: object) -> None:
        if kw["event"] == "email_change_requested":
            raise RuntimeError("the database went away")
        real(session, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(audit, "record", fails_after_the_link_is_queued)
    with pytest.raises(RuntimeError):
        auth.request_email_change(container, carol.id, password=PASSWORD, new_email="new@example.com")
    assert queued(container) == [] and mailer.sent == []


def test_admins_see_what_waits_without_the_message(container: Container, mailer: FlakyMailer) -> None:
    root = make_admin(container)
    make_user(container)
    mailer.down = True
    auth.request_password_reset(container, email="alice@example.com")
    with pytest.raises(PermissionDenied):
        admin.waiting_mail(container, make_user(container, "bob").id)
    (view,) = admin.waiting_mail(container, root.id)
    assert (view.kind, view.attempts, view.last_error) == ("reset", 1, "MailServerDown")
    assert not {"to", "subject", "body", "message_enc"} & set(vars(view))  # the list never carries the message


class SlowMailServer(MemoryMailer):
    """An SMTP server that takes its time: it accepts nothing until the test opens the gate (or times out)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
        if not self.gate.wait(60):  # never sends unopened: a stuck test fails instead of passing late
            raise TimeoutError("the test never opened the gate")
        super().send(to, subject, body, message_id=message_id)


def test_with_smtp_a_reset_request_answers_without_waiting_for_the_mail_server(
    container: Container, db_url: str, tmp_path: Path
) -> None:
    """Security bar B3: the answer's timing must not tell that a mail went out (so that the account exists)."""
    settings = make_settings(tmp_path / "smtp", db_url, SMTP_URL="smtp://mail.example.test:587")
    assert build_container(settings, engine=container.engine, check=False).background_mail  # on with SMTP
    server = SlowMailServer()
    c = replace(container, mailer=server, background_mail=True)
    make_user(c)
    auth.request_password_reset(c, email="alice@example.com")
    assert server.sent == []  # answered while the server still holds the mail (inline, this would wait 60 s)
    assert not mail_queue.wait_handed_off(0)  # ... on the sender thread, not dropped
    server.gate.set()
    # Wait for the thread to finish with the mail, not for it to reach the server: the row goes in a second
    # transaction after the server took it, and polling ``server.sent`` saw it still queued under load.
    assert mail_queue.wait_handed_off(60)
    assert subjects(server.sent) == ["Reset your finsync password"] and queued(c) == []
