"""Self-check: replay an item's whole history from Plaid and compare it with the ledger.

After a sync, the ledger should hold exactly what a first sync from an empty cursor would build
(security bar M9). A verification syncs, fetches every page again from the empty cursor into
staging (the sync's own fetch, so memory stays flat), and finds in SQL the transactions missing from
the ledger, extra in it, or different in a field Plaid owns (user edits are not compared). A
difference is confirmed by a second sync and replay, so changes that reach the bank between the
two steps are not reported. The replay is recorded as a sync run with the trigger ``verify``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from models import PlaidItem, SyncRun
from services.banking import get_access_token
from services.container import Container
from services.db import unit_of_work
from services.errors import NotFound
from services.plaid_client import PlaidGateway
from services.plaid_errors import PlaidError
from services.plaid_events import calls_for
from services.sync_apply import PLAID_FIELDS
from services.sync_bulk import staged_column
from services.sync_engine import sync_item
from services.sync_fetch import fetch
from services.sync_run import LeaseLost, RunCounters
from services.sync_state import acquire, release, start_run, worker_name
from services.sync_store import Sql, drop_staging
from services.sync_types import RetryPolicy, default_policy, explained

SHOWN = 20  # transaction ids listed per kind of difference
VerifyStatus = Literal["verified", "differs", "failed", "already_syncing"]


@dataclass(frozen=True)
class Differences:
    """What the replay and the ledger disagree on: counts, and the first ids of each kind."""

    checked: int = 0
    missing: int = 0
    extra: int = 0
    differing: int = 0
    examples: tuple[tuple[str, str], ...] = ()  # (kind, transaction id)
    set_aside: int = 0  # unreadable at the bank, so in neither the replay nor the ledger (sync_quarantine)

    @property
    def none(self) -> bool:
        return self.missing == self.extra == self.differing == 0


@dataclass(frozen=True)
class VerifyResult:
    """How one item's verification ended."""

    item_id: uuid.UUID
    institution_name: str
    status: VerifyStatus
    found: Differences = Differences()
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def summary(self) -> str:
        """One line for the CLI."""
        name = self.institution_name or str(self.item_id)
        f = self.found
        if self.status == "verified":
            aside = f" ({f.set_aside} unreadable one(s) set aside)" if f.set_aside else ""
            return f"{name}: verified, the ledger equals the bank's {f.checked} transaction(s){aside}"
        if self.status == "differs":
            ids = ", ".join(f"{kind} {tid}" for kind, tid in f.examples)
            return f"{name}: DIFFERS: {f.missing} missing, {f.extra} extra, {f.differing} different ({ids})"
        return f"{name}: {self.status.replace('_', ' ')}: {self.message}"


def verify_item(
    c: Container,
    user_id: uuid.UUID,
    item_id: uuid.UUID,
    *,
    gateway: PlaidGateway | None = None,
    policy: RetryPolicy | None = None,
    trigger: str = "cli",
) -> VerifyResult:
    """Sync the item, replay it from the empty cursor and compare; a difference is confirmed once more.

    ``trigger`` names the syncs in Sync history (``cli`` for `sync --verify`, ``check`` for the scheduler's);
    the replays are always ``verify``.
    """
    result: VerifyResult | None = None
    for _ in range(2):
        synced = sync_item(c, user_id, item_id, explicit=True, trigger=trigger, gateway=gateway, policy=policy)
        if not synced.ok or synced.status == "preparing":
            status: VerifyStatus = "already_syncing" if synced.status == "already_syncing" else "failed"
            return VerifyResult(item_id, synced.institution_name, status, message=synced.message or synced.status)
        result = _replay_and_compare(
            c, user_id, item_id, gateway or c.plaid, policy or default_policy(c.settings.effective_plaid_env)
        )
        if result.status != "differs":
            return result
    assert result is not None
    return result


def _replay_and_compare(
    c: Container, user_id: uuid.UUID, item_id: uuid.UUID, gw: PlaidGateway | None, policy: RetryPolicy
) -> VerifyResult:
    owner, now = worker_name("verify"), c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        item = session.get(PlaidItem, item_id)
        if item is None or item.user_id != user_id:
            raise NotFound("No such bank connection.")
        name = item.institution_name
        if gw is None:
            return VerifyResult(item_id, name, "failed", message=explained("NOT_CONFIGURED"))
        if not acquire(session, item, owner, now):
            return VerifyResult(item_id, name, "already_syncing", message="This connection is syncing; try again.")
        run_row = start_run(session, item, owner, "verify", now)  # also closes runs a killed process left open
    run = RunCounters(run_row.id, item_id, owner, None)
    result = VerifyResult(item_id, name, "failed", message="The verification did not finish.")
    try:
        token = get_access_token(c, user_id, item_id)
        with calls_for(user_id, item_id):
            cursor = fetch(c, gw, token, run, "", policy)
        if cursor is None:
            result = VerifyResult(item_id, name, "failed", message=explained("PREPARING"))
        else:
            with unit_of_work(c.engine) as session:
                found = compare(Sql(session.connection()), user_id, item_id, run.run_id)
            result = VerifyResult(item_id, name, "verified" if found.none else "differs", found)
    except PlaidError as exc:
        result = VerifyResult(item_id, name, "failed", message=explained(exc.code, exc.error_type))
    except LeaseLost:
        result = VerifyResult(item_id, name, "already_syncing", message="Another sync took over; try again.")
    finally:
        _finish(c, run, result)
        release(c.engine, item_id, owner)
    return result


def _finish(c: Container, run: RunCounters, result: VerifyResult) -> None:
    """Record the replay as a run (ok, or failed with LEDGER_DIFFERS) and forget its staged rows."""
    with unit_of_work(c.engine, immediate=True) as session:
        drop_staging(Sql(session.connection()), [run.run_id])
        row = session.get(SyncRun, run.run_id)
        if row is None:
            return
        row.finished_at, row.pages, row.retries = c.clock(), run.pages, run.retries
        row.request_ids = ",".join(run.request_ids)
        row.status = "ok" if result.ok else "failed"
        row.error_code = "LEDGER_DIFFERS" if result.status == "differs" else None
        row.message = (result.summary() if result.status == "differs" else result.message)[:500]
        session.add(row)


def compare(sql: Sql, user_id: uuid.UUID, item_id: uuid.UUID, run_id: uuid.UUID) -> Differences:
    """Staged replay of ``run_id`` against the item's ledger rows, in SQL."""
    uid, iid, rid = sql.uid(user_id), sql.uid(item_id), sql.uid(run_id)
    checked = sql.run("SELECT count(*) FROM sync_staging WHERE run_id = ?", (rid,)).scalar_one()
    missing = (
        "FROM sync_staging s LEFT JOIN transactions t ON t.plaid_transaction_id = s.plaid_transaction_id "
        "AND t.user_id = ? WHERE s.run_id = ? AND t.plaid_transaction_id IS NULL",
        (uid, rid),
    )
    # Kept on purpose, so not "extra": a transaction whose newer version was set aside (unreadable), the hold of a
    # posted charge set aside, and the history of an account the bank no longer lists.
    extra = (
        "FROM transactions t LEFT JOIN sync_staging s ON s.run_id = ? "
        "AND s.plaid_transaction_id = t.plaid_transaction_id WHERE t.item_id = ? AND t.user_id = ? AND s.seq IS NULL "
        "AND t.plaid_transaction_id NOT IN (SELECT q.plaid_transaction_id FROM sync_quarantine q WHERE q.item_id = ?) "
        "AND t.plaid_transaction_id NOT IN (SELECT q.pending_transaction_id FROM sync_quarantine q "
        "WHERE q.item_id = ? AND q.pending_transaction_id IS NOT NULL) "
        "AND t.account_id NOT IN (SELECT a.id FROM bank_accounts a WHERE a.disconnected_at IS NOT NULL)",
        (rid, iid, uid, iid, iid),
    )
    distinct = "IS NOT" if sql.sqlite else "IS DISTINCT FROM"
    ledger = ["a.plaid_account_id", *(f't."{f}"' for f in PLAID_FIELDS[1:])]
    unequal = " OR ".join(
        f"{mine} {distinct} {staged_column(sql, f)}" for mine, f in zip(ledger, PLAID_FIELDS, strict=True)
    )
    differing = (
        "FROM sync_staging s JOIN transactions t ON t.plaid_transaction_id = s.plaid_transaction_id "
        f"JOIN bank_accounts a ON a.id = t.account_id WHERE s.run_id = ? AND t.user_id = ? AND ({unequal})",
        (rid, uid),
    )
    counts, examples = [], []
    for kind, (body, params), column in (
        ("missing", missing, "s"),
        ("extra", extra, "t"),
        ("different", differing, "t"),
    ):
        counts.append(int(sql.run(f"SELECT count(*) {body}", params).scalar_one()))
        ids = sql.run(f"SELECT {column}.plaid_transaction_id {body} LIMIT {SHOWN}", params).scalars()
        examples += [(kind, str(i)) for i in ids]
    aside = sql.run("SELECT count(*) FROM sync_quarantine WHERE item_id = ? AND user_id = ?", (iid, uid)).scalar_one()
    return Differences(int(checked), counts[0], counts[1], counts[2], tuple(examples), int(aside))
