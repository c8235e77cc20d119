"""Stopping a long-running worker (systemd, Kubernetes, Ctrl-C) lets the sync in hand finish and claims no more."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from models import ItemSyncState, SyncRun
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.plaid_client import PlaidGateway
from tests.integration.sync_helpers import ledger, link_item, make_user, process_env, truth


def _runs(c: Container) -> list[SyncRun]:
    with unit_of_work(c.engine) as s:
        runs = list(s.exec(select(SyncRun)).all())
        s.expunge_all()
    return runs


@pytest.mark.slow
def test_sigterm_lets_the_sync_in_hand_finish_and_claims_nothing_more(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path
) -> None:
    user_id = make_user(container)
    items = [link_item(container, gateway, user_id, institution=ins) for ins in ("ins_demo_1", "ins_demo_2")]
    for _, pid in items:
        demo_bank.set_fault(pid, "delay", seconds=0.5)  # a sync takes a few seconds: there is a job in hand
    worker = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "worker", "--tick", "60"],
        cwd=tmp_path,
        env=process_env(container, demo_bank),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(r.status == "running" for r in _runs(container)):  # the first job is under way
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never started a sync"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-2000:]
    assert "SIGTERM: stopping after the job in hand" in out and out.rstrip().endswith("stopped")
    assert sum(": ok, " in line for line in out.splitlines()) == 1  # the job in hand finished; no second claimed

    (run,) = _runs(container)
    assert run.status == "ok"
    done = {item_id for item_id, _ in items if item_id == run.item_id}
    with unit_of_work(container.engine) as s:
        leases = [st.lease_owner for st in s.exec(select(ItemSyncState)).all()]
    assert leases and all(owner is None for owner in leases)  # nothing left held for a lease to expire
    (synced_pid,) = [pid for item_id, pid in items if item_id in done]
    (waiting_pid,) = [pid for item_id, pid in items if item_id not in done]
    assert ledger(container, user_id) == truth(demo_bank, synced_pid)  # applied whole; the other not begun

    again = subprocess.run(  # noqa: PLW1510 - the next worker takes the job the stopped one left
        [sys.executable, "-m", "services.cli", "worker", "--once"],
        cwd=tmp_path,
        env=process_env(container, demo_bank),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert ledger(container, user_id) == truth(demo_bank, synced_pid) | truth(demo_bank, waiting_pid)
