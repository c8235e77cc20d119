"""Automation: jobs in the database, leases, workers racing, the per-process scheduler, notifications."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import select

from models import ItemSyncState, PlaidItem, SyncJob, SyncRun
from services import banking, jobs, mail_queue
from services.banking import link_sandbox
from services.bot_health import current_health
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError
from services.jobs import claim, enqueue_due, enqueue_sync, run_due_jobs, run_job
from services.mailer import MemoryMailer
from services.notify import (
    NewTransaction,
    NotificationSettings,
    get_notification_prefs,
    money,
    queue_after_sync,
    set_notification_prefs,
)
from services.scheduler import Scheduler, start_scheduler, stop_scheduler
from services.sync import item_sync_status, request_sync_on_sign_in, sync_item
from services.sync_state import acquire, release, renew, start_run
from services.sync_types import LEASE_SECONDS
from tests.integration.sync_helpers import FAST, ledger, link_item, make_user, truth


def _runs_per_item(c: Container) -> dict[uuid.UUID, int]:
    with unit_of_work(c.engine) as s:
        out: dict[uuid.UUID, int] = {}
        for run in s.exec(select(SyncRun)).all():
            out[run.item_id] = out.get(run.item_id, 0) + 1
        return out


@pytest.fixture
def wired(container: Container, gateway) -> Container:
    """Jobs find the gateway the way the app does: on the container."""
    return dataclasses.replace(container, plaid=gateway)


def test_due_items_are_synced_once_and_then_not_again_until_the_interval(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    _, pid = link_item(wired, gateway, user_id)
    assert run_due_jobs(wired, worker_id="w1", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    assert run_due_jobs(wired, worker_id="w1", limit=5) == 0
    clock.advance(hours=wired.settings.sync_interval_hours, seconds=1)
    demo_bank.advance(pid, 1)
    assert run_due_jobs(wired, worker_id="w1", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    with unit_of_work(wired.engine) as s:  # Sync history tells the first sync of a new bank from the schedule's
        assert [r.trigger for r in s.exec(select(SyncRun).order_by(SyncRun.started_at)).all()] == [  # type: ignore[arg-type]
            "first", "schedule"
        ]  # fmt: skip


def test_webhook_request_and_sign_in_enqueue_a_sync(wired, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, _ = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    assert request_sync_on_sign_in(wired, user_id) == 0  # synced a moment ago
    clock.advance(minutes=61)
    assert request_sync_on_sign_in(wired, user_id) == 1
    assert request_sync_on_sign_in(wired, user_id) == 0  # one open job per item
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    with unit_of_work(wired.engine) as s:
        item = s.get(PlaidItem, item_id)
        item.sync_requested_at = clock()  # type: ignore[union-attr]  # what a verified SYNC_UPDATES_AVAILABLE sets
        s.add(item)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    with unit_of_work(wired.engine) as s:
        assert s.get(PlaidItem, item_id).sync_requested_at is None  # type: ignore[union-attr]
        assert [r.trigger for r in s.exec(select(SyncRun).order_by(SyncRun.started_at)).all()] == [  # type: ignore[arg-type]
            "first", "sign_in", "webhook"
        ]  # fmt: skip


def test_a_job_of_a_killed_worker_is_retried_after_its_lease_expires(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    _, pid = link_item(wired, gateway, user_id)
    enqueue_due(wired)
    assert len(claim(wired, "dead-worker", 5)) == 1  # ...and the worker dies here
    assert run_due_jobs(wired, worker_id="w2", limit=5) == 0  # leased: nobody else takes it yet
    clock.advance(minutes=11)
    assert run_due_jobs(wired, worker_id="w2", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    with unit_of_work(wired.engine) as s:
        job = s.exec(select(SyncJob)).one()
        assert (job.status, job.attempts, job.open_key) == ("done", 2, None)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite runs one worker process
def test_two_workers_racing_sync_each_item_once_per_due_time(wired, demo_bank, gateway, clock, db_url) -> None:
    users = [make_user(wired, f"u{i}@example.com") for i in range(3)]
    items = [link_item(wired, gateway, u)[0] for u in users for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            barrier.wait()
            while run_due_jobs(wired, worker_id=name, limit=1):
                pass
        except BaseException as exc:
            errors.append(exc)

    for _ in range(2):  # two due times
        threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clock.advance(hours=wired.settings.sync_interval_hours, seconds=1)
    assert not errors
    assert _runs_per_item(wired) == dict.fromkeys(items, 2)


def test_scheduler_starts_once_per_process_and_runs_without_a_browser(wired, demo_bank, gateway) -> None:
    user_id = make_user(wired)
    _, pid = link_item(wired, gateway, user_id)
    try:
        first = start_scheduler(wired, tick=0.05)
        assert start_scheduler(wired, tick=0.05) is first and first.running
        for _ in range(500):  # wait for the first pass (not a speed assertion)
            if ledger(wired, user_id):
                break
            time.sleep(0.02)
    finally:
        stop_scheduler()
    assert not first.running
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def test_a_quiet_scheduler_pass_also_self_checks_a_bank_that_is_due(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    _, pid = link_item(wired, gateway, user_id)
    scheduler = Scheduler(wired)
    assert scheduler.run_once() == 1  # the first sync; no check for a bank linked today
    clock.advance(days=wired.settings.sync_verify_days, seconds=1)
    assert scheduler.run_once() == 1  # the due sync, then the week's check
    with unit_of_work(wired.engine) as s:
        checks = s.exec(select(SyncRun).where(SyncRun.trigger == "verify")).all()
    assert [(r.status, r.error_code) for r in checks] == [("ok", None)]
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def test_a_new_bank_is_synced_at_once_not_at_the_next_tick(wired, demo_bank) -> None:
    """Linking nudges the scheduler: with an hour between ticks, the first sync still starts right away."""
    user_id = make_user(wired, "ny@example.com")
    try:
        scheduler = start_scheduler(wired, tick=3600)
        for _ in range(500):  # its first pass finds nothing to do; then it sleeps for the hour
            if scheduler.passes:
                break
            time.sleep(0.01)
        item_id = link_sandbox(wired, email="ny@example.com", institution_id="ins_demo_2")
        for _ in range(1000):  # bounded wait for the nudged pass (not a speed assertion)
            if ledger(wired, user_id):
                break
            time.sleep(0.01)
        synced = ledger(wired, user_id)
    finally:
        stop_scheduler()
    with unit_of_work(wired.engine) as s:
        pid = s.get(PlaidItem, item_id).plaid_item_id  # type: ignore[union-attr]
    assert synced and synced == truth(demo_bank, pid)
    assert scheduler.passes >= 2


def test_notifications_digest_large_transaction_and_low_balance(
    container, gateway, demo_bank, mailer: MemoryMailer
) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    set_notification_prefs(container, user_id, NotificationSettings(True, 50_000, 10**12, True))
    assert get_notification_prefs(container, user_id).large_transaction_minor == 50_000
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    first = [str(m["Subject"]) for m in mailer.sent]
    # The first sync brings past history: not news, so no digest or large alerts; a low balance still counts.
    assert first and all(s.startswith("finsync: low balance on") for s in first), first
    assert "below your alert amount of 10,000,000,000.00" in mailer.sent[0].get_content()  # why it was sent
    # It names the balance it compared, as Accounts shows it (Available), not "the balance" (read as Current)
    accounts = {a.name: a for item in banking.list_items(container, user_id) for a in item.accounts}
    for mail in mailer.sent:
        name = str(mail["Subject"]).removeprefix("finsync: low balance on ")
        shown = money(accounts[name].available_minor or 0, accounts[name].currency)
        assert f"The available balance of {name} at " in mail.get_content() and f" is {shown}," in mail.get_content()
    mailer.sent.clear()
    demo_bank.mutate(pid, "add", cents=75_000, name="NEW TV")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    subjects = [str(m) for m in mailer.sent]
    assert any("1 new transaction" in s for s in subjects)
    assert any("large transaction at" in s and "NEW TV" in s for s in subjects)
    assert not any("low balance" in s for s in subjects)  # already alerted at the first sync: no repeat
    settings_link = f"Change what finsync emails you about in Settings: {container.settings.base_url}/settings"
    assert all(settings_link in m.get_content() for m in mailer.sent)  # straight to the preferences
    mailer.sent.clear()
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert mailer.sent == []  # nothing new, nothing sent


def test_the_large_transaction_alert_compares_in_each_currency_s_own_units(container, mailer: MemoryMailer) -> None:
    """A threshold of 500.00 is 500 USD, 500 JPY or 500 KWD: never 50,000 yen or 0.5 dinar."""
    user_id = make_user(container)
    set_notification_prefs(container, user_id, NotificationSettings(False, 50_000, None, True))
    day = date(2026, 12, 1)
    new = [
        NewTransaction(day, "YEN 499", 499, "JPY"),  # 499 yen: below
        NewTransaction(day, "YEN 500", 500, "JPY"),  # 500 yen: at the threshold
        NewTransaction(day, "DINAR 0.6", 600, "KWD"),  # 0.600 dinar: far below (3 decimals)
        NewTransaction(day, "DOLLAR 499.99", 49_999, "USD"),
        NewTransaction(day, "DOLLAR REFUND 500", -50_000, "USD"),  # money in counts by size too
    ]
    prefs = get_notification_prefs(container, user_id)
    with unit_of_work(container.engine) as session:
        queue_after_sync(session, container, user_id, "Demo Bank", (new, len(new), []), prefs)
    mail_queue.send(container)
    (alert,) = [m for m in mailer.sent if "large transaction" in str(m["Subject"])]
    body = alert.get_content()
    assert "YEN 500" in body and "DOLLAR REFUND 500" in body
    assert "YEN 499" not in body and "DINAR" not in body and "DOLLAR 499.99" not in body


def test_a_user_who_turned_notifications_off_gets_none(container, gateway, demo_bank, mailer: MemoryMailer) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    set_notification_prefs(container, user_id, NotificationSettings(False, None, None, False))
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    demo_bank.mutate(pid, "add", cents=900_000, name="NEW CAR")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)  # news, large: no digest, no alert
    demo_bank.set_fault(pid, "login_required")
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "login_required"
    assert mailer.sent == []
    set_notification_prefs(container, user_id, NotificationSettings(True, None, None, True))
    demo_bank.repair(pid)
    demo_bank.mutate(pid, "add", cents=100, name="GUM")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    demo_bank.set_fault(pid, "login_required")
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    subjects = [str(m["Subject"]) for m in mailer.sent]  # switched back on: both arrive
    assert any("1 new transaction" in s for s in subjects) and any("needs your attention" in s for s in subjects)


def test_notification_thresholds_are_validated(container) -> None:
    user_id = make_user(container)
    with pytest.raises(InputError):
        set_notification_prefs(container, user_id, NotificationSettings(large_transaction_minor=0))


def _ask_to_sync(c: Container, item_id: uuid.UUID, **fields: object) -> None:
    """What a verified SYNC_UPDATES_AVAILABLE (or a repair: status "ok" too) sets on the item."""
    with unit_of_work(c.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None
        item.sync_requested_at = c.clock()
        for name, value in fields.items():
            setattr(item, name, value)
        s.add(item)


def test_a_webhook_arriving_while_a_job_runs_is_kept_and_synced_after_it(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    clock.advance(hours=wired.settings.sync_interval_hours, seconds=1)
    enqueue_due(wired)
    (running,) = claim(wired, "A", 1)  # worker A is fetching when the webhook lands
    demo_bank.advance(pid, 1)
    _ask_to_sync(wired, item_id)
    assert enqueue_due(wired) == 0  # another worker's tick: the item still has its open job
    with unit_of_work(wired.engine) as s:
        assert s.get(PlaidItem, item_id).sync_requested_at is not None  # type: ignore[union-attr]  # not dropped
    assert run_job(wired, running, "A") is not None
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # the webhook's own sync
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def _hold(c: Container, item_id: uuid.UUID, owner: str = "otherhost:1:app:sync-now") -> None:
    """Another process ("Sync now" or the CLI) is fetching ``item_id``: it holds the item's lease."""
    with unit_of_work(c.engine, immediate=True) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, owner, c.clock())


def _webhook_runs(c: Container, item_id: uuid.UUID) -> int:
    with unit_of_work(c.engine) as s:
        runs = s.exec(select(SyncRun).where(SyncRun.item_id == item_id, SyncRun.trigger == "webhook")).all()
        return len(runs)


def test_a_webhook_while_sync_now_holds_the_item_waits_for_it_instead_of_being_dropped(
    wired, demo_bank, gateway, clock
) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    _hold(wired, item_id)  # that sync may already have read the bank when the webhook lands
    demo_bank.advance(pid, 2)
    _ask_to_sync(wired, item_id)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 0  # no job just to be told "already syncing"
    with unit_of_work(wired.engine) as s:
        assert s.get(PlaidItem, item_id).sync_requested_at is not None  # type: ignore[union-attr]
    release(wired.engine, item_id, "otherhost:1:app:sync-now")
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def test_a_webhook_job_that_finds_the_item_busy_puts_its_request_back(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    demo_bank.advance(pid, 2)
    _ask_to_sync(wired, item_id)
    assert enqueue_due(wired) == 1
    (job,) = claim(wired, "w", 1)
    _hold(wired, item_id)  # "Sync now" took the item between the claim and the run
    result = run_job(wired, job, "w")
    assert result is not None and result.status == "already_syncing"
    release(wired.engine, item_id, "otherhost:1:app:sync-now")
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # the webhook's sync, not lost
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def test_a_webhook_storm_is_budgeted_per_item_and_drops_no_request(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    first_done = clock()
    for _ in range(jobs.WEBHOOK_BURST):  # a short burst (a new bank's first updates) syncs at once
        _ask_to_sync(wired, item_id)
        assert run_due_jobs(wired, worker_id="w", limit=5) == 1
        clock.advance(seconds=20)
    for _ in range(5):  # then the budget holds: five more, each with news, wait
        demo_bank.advance(pid, 1)
        _ask_to_sync(wired, item_id)
        assert run_due_jobs(wired, worker_id="w", limit=5) == 0
        clock.advance(seconds=20)
    assert _webhook_runs(wired, item_id) == jobs.WEBHOOK_BURST
    (waiting,) = item_sync_status(wired, user_id)  # Accounts says the bank's news waits, and until when
    assert waiting.message == "Your bank has new data: it comes in with the next sync."
    assert waiting.next_due_at == first_done + jobs.WEBHOOK_WINDOW
    assert sync_item(wired, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"  # "Sync now"...
    assert item_sync_status(wired, user_id)[0].message == "Up to date."  # ...brought the news in: not waiting
    clock.now = first_done + jobs.WEBHOOK_WINDOW + timedelta(seconds=1)  # the burst's first sync leaves the window
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # one sync for all five
    assert run_due_jobs(wired, worker_id="w", limit=5) == 0
    assert _webhook_runs(wired, item_id) == jobs.WEBHOOK_BURST + 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    assert item_sync_status(wired, user_id)[0].message == "Up to date."


def test_a_repair_syncs_at_once_even_when_the_banks_webhooks_spent_their_budget(
    wired, demo_bank, gateway, clock
) -> None:
    """A bank that sends a webhook with every purchase has used its budget of webhook syncs; the user repairs its
    login. That sync must not wait in the webhook queue (the page would say "needs you to sign in" for minutes
    after the repair): it runs on the bot's next tick, and takes the held-back webhook's news with it."""
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    for _ in range(jobs.WEBHOOK_BURST + 1):
        demo_bank.advance(pid, 1)
        _ask_to_sync(wired, item_id)
        run_due_jobs(wired, worker_id="w", limit=5)
        clock.advance(seconds=20)
    assert _webhook_runs(wired, item_id) == jobs.WEBHOOK_BURST  # the last one waits for the window
    demo_bank.set_fault(pid, "login_required")
    assert sync_item(wired, user_id, item_id, policy=FAST).status == "login_required"  # "Sync now" finds it out
    (broken,) = item_sync_status(wired, user_id)  # no promise of news that cannot come: it waits for the repair
    assert broken.message.startswith("Syncing waits until you repair the connection")
    demo_bank.repair(pid)
    demo_bank.advance(pid, 1)
    assert banking.complete_repair(wired, user_id, item_id).status == "ok"
    (mended,) = item_sync_status(wired, user_id)  # not "needs you to sign in" beside the "Connected" badge
    assert mended.message == "Connected again: the next sync picks up from here."
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # at once: no window waited out
    assert run_due_jobs(wired, worker_id="w", limit=5) == 0  # one sync for the repair and the waiting news
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    (status,) = item_sync_status(wired, user_id)
    assert status.state == "ok" and status.message == "Up to date."
    with unit_of_work(wired.engine) as s:
        repaired = s.exec(select(SyncRun.status).where(SyncRun.item_id == item_id, SyncRun.trigger == "repair")).all()
    assert repaired == ["ok"]  # Sync history says why it ran


def test_a_repair_behind_a_queued_sign_in_job_syncs_on_the_next_tick(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    run_due_jobs(wired, worker_id="w", limit=5)
    demo_bank.set_fault(pid, "login_required")
    clock.advance(hours=wired.settings.sync_interval_hours, seconds=1)
    run_due_jobs(wired, worker_id="w", limit=5)  # the scheduled sync finds the login expired
    clock.advance(hours=2)
    assert request_sync_on_sign_in(wired, user_id) == 1  # the user signs in: a sign-in job is queued
    demo_bank.repair(pid)
    demo_bank.advance(pid, 1)
    _ask_to_sync(wired, item_id, status="ok")  # what completing the repair in Link sets
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    with unit_of_work(wired.engine) as s:
        assert [j.reason for j in s.exec(select(SyncJob).order_by(SyncJob.created_at)).all()][-1] == "webhook"  # type: ignore[arg-type]


def test_a_scheduled_sync_of_a_repaired_item_does_not_wait_for_the_daily_probe(
    wired, demo_bank, gateway, clock
) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    sync_item(wired, user_id, item_id, policy=FAST)
    demo_bank.set_fault(pid, "login_required")
    assert sync_item(wired, user_id, item_id, policy=FAST).status == "login_required"
    clock.advance(hours=1)
    demo_bank.repair(pid)
    _ask_to_sync(wired, item_id, status="ok", sync_requested_at=None)  # repaired; the request already taken
    assert sync_item(wired, user_id, item_id, explicit=False, policy=FAST).status == "ok"
    assert ledger(wired, user_id) == truth(demo_bank, pid)


def test_the_daily_probe_of_a_bank_that_needs_a_sign_in_runs_at_the_time_it_was_given(
    wired, demo_bank, gateway, clock, monkeypatch
) -> None:
    """The failed run took a while (a slow bank): the probe it scheduled runs when the scheduler finds it due,
    rather than being turned away as "not yet" until a day after that run ended."""
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    sync_item(wired, user_id, item_id, policy=FAST)
    demo_bank.set_fault(pid, "login_required")
    real = gateway.transactions_sync

    def slow(*args: Any, **kwargs: Any) -> Any:
        clock.advance(seconds=40)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gateway, "transactions_sync", slow)
        assert sync_item(wired, user_id, item_id, gateway=gateway, policy=FAST).status == "login_required"
    with unit_of_work(wired.engine) as s:
        state = s.get(ItemSyncState, item_id)
        assert state is not None and state.next_due_at is not None
        due, runs = state.next_due_at, len(s.exec(select(SyncRun)).all())
    clock.advance(seconds=(due - clock()).total_seconds() - 1)
    assert sync_item(wired, user_id, item_id, explicit=False, policy=FAST).status == "login_required"
    clock.advance(seconds=1)  # due now
    assert sync_item(wired, user_id, item_id, explicit=False, policy=FAST).status == "login_required"
    with unit_of_work(wired.engine) as s:
        assert len(s.exec(select(SyncRun)).all()) == runs + 1  # the probe asked the bank; the early try did not


def _runs(c: Container, item_id: uuid.UUID, trigger: str) -> list[SyncRun]:
    with unit_of_work(c.engine) as s:
        return list(s.exec(select(SyncRun).where(SyncRun.item_id == item_id, SyncRun.trigger == trigger)).all())


def _dies_mid_sync(c: Container, item_id: uuid.UUID, owner: str, clock: Any) -> None:
    """Worker ``owner`` (on another host: no process check can tell it is dead) claims the item's job, starts its
    sync, stages pages for two minutes (renewing its leases), and is killed."""
    (job,) = claim(c, owner, 1)
    with unit_of_work(c.engine, immediate=True) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, owner, clock())
        start_run(s, item, owner, job.reason, clock())
    clock.advance(minutes=2)
    with unit_of_work(c.engine, immediate=True) as s:
        assert renew(s, item_id, owner, clock())


def test_a_repair_sync_whose_worker_died_mid_sync_runs_again_once_the_banks_lease_ends(
    wired, demo_bank, gateway, clock
) -> None:
    """The job's lease ran out before the bank's (renewed later): the next worker found the bank "already syncing",
    failed the job and never asked again, so a repaired bank waited for the next day's probe."""
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    demo_bank.advance(pid, 2)
    enqueue_sync(wired, item_id, "repair")
    _dies_mid_sync(wired, item_id, "otherhost:4242:worker:dead", clock)
    passes = 0
    while not any(r.status == "ok" for r in _runs(wired, item_id, "repair")):
        clock.advance(seconds=30)  # a worker's tick
        run_due_jobs(wired, worker_id="w2", limit=5)
        passes += 1
        assert passes < 40, "the repair sync was not run again within 20 minutes"
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    with unit_of_work(wired.engine) as s:
        job = s.exec(select(SyncJob).where(SyncJob.reason == "repair")).one()
        assert (job.status, job.attempts, job.open_key) == ("done", 2, None)


def test_a_scheduled_job_that_finds_sync_now_running_waits_for_it_instead_of_failing(
    wired, demo_bank, gateway, clock
) -> None:
    user_id = make_user(wired)
    item_id, _ = link_item(wired, gateway, user_id)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    clock.advance(hours=6, seconds=1)
    assert enqueue_due(wired) == 1
    (job,) = claim(wired, "w", 1)
    _hold(wired, item_id)  # "Sync now" took the bank between the claim and the run
    result = run_job(wired, job, "w")
    assert result is not None and result.status == "already_syncing"
    with unit_of_work(wired.engine) as s:
        waiting = s.exec(select(SyncJob).where(SyncJob.status != "done")).one()
        assert (waiting.status, waiting.attempts) == ("queued", 0)
    release(wired.engine, item_id, "otherhost:1:app:sync-now")
    assert sync_item(wired, user_id, item_id, gateway=gateway, policy=FAST).ok  # "Sync now" did the work
    clock.advance(minutes=11)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # it finds the bank synced: not due, nothing to do
    assert _runs(wired, item_id, "schedule") == []
    with unit_of_work(wired.engine) as s:
        assert s.exec(select(SyncJob).where(SyncJob.status == "failed")).all() == []


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite runs one worker process
def test_a_sync_longer_than_a_lease_keeps_its_job_and_the_bot_looks_healthy(
    wired, demo_bank, gateway, clock, monkeypatch
) -> None:
    """30 pages at 45 s each: the job's lease moves with the bank's, so no other worker takes it over mid-sync."""
    user_id = make_user(wired)
    _, pid = link_item(wired, gateway, user_id)
    demo_bank.generate_history(pid, 15_000)
    enqueue_due(wired)
    (job,) = claim(wired, "hostA:1:worker:a", 1)
    started = clock()
    fetch = gateway.transactions_sync
    seen: dict[str, Any] = {}

    def slow(*args: Any, **kwargs: Any) -> Any:
        clock.advance(seconds=45)
        if clock() - started > timedelta(seconds=LEASE_SECONDS + 60) and "taken" not in seen:
            with unit_of_work(wired.engine) as s:
                seen["stalled"] = current_health(wired, s).stalled
            seen["taken"] = claim(wired, "hostB:2:worker:b", 1)
        return fetch(*args, **kwargs)

    monkeypatch.setattr(gateway, "transactions_sync", slow)
    result = run_job(wired, job, "hostA:1:worker:a")
    assert result is not None and result.status == "ok" and clock() - started > timedelta(minutes=20)
    assert seen == {"stalled": 0, "taken": []}
    with unit_of_work(wired.engine) as s:
        done = s.exec(select(SyncJob)).one()
        assert (done.status, done.attempts) == ("done", 1)
        assert [r.status for r in s.exec(select(SyncRun)).all()] == ["ok"]


@pytest.mark.parametrize("fault", ["login_required", "institution_down"])
def test_a_webhook_storm_at_a_failing_bank_is_budgeted_too(wired, demo_bank, gateway, clock, fault: str) -> None:
    """Failed webhook syncs count against the budget: 100 webhooks in eight minutes asked Plaid 100 times."""
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    demo_bank.set_fault(pid, fault, times=100_000)
    for _ in range(100):
        _ask_to_sync(wired, item_id)
        run_due_jobs(wired, worker_id="w", limit=5)
        clock.advance(seconds=5)
    assert len(_runs(wired, item_id, "webhook")) == jobs.WEBHOOK_BURST


def test_a_job_whose_lease_expired_under_a_live_worker_runs_once(wired, demo_bank, gateway, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    enqueue_sync(wired, item_id, "manual")
    (slow,) = claim(wired, "A", 1)  # worker A is alive but late (busy elsewhere) ...
    clock.advance(minutes=11)
    (taken,) = claim(wired, "B", 1)  # ... so B takes the job over
    assert taken.id == slow.id
    assert run_job(wired, taken, "B") is not None
    demo_bank.advance(pid, 1)
    assert run_job(wired, slow, "A") is None  # A sees it no longer holds the job
    with unit_of_work(wired.engine) as s:
        assert len(s.exec(select(SyncRun)).all()) == 1
        job = s.exec(select(SyncJob)).one()
        assert (job.status, job.attempts) == ("done", 2)


def test_a_pass_claims_one_job_at_a_time(wired, gateway, monkeypatch) -> None:
    for n in range(3):
        link_item(wired, gateway, make_user(wired, f"u{n}@example.com"))
    running: list[int] = []
    real_run_job = jobs.run_job

    def spy(c: Container, job: SyncJob, worker_id: str) -> object:
        with unit_of_work(c.engine) as s:
            running.append(len(s.exec(select(SyncJob).where(SyncJob.status == "running")).all()))
        return real_run_job(c, job, worker_id)

    monkeypatch.setattr(jobs, "run_job", spy)
    assert run_due_jobs(wired, worker_id="w", limit=10) == 3
    assert running == [1, 1, 1]  # never a batch whose last job waits out its lease


def test_the_digest_comes_at_most_once_an_hour_and_covers_every_bank(
    container, gateway, demo_bank, clock, mailer: MemoryMailer
) -> None:
    """A bank with news every few minutes (the demo's shoppers, a busy card) and a second bank: one digest
    straight away, then what comes within the hour waits and goes out as one email naming both banks."""
    from models import DigestItem
    from services.notify import DIGEST_EVERY, flush_digests

    user_id = make_user(container)
    first, first_pid = link_item(container, gateway, user_id)
    second, second_pid = link_item(container, gateway, user_id, institution="ins_demo_2")
    for item_id in (first, second):
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)  # history: no digest
    mailer.sent.clear()

    demo_bank.mutate(first_pid, "add", cents=1_250, name="CORNER BAKERY")
    sync_item(container, user_id, first, gateway=gateway, policy=FAST)
    assert [str(m["Subject"]) for m in mailer.sent] == ["finsync: 1 new transaction from Demo ins_demo_1"]
    mailer.sent.clear()

    for minutes, (pid, item_id, name) in enumerate(
        [(first_pid, first, "BOOK NOOK"), (second_pid, second, "FUEL STOP"), (first_pid, first, "TEA HOUSE")]
    ):
        clock.advance(minutes=10 + minutes)
        demo_bank.mutate(pid, "add", cents=2_000, name=name)
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert mailer.sent == [] and flush_digests(container) == 0  # within the hour: they wait
    with unit_of_work(container.engine) as s:
        assert sum(i.count for i in s.exec(select(DigestItem)).all()) == 3

    clock.advance(seconds=DIGEST_EVERY.total_seconds())
    assert flush_digests(container) == 1 and flush_digests(container) == 0  # once
    (digest,) = mailer.sent
    assert str(digest["Subject"]) == "finsync: 3 new transactions from 2 banks"
    body = digest.get_content()
    assert "Demo ins_demo_1:" in body and "Demo ins_demo_2:" in body
    assert all(name in body for name in ("BOOK NOOK", "FUEL STOP", "TEA HOUSE")) and "CORNER BAKERY" not in body
    with unit_of_work(container.engine) as s:
        assert s.exec(select(DigestItem)).all() == []

    demo_bank.mutate(second_pid, "add", cents=500, name="GUM")  # news again, then the digest is turned off...
    sync_item(container, user_id, second, gateway=gateway, policy=FAST)
    set_notification_prefs(container, user_id, NotificationSettings(False, None, None, True))
    set_notification_prefs(container, user_id, NotificationSettings(True, None, None, True))  # ...and on again
    clock.advance(seconds=DIGEST_EVERY.total_seconds())
    assert flush_digests(container) == 0 and len(mailer.sent) == 1  # what waited while it was off is not sent
    with unit_of_work(container.engine) as s:
        assert s.exec(select(DigestItem)).all() == []

    demo_bank.mutate(first_pid, "add", cents=300, name="BUS FARE")  # the hour is up: this one goes at once
    sync_item(container, user_id, first, gateway=gateway, policy=FAST)
    assert len(mailer.sent) == 2
    demo_bank.mutate(second_pid, "add", cents=800, name="SECRET GIFT")  # these wait for the hour...
    sync_item(container, user_id, second, gateway=gateway, policy=FAST)
    demo_bank.mutate(first_pid, "add", cents=900, name="NEWSPAPER")
    sync_item(container, user_id, first, gateway=gateway, policy=FAST)
    assert len(mailer.sent) == 2
    banking.remove_item(container, user_id, second, keep_history=False)  # ...and the second bank is removed
    clock.advance(seconds=DIGEST_EVERY.total_seconds())
    assert flush_digests(container) == 1
    last = mailer.sent[-1]
    assert str(last["Subject"]) == "finsync: 1 new transaction from Demo ins_demo_1"
    assert "NEWSPAPER" in last.get_content() and "SECRET GIFT" not in last.get_content()  # gone with its bank


def test_two_banks_of_one_user_syncing_at_once_both_add_to_the_waiting_digest(
    container, gateway, demo_bank, clock, mailer: MemoryMailer
) -> None:
    """The digest row is made by whichever sync comes first and locked by each: neither sync fails on it."""
    from models import DigestItem, DigestState

    user_id = make_user(container)
    items = [link_item(container, gateway, user_id, institution=f"ins_demo_{n}") for n in (1, 2)]
    for item_id, _ in items:
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    for _, pid in items:
        demo_bank.mutate(pid, "add", cents=700, name="LUNCH")
    results: list[str] = []
    start = threading.Barrier(2)

    def run(item_id: uuid.UUID) -> None:
        start.wait()
        results.append(sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status)

    threads = [threading.Thread(target=run, args=(item_id,)) for item_id, _ in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == ["ok", "ok"]
    with unit_of_work(container.engine) as s:
        state = s.get(DigestState, user_id)
        assert state is not None and state.sent_at is not None
    digests = [str(m["Subject"]) for m in mailer.sent if "new transaction" in str(m["Subject"])]
    with unit_of_work(container.engine) as s:
        waiting = sum(i.count for i in s.exec(select(DigestItem)).all())
    assert len(digests) == 1 and waiting == 1  # the first to commit mailed; the other waits for the hour


class _WorkerKilled(BaseException):
    """What an OOM kill or SIGKILL mid-sync looks like to the database: the run stops, nothing closes it."""


def test_a_bank_whose_sync_kills_the_worker_is_given_up_on_and_backs_off(
    wired, gateway, demo_bank, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bank whose sync kills the worker every time is tried a few times, then reads failed and is left alone for
    a while, instead of being queued afresh (and killing a worker) every time a dead worker's lease runs out."""
    from services import sync_engine
    from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET
    from services.plaid_client import PlaidGateway

    class Killing(PlaidGateway):
        def transactions_sync(self, *a: Any, **k: Any) -> Any:
            raise _WorkerKilled()

    user_id = make_user(wired)
    item_id, _ = link_item(wired, gateway, user_id)
    c = dataclasses.replace(wired, plaid=Killing("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url))
    monkeypatch.setattr(sync_engine, "_interrupted", lambda *a, **k: None)  # killed: no handler runs
    kills = 0
    for n in range(18):  # three hours of worker restarts, each after the dead one's leases ran out
        try:
            run_due_jobs(c, worker_id=f"worker-{n}", limit=1)
        except _WorkerKilled:
            kills += 1
        clock.advance(minutes=11)
    assert kills == jobs.MAX_ATTEMPTS
    [status] = item_sync_status(c, user_id)
    assert status.item_id == item_id and status.state == "failed" and "interrupted" in status.message
    assert status.next_due_at is not None and status.next_due_at > clock()  # left alone a while, then tried again
