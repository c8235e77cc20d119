"""Pure change planning: staged Plaid changes plus the rows they touch -> the writes that apply them.

No database here. Rows use plain values (ISO date strings, ints, bools) so the planner is the same for
SQLite and PostgreSQL, and most of the sync logic is unit-tested without a database.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.plaid_types import Transaction

ADDED, MODIFIED, REMOVED = 0, 1, 2

# Plaid's fields, in the column order used by staging and the ledger; the user's fields are never here.
PLAID_FIELDS = (
    "plaid_account_id",
    "amount_minor",
    "iso_currency_code",
    "unofficial_currency_code",
    "date",
    "authorized_date",
    "name",
    "merchant_name",
    "pending",
    "pending_transaction_id",
    "category_primary",
    "category_detailed",
    "payment_channel",
)
_PENDING_ID = PLAID_FIELDS.index("pending_transaction_id")
# Fields whose change is worth showing the user (not the ids that tie a posted row to its pending twin).
HISTORY_FIELDS = tuple(f for f in PLAID_FIELDS if f not in ("pending_transaction_id",))

Values = tuple[Any, ...]


@dataclass(frozen=True)
class Edits:
    """What the user changed on a transaction."""

    category_override: str | None = None
    note: str | None = None
    tags: str | None = None
    excluded: bool = False
    user_edited_at: Any = None

    @property
    def any(self) -> bool:
        """True if the user changed anything."""
        return bool(self.category_override or self.note or self.tags or self.excluded)


NO_EDITS = Edits()


@dataclass(frozen=True)
class Staged:
    """One fetched change: ``values`` follows PLAID_FIELDS (empty for a removal)."""

    seq: int
    kind: int
    transaction_id: str
    values: Values = ()


@dataclass(frozen=True)
class Existing:
    """A ledger row as the planner needs it."""

    values: Values
    edits: Edits = NO_EDITS


@dataclass
class Plan:
    """The writes for one chunk, in the order the store applies them."""

    upserts: dict[str, tuple[Values, Edits]] = field(default_factory=dict)
    carry: list[tuple[str, Edits]] = field(default_factory=list)
    history: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    history_moves: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    tombstones: list[tuple[str, Edits]] = field(default_factory=list)
    tombstones_used: list[str] = field(default_factory=list)
    new: dict[str, Values] = field(default_factory=dict)  # rows new to the user (not a pending row posting)
    posted: dict[str, Values] = field(default_factory=dict)  # a pending row posting: its pending twin's values
    born: set[str] = field(default_factory=set)  # ids this chunk inserted, so a later delete nets out
    gone: dict[str, Existing] = field(default_factory=dict)  # ledger rows this chunk's removals deleted
    added: int = 0
    modified: int = 0
    removed: int = 0


def staged_values(t: Transaction) -> Values:
    """A gateway transaction as PLAID_FIELDS values."""
    return (
        t.account_id,
        t.amount_minor,
        t.iso_currency_code,
        t.unofficial_currency_code,
        t.date.isoformat(),
        t.authorized_date.isoformat() if t.authorized_date else None,
        t.name,
        t.merchant_name,
        t.pending,
        t.pending_transaction_id,
        t.category_primary,
        t.category_detailed,
        t.payment_channel,
    )


def referenced_ids(chunk: Iterable[Staged]) -> set[str]:
    """Every transaction id a chunk touches: its own ids and the pending ids its posted rows replace."""
    ids: set[str] = set()
    for s in chunk:
        ids.add(s.transaction_id)
        if s.values and s.values[_PENDING_ID]:
            ids.add(s.values[_PENDING_ID])
    return ids


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def plan_chunk(
    chunk: Sequence[Staged],
    existing: dict[str, Existing],
    tombstones: dict[str, Edits] | None = None,
    keep: Collection[str] = (),
) -> Plan:
    """Plan the writes for staged changes in ``seq`` order.

    ``existing`` holds the ledger rows for ``referenced_ids(chunk)``; ``tombstones`` the saved edits of
    removed pending transactions among them; ``keep`` pending ids whose removal waits (their posted twin
    was set aside as unreadable). None is modified. The counts are what changes in the ledger.
    """
    rows: dict[str, Existing | None] = dict(existing)
    saved = dict(tombstones or {})
    plan = Plan()
    for s in chunk:
        if s.kind == REMOVED:
            if s.transaction_id not in keep:
                _remove(plan, rows, saved, s.transaction_id)
            continue
        _upsert(plan, rows, saved, s)
    return plan


def _drop(plan: Plan, rows: dict[str, Existing | None], tid: str) -> None:
    """Delete a ledger row (one this chunk inserted nets out of ``added``)."""
    plan.deletes.append(tid)
    plan.upserts.pop(tid, None)
    plan.new.pop(tid, None)
    plan.posted.pop(tid, None)
    rows[tid] = None
    if tid in plan.born:
        plan.born.discard(tid)
        plan.added -= 1
    else:
        plan.removed += 1


def _remove(plan: Plan, rows: dict[str, Existing | None], saved: dict[str, Edits], tid: str) -> None:
    row = rows.get(tid)
    if row is None:
        return  # not in the ledger: nothing changes
    # Plaid may send a pending row's posted twin later (a later page or sync), and a bank may put a removed posted
    # row back under its own id: keep the edits and the Plaid history until then, so either comes back with them
    # and is not news again; the store forgets unedited tombstones after TWIN_WAIT. A row this chunk brought as news
    # was never the user's to see or edit: nothing to keep, and its return is news.
    if not (tid in plan.born and tid in plan.new):
        plan.tombstones.append((tid, row.edits))
        saved[tid] = row.edits
    if tid not in plan.born:
        plan.gone[tid] = row
    _drop(plan, rows, tid)


def _revive(plan: Plan, rows: dict[str, Existing | None], saved: dict[str, Edits], tid: str) -> Existing:
    """A row removed earlier in this chunk and sent again: it never leaves the ledger, edits and all."""
    row = plan.gone.pop(tid)
    plan.removed -= 1
    if tid in saved:
        _take_saved(plan, saved, tid)
    rows[tid] = row
    return row


def _take_saved(plan: Plan, saved: dict[str, Edits], tid: str) -> Edits:
    """Use up the saved edits of a removed pending row: one this chunk saved is never written, a stored one goes."""
    if any(t == tid for t, _ in plan.tombstones):
        plan.tombstones = [t for t in plan.tombstones if t[0] != tid]
    else:
        plan.tombstones_used.append(tid)
    return saved.pop(tid)


def _twin(
    plan: Plan, rows: dict[str, Existing | None], saved: dict[str, Edits], pending_id: str, tid: str
) -> tuple[Edits, bool]:
    """Take over the pending row posted ``tid`` replaces: its edits, and whether ``tid`` is still news."""
    twin = rows.get(pending_id)
    if twin is not None:
        news = pending_id in plan.new  # a pending row this chunk brought in passes its news on
        plan.history_moves.append((pending_id, tid))
        _drop(plan, rows, pending_id)  # the ledger never shows both
        return twin.edits, news
    if pending_id in saved:
        plan.history_moves.append((pending_id, tid))
        return _take_saved(plan, saved, pending_id), False
    return NO_EDITS, True


def _posting(
    plan: Plan, rows: dict[str, Existing | None], saved: dict[str, Edits], pending_id: str, tid: str, new: bool
) -> tuple[Edits, bool]:
    """``_twin`` for a posted row: its carried edits, whether it is news, and (in ``plan.posted``) the pending row it
    replaces, when the user was told of that one (the alerts compare the two amounts)."""
    before = rows.get(pending_id) or plan.gone.get(pending_id)  # unknown (None): an earlier sync's removed hold
    carried, news = _twin(plan, rows, saved, pending_id, tid)
    if new and not news and before is not None:
        plan.posted[tid] = before.values
    return carried, new and news


def _upsert(plan: Plan, rows: dict[str, Existing | None], saved: dict[str, Edits], s: Staged) -> None:
    tid, values = s.transaction_id, s.values
    current = rows.get(tid)
    if current is None and tid in plan.gone:
        current = _revive(plan, rows, saved, tid)
    edits = current.edits if current is not None else NO_EDITS
    new = current is None
    if current is None and tid in saved:  # a pending row removed by an earlier sync, sent again: edits and all
        edits, new = _take_saved(plan, saved, tid), False
    pending_id = values[_PENDING_ID]
    if pending_id and pending_id != tid:
        carried, new = _posting(plan, rows, saved, pending_id, tid, new)
        if carried.any and not edits.any:
            edits = carried
            if current is not None:
                plan.carry.append((tid, carried))
    if current is None:
        plan.added += 1
        plan.born.add(tid)
    elif current.values != values and tid not in plan.born:
        plan.modified += 1
    if current is not None:
        for name, old, value in zip(PLAID_FIELDS, current.values, values, strict=True):
            if old != value and name in HISTORY_FIELDS:
                plan.history.append((tid, name, _text(old), _text(value)))
    if new:
        plan.new[tid] = values
    plan.upserts[tid] = (values, edits)
    if tid in plan.deletes:  # removed, then sent again within one chunk: the later change wins
        plan.deletes.remove(tid)
    rows[tid] = Existing(values, edits)
