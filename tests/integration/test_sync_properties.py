"""Properties: random bank mutations, faults and user edits with syncs between; and SIGKILL at random points.

After every sync the ledger equals the bank's truth and every user edit is still there (on the posted
twin when a pending transaction posted, and on a transaction the bank removed and later put back).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select, update

from models import DigestItem, ItemSyncState, LedgerTransaction, SyncRun, SyncStaged
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.plaid_client import PlaidGateway
from services.sync import edit_transaction, sync_item
from services.sync_fetch import STAGE_ROWS
from tests.integration.sync_helpers import FAST, assert_exact, ledger, link_item, make_user, process_env, truth

op = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 3)),
    st.tuples(st.just("add"), st.integers(-50_000, 50_000), st.booleans()),
    st.tuples(st.just("modify"), st.integers(0, 10_000), st.text("ABCXYZ ", min_size=1, max_size=8)),
    st.tuples(st.just("remove"), st.integers(0, 10_000)),
    st.tuples(st.just("restore"), st.integers(0, 10_000)),  # the bank puts a removed one back, under its own id
    st.tuples(st.just("post"), st.integers(0, 10_000)),
    st.tuples(st.just("fault"), st.sampled_from(["rate_limit", "server_error", "mutation_during_pagination"])),
    st.tuples(st.just("edit"), st.integers(0, 10_000)),
    st.tuples(st.just("login")),  # the bank wants a new sign-in: a sync changes nothing, then the user repairs
    st.tuples(st.just("sync")),
)
OWNED = ("note", "category_override", "tags", "excluded")  # what the user owns on a transaction


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=12))
def test_ledger_always_equals_the_bank_and_no_edit_is_lost(container, gateway, demo_bank, ops) -> None:
    c, bank = container, demo_bank
    user_id = make_user(c, f"{uuid.uuid4().hex[:12]}@example.com")
    item_id, pid = link_item(c, gateway, user_id)
    edits: dict[str, tuple[object, ...]] = {}  # transaction id -> the user's fields as saved
    removed: dict[str, tuple[object, ...] | None] = {}  # removed by the bank -> the edits they had (to come back)

    def pick(n: int, pending: bool | None = None) -> str | None:
        rows = [t["transaction_id"] for t in bank.truth(pid) if pending is None or t["pending"] == pending]
        return sorted(rows)[n % len(rows)] if rows else None

    def check() -> None:
        assert sync_item(c, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
        assert ledger(c, user_id) == truth(bank, pid)
        assert {tid: owned(tid) for tid in edits} == edits

    def owned(tid: str) -> tuple[object, ...]:
        with unit_of_work(c.engine) as s:
            row = s.get(LedgerTransaction, tid)
            return tuple(getattr(row, f) for f in OWNED) if row is not None else ()

    check()
    for step, (kind, *args) in enumerate(ops):
        if kind == "advance":
            bank.advance(pid, args[0])
        elif kind == "add":
            bank.mutate(pid, "add", cents=args[0] or 1, pending=args[1], name=f"NEW {step}")
        elif kind == "modify" and (tid := pick(args[0])):
            bank.mutate(pid, "modify", transaction_id=tid, name=args[1])
        elif kind == "remove" and (tid := pick(args[0])):
            bank.mutate(pid, "remove", transaction_id=tid)
            removed[tid] = edits.pop(tid, None)
        elif kind == "restore" and removed:
            tid = sorted(removed)[args[0] % len(removed)]
            bank.mutate(pid, "restore", transaction_id=tid)
            if (saved := removed.pop(tid)) is not None:
                edits[tid] = saved
        elif kind == "post" and (tid := pick(args[0], pending=True)):
            posted = bank.mutate(pid, "post", transaction_id=tid)
            if tid in edits and posted is not None:
                edits[posted["transaction_id"]] = edits.pop(tid)
        elif kind == "fault":
            bank.set_fault(pid, args[0], times=1, page=1 if args[0] == "mutation_during_pagination" else 2)
        elif kind == "edit":
            rows = sorted(ledger(c, user_id))
            if rows:
                tid = rows[args[0] % len(rows)]
                if tid in {t["transaction_id"] for t in bank.truth(pid)}:
                    edit_transaction(c, user_id, tid, note=f"note {step}", category=f"Cat {step}",
                                     tags=[f"t{step}", "x"], excluded=step % 2 == 0)  # fmt: skip
                    edits[tid] = owned(tid)
        elif kind == "login":
            bank.set_fault(pid, "login_required")
            before = ledger(c, user_id)
            assert sync_item(c, user_id, item_id, gateway=gateway, policy=FAST).status == "login_required"
            assert ledger(c, user_id) == before
            bank.repair(pid)
        elif kind == "sync":
            check()
    check()


def _staged(c: Container) -> int:
    with unit_of_work(c.engine) as s:
        return int(s.exec(select(func.count()).select_from(SyncStaged)).one())


# Where the kill lands, watched from outside: the run has begun (fetching, nothing staged yet); the first
# batch of STAGE_ROWS is committed to staging (fetching the rest); every page is staged (the one apply
# transaction is running). The killed run must never have committed in any of them.
PHASES = {"fetching": 0, "first batch staged": STAGE_ROWS, "all staged, applying": 8000}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_sync_killed_at_each_phase_then_rerun_is_exact(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path, phase: str
) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    demo_bank.generate_history(pid, 8000)  # 17 pages: long enough to be killed while fetching or applying
    demo_bank.advance(pid, 2)
    before = ledger(container, user_id)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "sync", "--email", "ada@example.com"],
        cwd=tmp_path,
        env=process_env(container, demo_bank),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(20_000):  # watch for the phase (not a speed assertion: the child is killed the moment it shows)
        with unit_of_work(container.engine) as s:
            begun = s.exec(select(SyncRun).where(SyncRun.trigger == "cli")).first() is not None
        if begun and _staged(container) >= PHASES[phase]:
            break
        assert proc.poll() is None, f"the sync finished before the phase {phase!r} was seen"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with unit_of_work(container.engine) as s:
        killed = s.exec(select(SyncRun).where(SyncRun.trigger == "cli")).one()
    assert killed.status != "ok" and ledger(container, user_id) == before  # killed before its commit: nothing kept
    result = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert result.status == "ok"
    assert_exact(container, demo_bank, user_id, pid)
    with unit_of_work(container.engine) as s:
        assert s.exec(select(SyncStaged)).first() is None
        statuses = [r.status for r in s.exec(select(SyncRun)).all()]
    assert "running" not in statuses  # the killed run is closed as interrupted by the next one


def _three_workers(c: Container, bank: DemoBankHandle, cwd: Path) -> list[str]:
    """Run three `worker --once` processes at once; each one's standard output (all three must succeed)."""
    cmd = [sys.executable, "-m", "services.cli", "worker", "--once", "--limit", "10"]
    env = process_env(c, bank)
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    return [out for out, _ in outs]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the next test races on both databases
def test_three_worker_processes_racing_sync_each_item_exactly_once(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path, db_url: str
) -> None:
    """Separate `worker --once` processes (SKIP LOCKED across connections, not threads of one process)."""
    users = [make_user(container, f"w{i}@example.com") for i in range(3)]
    items = [link_item(container, gateway, u, institution=ins) for u in users for ins in ("ins_demo_1", "ins_demo_2")]
    for _, pid in items:
        demo_bank.set_fault(pid, "delay", seconds=0.3)  # each sync takes a while: the workers overlap
    outs = _three_workers(container, demo_bank, tmp_path)
    lines = [line for out in outs for line in out.splitlines() if ": ok, " in line]
    assert len(lines) == len(items)  # six syncs between them, none twice
    per_worker = [sum(": ok, " in line for line in out.splitlines()) for out in outs]
    assert sum(n > 0 for n in per_worker) >= 2, per_worker  # they really shared the queue (here: 2, 2, 2)
    with unit_of_work(container.engine) as s:
        runs = s.exec(select(SyncRun.item_id)).all()
    assert sorted(map(str, runs)) == sorted(str(item_id) for item_id, _ in items)
    for u, (_, pid), (_, pid2) in zip(users, items[::2], items[1::2], strict=True):
        assert ledger(container, u) == truth(demo_bank, pid) | truth(demo_bank, pid2)


@pytest.mark.slow
def test_worker_processes_racing_over_news_sync_each_item_once_and_tell_each_user_once(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path
) -> None:
    """On both databases (an operator may start `worker` beside the app on SQLite too): three processes race over six
    due banks that each have a new transaction. Every item is synced once, the ledger is the bank's, and each user gets
    one digest (the second bank's news waits for the next one, an hour on) instead of none or one per worker."""
    users = [make_user(container, f"w{i}@example.com") for i in range(3)]
    banks = ("ins_demo_1", "ins_demo_2")
    items = [(u, *link_item(container, gateway, u, institution=ins)) for u in users for ins in banks]
    for user_id, item_id, pid in items:
        assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"  # history: no news
        demo_bank.mutate(pid, "add", cents=4_200, name=f"CORNER BAKERY {pid[-6:]}")
        demo_bank.set_fault(pid, "delay", seconds=0.3)  # each sync takes a while: the workers overlap
    with unit_of_work(container.engine) as s:  # due now by the children's own clock
        s.execute(update(ItemSyncState).values(next_due_at=datetime(2000, 1, 1, tzinfo=UTC)))
    outs = _three_workers(container, demo_bank, tmp_path)
    per_worker = [sum(": ok, 1 page(s), 1 added," in line for line in out.splitlines()) for out in outs]
    assert sum(per_worker) == len(items) and sum(n > 0 for n in per_worker) >= 2, outs  # shared, none twice
    with unit_of_work(container.engine) as s:
        scheduled = s.exec(select(SyncRun.item_id, SyncRun.status).where(SyncRun.trigger == "schedule")).all()
        waiting = s.exec(select(DigestItem.user_id)).all()
    assert sorted((str(i), status) for i, status in scheduled) == sorted((str(i), "ok") for _, i, _ in items)
    for user_id in users:
        mine = [truth(demo_bank, pid) for u, _, pid in items if u == user_id]
        assert ledger(container, user_id) == mine[0] | mine[1]
    with unit_of_work(container.engine) as s:  # no duplicate row behind any of them
        rows = s.exec(select(func.count()).select_from(LedgerTransaction)).one()
    assert rows == sum(len(truth(demo_bank, pid)) for *_, pid in items)
    mails = [message_from_bytes(f.read_bytes()) for f in container.settings.outbox_dir.glob("*.eml")]
    assert sorted(str(m["To"]) for m in mails) == sorted(f"w{i}@example.com" for i in range(3))  # one each
    assert all(str(m["Subject"]).startswith("finsync: 1 new transaction") for m in mails)
    assert sorted(map(str, waiting)) == sorted(map(str, users))  # each user's other bank: in the next digest
