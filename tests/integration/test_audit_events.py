"""Every account event is recorded by its flow, about the right account, without a secret, and shown to that account.

One row of ``FLOWS`` per audit event of the sign-in and account flows (security bar D6, ASVS 16.3.1, 16.2.5):
the flow runs, and the rows it adds after ``Run.mark()`` must include its event on the account it is about,
with no password, token, code or key in the row or its log line, and Settings → Activity
(``audit.list_events``) must list it for that account.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from models import AuditEvent
from services import admin, audit, auth, sessions, totp
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError, InvalidCredentials
from services.mailer import MemoryMailer
from tests.factories import FakeClock
from tests.integration.auth_support import (  # noqa: F401
    IP,
    OTHER_PASSWORD,
    PASSWORD,
    code_at,
    enable_totp,
    fast_hashing,
    link_token,
    make_admin,
    make_user,
    registered,
    sign_in,
)

pytestmark = pytest.mark.usefixtures("fast_hashing")
WRONG = "wrong horse battery staple 99"


@dataclass
class Run:
    """One flow's world: the container, its clock and mailer, the secrets it handled and the rows before the action."""

    c: Container
    clock: FakeClock
    mailer: MemoryMailer
    secrets: set[str] = field(default_factory=lambda: {PASSWORD, OTHER_PASSWORD, WRONG})
    before: set[uuid.UUID] | None = None

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        return value

    def mark(self) -> None:
        """What happens from here on is the action under test; what came before was setup."""
        self.before = set(_rows(self.c))

    def totp(self, user_id: uuid.UUID) -> str:
        """Two-factor on for ``user_id``; returns the secret (kept as a secret), clock moved past the code used."""
        key = self.secret(enable_totp(self.c, user_id))
        self.clock.advance(seconds=30)
        return key

    def code(self, key: str) -> str:
        return self.secret(code_at(key, self.clock()))

    def challenge(self, login: str = "alice") -> str:
        step = auth.begin_sign_in(self.c, login=login, password=PASSWORD, ip=IP)
        assert step.kind == "totp" and step.challenge
        return self.secret(step.challenge)


def _rows(c: Container) -> dict[uuid.UUID, AuditEvent]:
    with unit_of_work(c.engine) as session:
        rows = session.execute(select(AuditEvent)).scalars().all()
        session.expunge_all()
    return {r.id: r for r in rows}


# --- the flows: each returns the id of the account its event is about ------------------------------------
Flow = Callable[[Run], uuid.UUID]


def _registered(r: Run) -> uuid.UUID:
    r.mark()
    auth.register(r.c, email="bob@example.com", username="bob", password=PASSWORD, ip=IP)
    r.secret(link_token(r.mailer, "verify"))
    return registered(r.c, "bob@example.com").id


def _registration_email_taken(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    auth.register(r.c, email="alice@example.com", username="mallory", password=OTHER_PASSWORD, ip=IP)
    return alice.id


def _email_verified(r: Run) -> uuid.UUID:
    auth.register(r.c, email="bob@example.com", username="bob", password=PASSWORD)
    token = r.secret(link_token(r.mailer, "verify"))
    r.mark()
    return auth.verify_email(r.c, token, ip=IP).id


def _sign_in_ok(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    r.secret(sign_in(r.c))
    return alice.id


def _sign_in_failed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    with pytest.raises(InvalidCredentials):
        auth.begin_sign_in(r.c, login="alice", password=WRONG, ip=IP)
    return alice.id


def _account_locked(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    for attempt in range(5):
        if attempt == 4:
            r.mark()
        with pytest.raises(InvalidCredentials):
            auth.begin_sign_in(r.c, login="alice", password=WRONG, ip=IP)
    return alice.id


def _sign_out(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    token = r.secret(sign_in(r.c))
    r.mark()
    sessions.sign_out(r.c, token)
    return alice.id


def _session_revoked(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    here = r.secret(sign_in(r.c))
    r.secret(sign_in(r.c))
    (other,) = [s for s in sessions.list_sessions(r.c, alice.id, here) if not s.current]
    r.mark()
    sessions.revoke_session(r.c, alice.id, other.id, ip=IP)
    return alice.id


def _password_changed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    auth.change_password(r.c, alice.id, current_password=PASSWORD, new_password=OTHER_PASSWORD, ip=IP)
    return alice.id


def _password_change_failed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    with pytest.raises(InputError):
        auth.change_password(r.c, alice.id, current_password=WRONG, new_password=OTHER_PASSWORD, ip=IP)
    return alice.id


def _reauth_failed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    with pytest.raises(InputError):
        auth.request_email_change(r.c, alice.id, password=WRONG, new_email="new@example.com", ip=IP)
    return alice.id


def _password_reset_requested(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    auth.request_password_reset(r.c, email="alice@example.com", ip=IP)
    r.secret(link_token(r.mailer, "reset"))
    return alice.id


def _password_reset_done(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    auth.request_password_reset(r.c, email="alice@example.com")
    token = r.secret(link_token(r.mailer, "reset"))
    r.mark()
    auth.reset_password(r.c, token=token, new_password=OTHER_PASSWORD, ip=IP)
    return alice.id


def _email_change_requested(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    auth.request_email_change(r.c, alice.id, password=PASSWORD, new_email="new@example.com", ip=IP)
    r.secret(link_token(r.mailer, "verify", index=-2))
    return alice.id


def _email_change_email_taken(r: Run) -> uuid.UUID:
    alice, bob = make_user(r.c), make_user(r.c, "bob")
    r.mark()
    auth.request_email_change(r.c, alice.id, password=PASSWORD, new_email="bob@example.com", ip=IP)
    return bob.id


def _email_change_cancelled(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    auth.request_email_change(r.c, alice.id, password=PASSWORD, new_email="new@example.com")
    r.secret(link_token(r.mailer, "verify", index=-2))
    r.mark()
    auth.cancel_email_change(r.c, alice.id, ip=IP)
    return alice.id


def _email_changed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    auth.request_email_change(r.c, alice.id, password=PASSWORD, new_email="new@example.com")
    token = r.secret(link_token(r.mailer, "verify", index=-2))
    r.mark()
    auth.verify_email(r.c, token, ip=IP)
    return alice.id


def _totp_enabled(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    key = r.secret(totp.start_totp_enrolment(r.c, alice.id).secret)
    r.mark()
    codes = totp.confirm_totp(r.c, alice.id, code=r.code(key), password=PASSWORD, ip=IP)
    r.secrets.update(codes)
    return alice.id


def _totp_disabled(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    key = r.totp(alice.id)
    r.mark()
    totp.disable_totp(r.c, alice.id, password=PASSWORD, code=r.code(key), ip=IP)
    return alice.id


def _totp_failed(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.totp(alice.id)
    challenge = r.challenge()
    r.mark()
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(r.c, challenge=challenge, code=r.secret("000000"), ip=IP)
    return alice.id


def _totp_replay(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    key = r.totp(alice.id)
    code = r.code(key)
    r.secret(auth.complete_totp(r.c, challenge=r.challenge(), code=code, ip=IP))
    challenge = r.challenge()
    r.mark()
    with pytest.raises(InvalidCredentials):
        auth.complete_totp(r.c, challenge=challenge, code=code, ip=IP)
    return alice.id


def _recovery_codes_regenerated(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    key = r.totp(alice.id)
    r.mark()
    r.secrets.update(totp.regenerate_recovery_codes(r.c, alice.id, password=PASSWORD, code=r.code(key), ip=IP))
    return alice.id


def _recovery_code_used(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    key = r.totp(alice.id)
    codes = totp.regenerate_recovery_codes(r.c, alice.id, password=PASSWORD, code=r.code(key))
    r.secrets.update(codes)
    challenge = r.challenge()
    r.mark()
    r.secret(auth.complete_totp(r.c, challenge=challenge, code=codes[0], ip=IP))
    return alice.id


def _admin(act: Callable[[Container, uuid.UUID, uuid.UUID], object], *, disabled_first: bool = False) -> Flow:
    def flow(r: Run) -> uuid.UUID:
        root, alice = make_admin(r.c), make_user(r.c)
        if disabled_first:
            admin.set_disabled(r.c, root.id, alice.id, True)
        r.mark()
        act(r.c, root.id, alice.id)
        return alice.id

    return flow


def _account_deleted(r: Run) -> uuid.UUID:
    alice = make_user(r.c)
    r.mark()
    auth.delete_account(r.c, alice.id, password=PASSWORD, remove_bank_items=lambda _: None)
    return alice.id


FLOWS: dict[str, Flow] = {
    "registered": _registered,
    "registration_email_taken": _registration_email_taken,
    "email_verified": _email_verified,
    "sign_in_ok": _sign_in_ok,
    "sign_in_failed": _sign_in_failed,
    "account_locked": _account_locked,
    "sign_out": _sign_out,
    "session_revoked": _session_revoked,
    "password_changed": _password_changed,
    "password_change_failed": _password_change_failed,
    "reauth_failed": _reauth_failed,
    "password_reset_requested": _password_reset_requested,
    "password_reset_done": _password_reset_done,
    "email_change_requested": _email_change_requested,
    "email_change_email_taken": _email_change_email_taken,
    "email_change_cancelled": _email_change_cancelled,
    "email_changed": _email_changed,
    "totp_enabled": _totp_enabled,
    "totp_disabled": _totp_disabled,
    "totp_failed": _totp_failed,
    "totp_replay": _totp_replay,
    "recovery_codes_regenerated": _recovery_codes_regenerated,
    "recovery_code_used": _recovery_code_used,
    "admin_unlock": _admin(admin.unlock_user),
    "admin_sign_out": _admin(admin.force_sign_out),
    "admin_disable": _admin(lambda c, actor, user: admin.set_disabled(c, actor, user, True)),
    "admin_enable": _admin(lambda c, actor, user: admin.set_disabled(c, actor, user, False), disabled_first=True),
    "account_deleted": _account_deleted,
}
# Events of other flows, tested where those flows are: not about one account, or not an account flow.
ELSEWHERE = {
    "ip_throttled": "a client address, no account (test_auth_signin)",
    "access_denied": "test_access_denied",
    "mail_given_up": "test_mail_queue",
    "transactions_exported": "test_reauth, tests/ui/test_bank_pages",
    "bank_linked": "test_banking_link",
    "bank_link_failed": "test_banking_link",
    "bank_repaired": "test_banking_items",
    "bank_removed": "test_banking_items",
    "kept_history_deleted": "test_kept_history",
    "bank_revocation_done": "test_revocations",
    "bank_revocation_given_up": "test_revocations",
}


# Events recorded without a client address: the account is gone (no personal data left), or the account's user
# did not make the request (an admin's action about them: the admin's own address is not the user's to see).
WITHOUT_ADDRESS = {"account_deleted", "admin_unlock", "admin_sign_out", "admin_disable", "admin_enable"}


def test_every_audit_event_has_a_flow_here_or_a_home_elsewhere() -> None:
    assert sorted(audit.EVENTS - FLOWS.keys() - ELSEWHERE.keys()) == []
    assert not FLOWS.keys() & ELSEWHERE.keys()


@pytest.mark.parametrize("event", sorted(FLOWS))
def test_the_flow_records_its_event_secret_free_and_its_account_sees_it(
    event: str, container: Container, clock: FakeClock, mailer: MemoryMailer, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(container, clock, mailer)
    caplog.set_level(logging.INFO, logger="finsync.auth")
    subject = FLOWS[event](run)
    assert run.before is not None, "the flow must mark where its action starts"
    new = [row for key, row in _rows(container).items() if key not in run.before]
    mine = [row for row in new if row.event == event]
    assert mine, f"{event} not recorded; the action recorded {sorted(r.event for r in new)}"
    assert {row.user_id for row in mine} == {subject}
    if event not in WITHOUT_ADDRESS:  # where it came from, for the user reading Settings → Activity
        assert {row.ip for row in mine} == {IP}, f"{event} recorded without the client's address"

    logged = [rec.getMessage() for rec in caplog.records if rec.name == "finsync.auth" and event in rec.getMessage()]
    assert logged
    shown = " ".join(f"{row.ip} {row.detail}" for row in new) + " ".join(logged)
    leaked = [len(s) for s in run.secrets if s and s in shown]
    assert not leaked, f"secrets of length {leaked} in the audit rows or log lines of {event}"

    activity = {(v.at, v.event, v.detail) for v in audit.list_events(container, subject)}
    assert {(row.at, row.event, row.detail) for row in mine} <= activity
