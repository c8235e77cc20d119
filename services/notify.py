"""Email notifications of the sync bot, per the user's preferences (Settings page)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from models import DigestItem, DigestState, NotificationPrefs, User
from services import mail_queue
from services.banking_views import status_message
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError
from services.money import decimal_text, threshold_minor
from services.notices import Mail
from services.sync_checks import LowBalance

log = logging.getLogger("finsync.notify")


@dataclass(frozen=True)
class NotificationSettings:
    """What a user wants to hear about; thresholds in minor units (cents), None when off."""

    digest: bool = True
    large_transaction_minor: int | None = None
    low_balance_minor: int | None = None
    connection_alerts: bool = True


@dataclass(frozen=True)
class NewTransaction:
    """A transaction a sync brought in, as a notification shows it."""

    date: date
    name: str
    amount_minor: int
    iso_currency_code: str | None
    transaction_id: str = ""
    news: bool = True  # False: told of before (its pending twin), and listed only if it is large now


def get_notification_prefs(c: Container, user_id: uuid.UUID) -> NotificationSettings:
    """The user's preferences (defaults until saved: digest and connection alerts on, thresholds off)."""
    with unit_of_work(c.engine) as session:
        return read_prefs(session, user_id)


def read_prefs(session: Session, user_id: uuid.UUID, *, lock: bool = False) -> NotificationSettings:
    """The user's preferences in the caller's unit of work; ``lock``: a save waits until it ends (a sync's apply
    follows what the user chose until it commits, and a save after it applies to the next one)."""
    row = session.get(NotificationPrefs, user_id, with_for_update=True if lock else None)
    if row is None:
        return NotificationSettings()
    return NotificationSettings(row.digest, row.large_transaction_minor, row.low_balance_minor, row.connection_alerts)


def set_notification_prefs(c: Container, user_id: uuid.UUID, prefs: NotificationSettings) -> NotificationSettings:
    """Save the user's preferences; a large-transaction threshold must be positive."""
    if prefs.large_transaction_minor is not None and prefs.large_transaction_minor <= 0:
        raise InputError("The large-transaction threshold must be more than zero.")
    with unit_of_work(c.engine, immediate=True) as session:
        row = session.get(NotificationPrefs, user_id) or NotificationPrefs(user_id=user_id)
        row.digest, row.connection_alerts = prefs.digest, prefs.connection_alerts
        if not prefs.digest:  # what waited for the next digest is not sent later either
            session.execute(delete(DigestItem).where(col(DigestItem.user_id) == user_id))
        row.large_transaction_minor, row.low_balance_minor = prefs.large_transaction_minor, prefs.low_balance_minor
        row.updated_at = c.clock()
        session.add(row)
    return prefs


def is_large(amount_minor: int, currency: str | None, threshold: int | None) -> bool:
    """At or above the large-transaction threshold, money in or out, in the currency's own units (500.00 is 500 USD
    or 500 JPY)."""
    return threshold is not None and abs(amount_minor) >= threshold_minor(threshold, currency)


def money(minor: int, currency: str | None) -> str:
    """``-1,234.50 USD`` from minor units, in the currency's own decimals (``1,200 JPY``)."""
    return f"{decimal_text(minor, currency, grouped=True)} {currency or ''}".strip()


def _queue(session: Session, c: Container, user_id: uuid.UUID, subject: str, body: str) -> list[uuid.UUID]:
    """Queue one notification for an active user in the caller's unit of work: it commits, or not, with the news."""
    user = session.get(User, user_id)
    if user is None or user.status != "active":
        return []
    footer = f"\n\nChange what finsync emails you about in Settings: {c.settings.base_url.rstrip('/')}/settings\n"
    # one prefix on every notification, so a mail filter can sort them
    mail = Mail(user.email, f"finsync: {_plain(subject, 200)}", body + footer, "notification")
    return [mail_queue.enqueue(session, c, mail, user_id=user_id)]


def queue_after_sync(
    session: Session,
    c: Container,
    user_id: uuid.UUID,
    institution: str,
    news: tuple[list[NewTransaction], int, list[LowBalance]],
    prefs: NotificationSettings,
    *,
    initial: bool = False,
    item_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Queue the digest, large-transaction and low-balance emails a sync calls for, in the sync's own transaction.

    ``news``: the new transactions to show, how many there were, and the accounts now low. ``initial``: the
    connection's first sync brought its past history, which is not news: no digest and no large-transaction
    alerts for it (low balances still count). ``item_id``: the bank they came from (its waiting digest lines
    go if it is removed).
    """
    new, added_total, low = news
    institution = _plain(institution)  # the bank's name may come from the browser's Link metadata: one line
    new = [] if initial else sorted(new, key=lambda t: t.date, reverse=True)  # newest first, as a bank lists them
    added_total = 0 if initial else added_total
    queued: list[uuid.UUID] = []
    shown = [t for t in new if t.news][:DIGEST_LINES]
    if prefs.digest and added_total and shown:  # the digest waits for the next one an hour, then covers every bank
        now = c.clock()
        state = _digest_state(session, user_id)
        rest = added_total - len(shown)  # the last line listed stands for those not listed as well
        session.add_all(
            DigestItem(user_id=user_id, item_id=item_id, institution=institution[:128], date=t.date,
                       name=t.name[:512], amount_minor=t.amount_minor, currency=t.iso_currency_code, added_at=now,
                       count=1 + (rest if n == len(shown) - 1 else 0))
            for n, t in enumerate(shown)
        )  # fmt: skip
        session.flush()
        queued += _digest_if_due(session, c, state, now)
    limit = prefs.large_transaction_minor
    large = [t for t in new if is_large(t.amount_minor, t.iso_currency_code, limit)]
    if large and limit is not None:
        lines = [
            f"  {t.date.isoformat()}  {money(t.amount_minor, t.iso_currency_code):>16}  {_plain(t.name)}" for t in large
        ]
        amount = money(limit, None)
        body = f"These transactions at {institution} are at or above your alert amount of {amount}:\n\n"
        queued += _queue(session, c, user_id, f"large transaction at {institution}", body + "\n".join(lines))
    floor = money(prefs.low_balance_minor, None) if prefs.low_balance_minor is not None else ""
    for acct in low if floor else []:
        balance = money(acct.balance_minor, acct.iso_currency_code)
        which = "available balance" if acct.available else "balance"  # the one compared, named as Accounts names it
        body = f"The {which} of {_plain(acct.name)} at {institution} is {balance}, below your alert amount of {floor}."
        queued += _queue(session, c, user_id, f"low balance on {_plain(acct.name)}", body)
    return queued


DIGEST_EVERY = timedelta(hours=1)  # at most one digest email an hour: a busy bank (or three) is one email
DIGEST_LINES = 20  # the newest transactions a digest lists; the rest are counted


def _digest_state(session: Session, user_id: uuid.UUID) -> DigestState:
    """The user's digest row, locked: two syncs of one user's banks at once add to it one after the other."""
    table = DigestState.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    session.execute(insert.values(user_id=user_id).on_conflict_do_nothing(index_elements=["user_id"]))
    state = session.get(DigestState, user_id, with_for_update=True, populate_existing=True)
    assert state is not None
    return state


def _digest_if_due(session: Session, c: Container, state: DigestState, now: datetime) -> list[uuid.UUID]:
    """Queue the digest of what waits, if the last one went out an hour ago or more (caller holds the row)."""
    if state.sent_at is not None and now - state.sent_at < DIGEST_EVERY:
        return []
    items = session.exec(
        select(DigestItem)
        .where(col(DigestItem.user_id) == state.user_id)
        .order_by(col(DigestItem.date).desc(), col(DigestItem.added_at).desc())
    ).all()
    if not items:
        return []
    total, banks = sum(i.count for i in items), sorted({i.institution for i in items})
    session.execute(delete(DigestItem).where(col(DigestItem.user_id) == state.user_id))
    state.sent_at = now
    session.add(state)
    shown = items[:DIGEST_LINES]
    sections = []
    for bank in banks:
        lines = [f"  {i.date.isoformat()}  {money(i.amount_minor, i.currency):>16}  {_plain(i.name)}"
                 for i in shown if i.institution == bank]  # fmt: skip
        if lines:
            sections.append((f"{_plain(bank)}:\n" if len(banks) > 1 else "") + "\n".join(lines))
    more = f"\n\n  ... and {total - len(shown)} more" if total > len(shown) else ""
    where = f"from {_plain(banks[0])}" if len(banks) == 1 else f"from {len(banks)} banks"
    news = f"{total} new transaction{'' if total == 1 else 's'} {where}"
    body = f"finsync synced {news}:\n\n" + "\n\n".join(sections) + more
    return _queue(session, c, state.user_id, news, body)


def flush_digests(c: Container) -> int:
    """Queue every digest that waited for its hour (syncs since the last one brought news); return how many.

    The scheduler and the workers call it each pass; ``sync`` from the command line too, after its syncs.
    """
    now = c.clock()
    with unit_of_work(c.engine) as session:
        due = session.exec(
            select(DigestItem.user_id)
            .join(DigestState, col(DigestState.user_id) == col(DigestItem.user_id), isouter=True)
            .where(or_(col(DigestState.sent_at).is_(None), col(DigestState.sent_at) <= now - DIGEST_EVERY))
            .distinct()
        ).all()
    sent = 0
    for user_id in due:
        with unit_of_work(c.engine, immediate=True) as session:
            state = _digest_state(session, user_id)
            prefs = session.get(NotificationPrefs, user_id)
            if prefs is not None and not prefs.digest:  # turned off while news waited: nothing to send
                session.execute(delete(DigestItem).where(col(DigestItem.user_id) == user_id))
                continue
            ids = _digest_if_due(session, c, state, now)
        mail_queue.after_commit(c, ids)
        sent += bool(ids)
    return sent


def flush_digests_quietly(c: Container) -> int:
    """``flush_digests`` for the scheduler and the workers: a failure is logged, never raised (the digest waits)."""
    try:
        return flush_digests(c)
    except Exception:  # the database may be away: the news waits for the next pass
        log.exception("queueing digests failed")
        return 0


def queue_connection_alert(
    session: Session,
    c: Container,
    user_id: uuid.UUID,
    institution: str,
    status: str = "login_required",
    code: str | None = None,
    until: datetime | None = None,
) -> list[uuid.UUID]:
    """Queue, in the caller's transaction, the email telling the user a bank connection needs them (once, when it
    starts): sign in again, renew consent before ``until``, choose new accounts, or relink after access was
    revoked; the words are the Accounts page's. Nothing when the user turned these alerts off."""
    prefs = session.get(NotificationPrefs, user_id)
    if prefs is not None and not prefs.connection_alerts:
        return []
    what = status_message(status, code, until)
    body = f"{_plain(institution)}: {what}\nOpen finsync and go to Accounts to do it."
    return _queue(session, c, user_id, f"a connection needs your attention: {_plain(institution)}", body)


def _plain(text: str, limit: int = 120) -> str:
    """One line of text: no control characters (an email header or body cannot be split by a merchant or a bank)."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]
