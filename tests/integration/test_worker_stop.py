"""Stopping a long-running worker (systemd, Kubernetes, Ctrl-C) lets the sync in hand finish and claims no more."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from models import ItemSyncState
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.plaid_client import PlaidGateway
from tests.integration.sync_helpers import ledger, make_user, process_env, signal_mid_sync, slow_items, sync_runs, truth


@pytest.mark.slow
def test_sigterm_lets_the_sync_in_hand_finish_and_claims_nothing_more(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path
) -> None:
    user_id = make_user(container)
    items = slow_items(container, gateway, demo_bank, user_id)  # a sync takes a few seconds: there is a job in hand
    worker = signal_mid_sync(container, demo_bank, ["worker", "--tick", "60"], signal.SIGTERM, tmp_path)
    out, err = worker.stdout, worker.stderr
    assert worker.returncode == 0, err[-2000:]
    assert "SIGTERM: stopping after the job in hand" in out and out.rstrip().endswith("stopped")
    assert sum(": ok, " in line for line in out.splitlines()) == 1  # the job in hand finished; no second claimed

    (run,) = sync_runs(container)
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
