"""CLI commands of the sync bot (a contract for cron and operators; keep the names):

``sync --email E`` | ``sync --all`` (``--verify`` also checks the ledger against a full replay), ``worker [--once]``;
``status`` (for monitoring: 0 when the bot keeps up, 1 when due syncs wait, banks fall behind or a worker died
mid-sync). ``export transactions`` is in services/export_cli.py.
Exit codes: 0 all requested items synced (or not ready yet), 1 any failed (with ``--verify``: 1 when any
item differs from its replay or could not be checked). An item another process is syncing is waited for
(``--wait``, 300 s by default) and then synced here, so the exit code speaks for every item; one still
busy when the wait ends counts as not synced. One broken item
never stops the others: each gets its line, then the exit code says whether any failed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from sqlmodel import col, select

from models import PlaidItem
from services import mail_queue
from services.bot_health import current_health
from services.container import Container, command_container
from services.db import unit_of_work
from services.errors import FinsyncError
from services.jobs import run_due_jobs
from services.notify import flush_digests_quietly
from services.retention import DailyPurge
from services.revocations import retry_quietly
from services.sync import resolve_user, sync_item
from services.sync_state import worker_name
from services.sync_types import SyncResult
from services.sync_verify import VerifyResult, verify_item

log = logging.getLogger("finsync.cli")
BUSY = "already_syncing"
POLL_SECONDS = 2.0


class _HasStatus(Protocol):
    @property
    def status(self) -> str: ...


R = TypeVar("R", bound=_HasStatus)


def _container() -> Container:
    return command_container()


def _report(results: list[SyncResult]) -> int:
    for r in results:
        print(r.summary())
    failed = [r for r in results if r.status in ("failed", "login_required", BUSY)]
    elsewhere = sum(r.status == BUSY for r in results)
    tail = f"; {elsewhere} still syncing in another process" if elsewhere else ""
    print(f"{len(results) - len(failed)} of {len(results)} connection(s) synced{tail}")
    return 1 if failed else 0


def _nap(seconds: float) -> None:
    """The wait between looks at a busy item (its own name, so a test can replace it and no other sleep)."""
    time.sleep(seconds)


def _after_others(
    run: Callable[[uuid.UUID, uuid.UUID, str], R], pairs: Sequence[tuple[uuid.UUID, uuid.UUID, str]], wait: float
) -> list[R]:
    """``run`` each item; those another process holds are tried again every few seconds for up to ``wait`` seconds."""
    results = [run(*pair) for pair in pairs]
    deadline = time.monotonic() + wait
    busy = sum(r.status == BUSY for r in results)
    if busy and wait > 0:
        print(f"waiting for {busy} connection(s) syncing in another process (up to {wait:g} s)", flush=True)
    while busy and time.monotonic() < deadline:
        _nap(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        results = [run(*pair) if r.status == BUSY else r for r, pair in zip(results, pairs, strict=True)]
        busy = sum(r.status == BUSY for r in results)
    return results


def _sync_one(c: Container, user_id: uuid.UUID, item_id: uuid.UUID, name: str) -> SyncResult:
    """Sync one item; an exception becomes this item's failed line instead of ending ``sync --all``."""
    try:
        return sync_item(c, user_id, item_id, explicit=True, trigger="cli")
    except Exception as exc:
        log.exception("sync of item %s failed", item_id)
        # our errors carry a message for the operator; anything else may hold data that belongs in the log only
        msg = str(exc) if isinstance(exc, FinsyncError) else f"unexpected {type(exc).__name__}; see the log above."
        return SyncResult(item_id, "failed", name, error_code="INTERNAL_ERROR", message=msg)


def _sync(args: argparse.Namespace) -> int:
    c = _container()
    with unit_of_work(c.engine) as session:
        q = select(PlaidItem.user_id, PlaidItem.id, PlaidItem.institution_name).order_by(
            col(PlaidItem.user_id), col(PlaidItem.created_at)
        )
        if not args.all:
            q = q.where(PlaidItem.user_id == resolve_user(c, args.email))
        pairs = session.exec(q).all()
    if not pairs:
        print("no bank connections to sync")
        return 0
    if args.verify:
        return _report_verified(_after_others(lambda u, i, _: verify_item(c, u, i), pairs, args.wait))
    code = _report(_after_others(lambda u, i, n: _sync_one(c, u, i, n), pairs, args.wait))
    if flush_digests_quietly(c):  # cron's syncs: a digest that waited for its hour goes out now
        mail_queue.send_quietly(c)
    return code


def _report_verified(results: list[VerifyResult]) -> int:
    for r in results:
        print(r.summary())
    bad = [r for r in results if not r.ok]
    print(f"{len(results) - len(bad)} of {len(results)} connection(s) verified")
    return 1 if bad else 0


def _pass(
    c: Container,
    worker_id: str,
    limit: int,
    purge: DailyPurge,
    failed: list[SyncResult],
    stop: threading.Event | None = None,
) -> int:
    """Run due sync jobs (a line per item; failures added to ``failed``), retry due mail and Plaid revocations,
    purge old rows daily (none raises); return jobs run."""

    def heard(result: SyncResult) -> None:
        print(result.summary(), flush=True)
        if not result.ok and result.status != BUSY:  # a bank another process is syncing is not a failure here
            failed.append(result)

    try:
        return run_due_jobs(c, worker_id=worker_id, limit=limit, on_result=heard, stop=stop)
    finally:
        flush_digests_quietly(c)  # a digest that waited for its hour
        if mailed := mail_queue.send_quietly(c):
            print(f"sent {mailed} queued email(s)")
        if revoked := retry_quietly(c):
            print(f"revoked {revoked} bank connection(s) at Plaid")
        if purged := sum((purge(c) or {}).values()):
            print(f"purged {purged} row(s) past retention")


def _worker(args: argparse.Namespace) -> int:
    c = _container()
    worker_id, purge = worker_name("worker"), DailyPurge()
    failed: list[SyncResult] = []
    if args.once:  # for cron: exit 1 when any connection failed, like `sync`
        ran = _pass(c, worker_id, args.limit, purge, failed)
        print(f"ran {ran} job(s)" + (f"; {len(failed)} failed" if failed else ""))
        return 1 if failed else 0
    stop = threading.Event()

    def finish_then_stop(signum: int, _frame: object) -> None:
        if stop.is_set():  # asked twice: stop now (a sync cut off keeps nothing, and is retried after its lease)
            raise KeyboardInterrupt
        stop.set()
        print(f"{signal.Signals(signum).name}: stopping after the job in hand (again to stop now)", flush=True)

    asked = {sig: signal.signal(sig, finish_then_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"worker {worker_id} running; Ctrl-C or SIGTERM stops it after the job in hand", flush=True)
    try:
        while not stop.is_set():
            if _pass(c, worker_id, args.limit, purge, failed, stop) < args.limit:
                stop.wait(args.tick)
            failed.clear()
    finally:
        for sig, handler in asked.items():
            signal.signal(sig, handler)
    print(f"worker {worker_id} stopped", flush=True)
    return 0


def _status(args: argparse.Namespace) -> int:
    c = _container()  # the database answers and its schema is the newest, or the command stops with exit 2
    with unit_of_work(c.engine) as session:
        bot = current_health(c, session)
    last = f"{bot.last_finished_at:%Y-%m-%d %H:%M} UTC" if bot.last_finished_at else "never"
    print("database: answers, schema at the newest revision")
    problems = []
    if (waited := bot.waiting_for) is not None:
        problems.append(f"{bot.due} due sync(s), the oldest waiting {int(waited.total_seconds() // 60)} min")
    if bot.stalled:
        problems.append(f"{bot.stalled} sync(s) whose worker died (the next pass takes them over)")
    if bot.behind:
        hours = bot.behind_after.total_seconds() / 3600
        problems.append(f"{bot.behind} connected bank(s) with no good sync for {hours:g} h")
    state = "keeping up" if bot.keeping_up else "; ".join(problems)
    print(
        f"sync bot: {state} ({bot.due} due, {len(bot.running)} running, {bot.later} queued for later; "
        f"{bot.done_24h} done and {bot.failed_24h} failed in 24 h; last job finished {last})"
    )
    print(f"banks: {bot.banks} connection(s), {bot.behind} behind, {bot.need_owner} waiting for their owner")
    return 0 if bot.keeping_up else 1


def _seconds_from(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: seconds from ``low`` to ``high`` (below, the worker spun on the database; inf or a huge
    number overflowed its wait with a traceback)."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of seconds from {low:g} to {high:g}")
        return value

    return seconds


def _jobs_per_pass(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of jobs from 1 to 1000")
    return int(text)


def register_sync(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sync``, ``worker`` and ``status``."""
    sync = sub.add_parser("sync", help="sync bank connections now")
    who = sync.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the user's email address")
    who.add_argument("--all", action="store_true", help="every user's connections")
    sync.add_argument(
        "--verify",
        action="store_true",
        help="sync, then replay each connection from Plaid's start and report any transaction the ledger "
        "lacks, has in excess or holds differently (reads every transaction again: slow on long histories)",
    )
    sync.add_argument(
        "--wait",
        type=_seconds_from(0, 86400),
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for a connection another process is syncing before counting it as not synced "
        "(default 300; 0 does not wait)",
    )
    sync.set_defaults(
        handler=_sync,
        on_interrupt="nothing is lost (each connection synced is committed whole; the one in hand, if any, was "
        "rolled back and is due again); run the same command again to sync the rest",
    )
    worker = sub.add_parser("worker", help="run queued and scheduled syncs (several may run at once on PostgreSQL)")
    worker.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    worker.add_argument("--limit", type=_jobs_per_pass, default=10, help="jobs per pass, 1 to 1000 (default 10)")
    worker.add_argument(
        "--tick", type=_seconds_from(0.5, 3600), default=30.0, help="seconds between passes, 0.5 to 3600 (default 30)"
    )
    worker.set_defaults(
        handler=_worker,
        on_interrupt="worker stopped at once; nothing is lost (the sync in hand, if any, was rolled back and runs "
        "again on a later pass); start the worker again to carry on",
    )
    says = "is the sync bot keeping up? (exit 1 when syncs wait, banks fall behind or a worker died)"
    status = sub.add_parser("status", help=says, description=says.capitalize())
    status.set_defaults(handler=_status)
