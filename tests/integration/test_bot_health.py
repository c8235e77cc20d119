"""The admin's view of the sync bot: due syncs nobody picks up, banks it has not synced for too long, lost workers."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlmodel import col, select

from models import PlaidItem, SyncJob
from services import admin
from services.container import Container
from services.db import unit_of_work
from services.jobs import claim, enqueue_due, run_due_jobs
from tests.integration.auth_support import fast_hashing, make_admin  # noqa: F401
from tests.integration.sync_helpers import link_item
from tests.integration.sync_helpers import make_user as make_bank_user

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def wired(container: Container, gateway) -> Container:
    return dataclasses.replace(container, plaid=gateway)


def test_the_admin_sees_whether_the_bot_keeps_up(wired: Container, gateway, clock) -> None:
    root = make_admin(wired)
    quiet = admin.bot_health(wired, root.id)
    assert (quiet.due, quiet.later, quiet.running, quiet.banks, quiet.behind) == (0, 0, (), 0, 0)
    assert quiet.waiting_for is None and quiet.keeping_up

    owner = make_bank_user(wired)
    item_id, _ = link_item(wired, gateway, owner)
    assert enqueue_due(wired) == 1  # its first sync, queued by a scheduler pass ...
    clock.advance(minutes=12)  # ... and no worker comes for it
    stuck = admin.bot_health(wired, root.id)
    assert stuck.due == 1 and stuck.running == () and stuck.waiting_for == timedelta(minutes=12)
    assert not stuck.keeping_up
    assert stuck.behind == 0  # linked twelve minutes ago: not behind yet

    assert run_due_jobs(wired, worker_id="host:1:worker:aa", limit=5) == 1
    kept_up = admin.bot_health(wired, root.id)
    assert kept_up.waiting_for is None and kept_up.due == 0 and kept_up.keeping_up
    assert (kept_up.done_24h, kept_up.failed_24h, kept_up.workers_24h) == (1, 0, ("host:1:worker:aa",))
    assert kept_up.later == 0 and kept_up.banks == 1 and kept_up.behind == 0 and kept_up.need_owner == 0

    # Thirteen hours later (the interval is six) with no good sync since: the bank is behind.
    clock.advance(hours=2 * wired.settings.sync_interval_hours, minutes=1)
    late = admin.bot_health(wired, root.id)
    assert late.behind == 1 and late.done_24h == 1 and not late.keeping_up
    assert late.behind_after == timedelta(hours=2 * wired.settings.sync_interval_hours)
    with unit_of_work(wired.engine) as s:  # ... unless it waits for its owner: then the bot is not to blame
        item = s.get(PlaidItem, item_id)
        assert item is not None
        item.status = "login_required"
        s.add(item)
    waiting = admin.bot_health(wired, root.id)
    assert waiting.behind == 0 and waiting.need_owner == 1 and waiting.keeping_up


def test_a_worker_that_died_mid_sync_shows_as_stalled(wired: Container, gateway, clock) -> None:
    root = make_admin(wired)
    link_item(wired, gateway, make_bank_user(wired))
    enqueue_due(wired)
    [job] = claim(wired, "host:2:worker:bb")  # claimed, then the worker is killed
    health = admin.bot_health(wired, root.id)
    assert [(r.worker, r.stalled) for r in health.running] == [("host:2:worker:bb", False)] and health.stalled == 0
    with unit_of_work(wired.engine) as s:
        row = s.get(SyncJob, job.id)
        assert row is not None and row.lease_expires_at is not None
        clock.now = row.lease_expires_at + timedelta(seconds=1)
    health = admin.bot_health(wired, root.id)
    assert health.stalled == 1 and health.running[0].stalled and not health.keeping_up
    assert run_due_jobs(wired, worker_id="host:3:worker:cc", limit=5) == 1  # the next worker takes it over
    with unit_of_work(wired.engine) as s:
        assert s.exec(select(SyncJob.status).where(col(SyncJob.id) == job.id)).one() == "done"
    assert admin.bot_health(wired, root.id).keeping_up
