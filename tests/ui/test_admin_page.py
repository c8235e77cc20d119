"""The admin page as people use it (AppTest): only for admins, only with two-factor on (checked on every rerun),
usernames shown as written; and every signed-in page renders for an admin."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from services import account, auth, throttle, totp
from services.container import Container
from services.errors import InvalidCredentials, Throttled
from tests.factories import FakeClock
from tests.integration.auth_support import PASSWORD, code_at, enable_totp, make_user, sign_in, sign_in_with_code
from tests.ui.account_support import signed_in_as, submit
from tests.ui.conftest import AppFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")


def test_admin_page_only_for_admins(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in(container, "alice"))
    at = app().run()
    with pytest.raises(ValueError):  # the page is not even registered for a plain user
        at.switch_page("admin.py").run()
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert set(shown["Username"]) == {"alice", "root"}
    assert not any("password" in str(col) or "totp_secret" in str(col) for col in shown.columns)
    log = at.dataframe[1].value  # the audit log names accounts, never shows raw ids or bytes
    assert {"alice", "root"} <= set(log["Account"]) and not log.astype(str).map(lambda v: "{" in v).any().any()
    assert "No bank connections waiting to be revoked." in [i.value for i in at.info]  # the revocations tab


def said(at: AppTest) -> list[str]:
    """The success messages of the admin's actions (not the Sync bot tab's standing "The bot keeps up")."""
    return [s.value for s in at.success if not s.value.startswith("The bot keeps up")]


def test_admin_messages_show_a_username_as_written(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "__loud__")  # usernames may hold underscores: Markdown's bold
    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    assert at.selectbox(key="admin_user").value is None  # nobody is picked for the admin: not even themselves
    at.selectbox(key="admin_user").select("__loud__ <__loud__@example.com>").run()
    assert [b.disabled for b in at.button if b.label == "Unlock"] == [True]  # not paused: nothing to unlock
    at = submit(at, "Sign them out everywhere")  # behind the "Force sign-out" popover's question
    assert said(at) == [r"Signed out \_\_loud\_\_: 0 sessions."]
    at = submit(at, "Disable")
    assert not at.exception
    assert said(at) == [r"\_\_loud\_\_ is disabled and signed out everywhere."]
    at.selectbox(key="admin_user").select("root <root@example.com>").run()
    assert any("This is you" in c.value for c in at.caption)


def test_unlock_shows_the_user_no_longer_paused(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After Unlock the table and the button agree with the message: the pause is gone, Unlock is not offered."""
    from services import auth
    from services.errors import InvalidCredentials

    make_user(container, "alice")
    root = make_user(container, "root", role="admin")
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            auth.begin_sign_in(container, login="alice", password="guess guess guess guess")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    at.selectbox(key="admin_user").select("alice <alice@example.com>").run()
    status = dict(zip(at.dataframe[0].value["Username"], at.dataframe[0].value["Status"], strict=True))
    assert status["alice"].startswith("paused until")
    assert [b.disabled for b in at.button if b.label == "Unlock"] == [False]
    at = submit(at, "Unlock")
    assert not at.exception, at.exception
    assert said(at) == ["alice can sign in again."]
    status = dict(zip(at.dataframe[0].value["Username"], at.dataframe[0].value["Status"], strict=True))
    assert status["alice"] == "active" and not status["alice"].startswith("paused")
    assert [b.disabled for b in at.button if b.label == "Unlock"] == [True]


NEEDS_TOTP = "The admin page needs two-factor sign-in. Turn it on in Settings → Two-factor."


def _admin_page_refused(at: AppTest) -> bool:
    """Only the two-factor message and a link to Settings: no table, tab or button of the admin page."""
    links = [(link.value, link.proto.page) for link in at.page_link]
    return (
        [w.value for w in at.warning] == [NEEDS_TOTP]
        and len(links) == 1
        and links[0][1] == "settings"
        and not at.dataframe
        and not at.tabs
        and not at.title
        and not at.selectbox
        and not [b for b in at.main.button]
    )


def test_admin_page_needs_two_factor_on_every_rerun(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(container, "alice")
    root = make_user(container, "root", role="admin")  # as `users create --admin` makes it
    token = sign_in(container, "root")
    signed_in_as(monkeypatch, token)
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception and _admin_page_refused(at)

    secret = enable_totp(container, root.id, current_token=token)  # in Settings, in this same session
    at.run()
    assert not at.exception and set(at.dataframe[0].value["Username"]) == {"alice", "root"}

    clock.advance(seconds=30)
    totp.disable_totp(container, root.id, password=PASSWORD, code=code_at(secret, clock()))
    at.run()  # the open page notices at its next rerun, not at the next sign-in
    assert not at.exception and _admin_page_refused(at)


def test_every_signed_in_page_renders(app: AppFactory, container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(container, "root", role="admin", verified=False)
    signed_in_as(monkeypatch, sign_in(container, "root"))
    for page in ("home.py", "settings.py", "admin.py"):
        at = app().run()
        at.switch_page(page).run()
        assert not at.exception, page


def test_the_sync_bot_tab_says_when_due_syncs_wait_for_a_worker(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from sqlmodel import select

    from models import ItemSyncState, PlaidItem, SyncJob
    from services.db import unit_of_work

    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    said = " ".join(s.value for s in at.success)
    assert "The bot keeps up: no sync is waiting, and no bank is connected yet." in said and not at.error

    owner = make_user(container, "alice")
    with unit_of_work(container.engine) as s:  # a bank whose sync fell due twenty minutes ago; no worker runs
        item = PlaidItem(user_id=owner.id, plaid_item_id="item-x", access_token_enc=b"x", institution_id="ins_1",
                         institution_name="First Demo Bank", created_at=clock())  # fmt: skip
        s.add(item)
        s.flush()
        s.add(SyncJob(item_id=item.id, user_id=owner.id, reason="schedule", due_at=clock() - timedelta(minutes=20)))
    at.run()
    [said] = [e.value for e in at.error]
    assert said.startswith("1 sync due, the oldest waiting 20 minutes: no scheduler or worker is picking them up")
    assert {m.label: m.value for m in at.metric}["Due now"] == "1"
    assert "This server's scheduler does not run." in " ".join(c.value for c in at.caption)

    with unit_of_work(container.engine) as s:  # a worker claimed it, then died: its lease ran out a minute ago
        job = s.exec(select(SyncJob)).one()
        job.status, job.lease_owner, job.lease_expires_at = (
            "running",
            "host:9:worker:dd",
            clock() - timedelta(minutes=1),
        )
        s.add(job)
    at.run()
    assert not at.error and not [s for s in at.success if s.value.startswith("The bot keeps up")]
    assert any(w.value.startswith("1 running sync lost its worker") for w in at.warning)

    with unit_of_work(container.engine) as s:  # the next pass synced it: nothing waits, the bank is not behind
        job = s.exec(select(SyncJob)).one()
        job.status, job.finished_at = "done", clock()
        s.add(job)
        s.add(ItemSyncState(item_id=item.id, user_id=owner.id, state="ok", last_success_at=clock()))
    at.run()
    said = " ".join(s.value for s in at.success)
    assert "The bot keeps up: no sync is waiting, and every connected bank synced within 12 hours." in said
    assert not [i.value for i in at.info if "Not synced yet" in i.value]


def test_the_audit_log_shows_each_address_pause_once_with_its_form_however_long_a_script_posts(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an administrator needs of a flood: that the address was paused, when, on which form, and how often a
    pause began; not one row per refused post (the audit table is append-only)."""
    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    for n in range(account.RESET_IP_LIMIT + 30):
        auth.request_password_reset(container, email=f"u{n}@example.com", ip="203.0.113.77")
    for n in range(throttle.IP_LIMIT + 30):
        with pytest.raises((InvalidCredentials, Throttled)):
            auth.begin_sign_in(container, login=f"u{n}@example.com", password=PASSWORD, ip="203.0.113.77")
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception
    log = at.dataframe[1].value
    paused = log[log["Event"] == "Address paused after too many tries"]
    assert sorted(zip(paused["From"], paused["Detail"], strict=True)) == [
        ("203.0.113.77", "password reset"),
        ("203.0.113.77", "sign-in"),
    ]
    from_flood = log[log["From"] == "203.0.113.77"]
    assert len(from_flood) == account.RESET_IP_LIMIT + throttle.IP_LIMIT + 2  # the tries let through, plus the pauses


def test_the_sync_bot_tab_does_not_call_a_bank_still_preparing_synced(
    app: AppFactory, container: Container, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank that has only ever answered "preparing" was counted in "every connected bank synced within 12 hours":
    the tab now says it has not synced yet, and why, and calls the others "every other connected bank"."""
    from models import ItemSyncState, PlaidItem
    from services.db import unit_of_work

    root = make_user(container, "root", role="admin")
    secret = enable_totp(container, root.id)
    signed_in_as(monkeypatch, sign_in_with_code(container, clock, "root", secret))
    owner = make_user(container, "alice")
    with unit_of_work(container.engine) as s:
        preparing = PlaidItem(user_id=owner.id, plaid_item_id="item-p", access_token_enc=b"x", institution_id="ins_1",
                              institution_name="First Demo Bank", created_at=clock())  # fmt: skip
        s.add(preparing)
        s.flush()
        s.add(ItemSyncState(item_id=preparing.id, user_id=owner.id, state="preparing", last_attempt_at=clock()))
    at = app().run()
    at.switch_page("admin.py").run()
    assert not at.exception and not at.error
    said = " ".join(s.value for s in at.success)
    assert "The bot keeps up: no sync is waiting, and no connected bank has synced yet." in said
    assert "synced within" not in said
    told = " ".join(i.value for i in at.info)
    assert "Not synced yet: 1 connected bank whose bank is still preparing the first data." in told

    with unit_of_work(container.engine) as s:  # a second bank synced: it is synced, the preparing one still is not
        synced = PlaidItem(user_id=owner.id, plaid_item_id="item-s", access_token_enc=b"x", institution_id="ins_2",
                           institution_name="Maple Credit Union", created_at=clock())  # fmt: skip
        s.add(synced)
        s.flush()
        s.add(ItemSyncState(item_id=synced.id, user_id=owner.id, state="ok", last_success_at=clock()))
    at.run()
    said = " ".join(s.value for s in at.success)
    assert "The bot keeps up: no sync is waiting, and every other connected bank synced within 12 hours." in said
    assert "still preparing the first data" in " ".join(i.value for i in at.info)
