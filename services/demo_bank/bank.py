"""The demo bank's state machine: items, tokens, clock, faults and webhooks, behind one lock."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.demo_bank import problems
from services.demo_bank.catalog import ACCOUNT_TEMPLATES, INSTITUTIONS, OPENED_LATER
from services.demo_bank.faults import Counted, FaultKind
from services.demo_bank.items import Item, new_item, stable_id, utc_now
from services.demo_bank.ledger import Txn
from services.demo_bank.links import USERNAMES, LinkSession
from services.demo_bank.render import error_json, txn_json
from services.demo_bank.simulate import bulk_history, simulate_day, simulate_range
from services.demo_bank.webhooks import Delivery, WebhookSender

PUBLIC_TOKEN_TTL = timedelta(minutes=30)


class Bank:
    """All demo-bank state; every public method is thread-safe."""

    def __init__(self, clock: Callable[[], date], history_days: int = 90, seed: str = "demo") -> None:
        self.clock = clock
        self.history_days = history_days
        self.seed = seed
        self.lock = threading.RLock()
        self.items: dict[str, Item] = {}
        self.by_token: dict[str, str] = {}
        self.public_tokens: dict[str, tuple[str, datetime, bool]] = {}
        self.link_sessions: dict[str, LinkSession] = {}
        self.cursor_key = secrets.token_bytes(32)
        self.webhooks = WebhookSender()
        self._serial = 0
        self._rounds: set[str] = set()  # items inside one_update: their changes are announced at its end
        self.state_file: Path | None = None

    def save(self) -> None:
        """Persist items and tokens if this bank has a state file (the app's demo mode)."""
        if self.state_file is not None:
            from services.demo_bank.persist import save

            save(self, self.state_file)

    # -- items and tokens -------------------------------------------------------------------------

    def create_item(
        self,
        institution_id: str,
        username: str = "user_good",
        webhook: str | None = None,
        shared: Sequence[str] | None = None,
        days_requested: int | None = None,
    ) -> Item:
        """Link a new item with seeded history and the state its username asks for.

        ``shared`` is the account keys the user ticked in Link (None: all); the others stay the bank's own.
        ``days_requested`` is Link's `transactions.days_requested`: older history stays the bank's (None: all of it).
        """
        if institution_id not in INSTITUTIONS:
            raise problems.BankError(400, "INVALID_INPUT", "INVALID_INSTITUTION", "invalid institution_id provided")
        if username not in USERNAMES:
            raise problems.BankError(
                400, "ITEM_ERROR", "INVALID_CREDENTIALS", "the provided credentials were not correct"
            )
        with self.lock:
            self._serial += 1
            item_id = stable_id(self.seed, "item", str(self._serial))
            today = self.clock()
            item = new_item(item_id, f"access-demo-{secrets.token_hex(16)}", institution_id, today, utc_now())
            item.webhook = webhook
            item.login = username
            if shared is not None:
                item.hidden = [t.key for t in ACCOUNT_TEMPLATES if t.key not in shared]
            # The bank's history belongs to the login, not the link: linking the same login again shows the same
            # transactions (under new ids, as Plaid gives a new item new ids).
            item.seed = stable_id(self.seed, institution_id, username)
            first = self._life_start(institution_id, username, today)
            item.anchor = first
            if days_requested is not None:
                item.since = today - timedelta(days=days_requested - 1)
            simulate_range(item.ledger, item.accounts, item.seed, first, today)
            item.last_successful_update = utc_now()
            mode = USERNAMES[username]
            if mode == "login_required":
                item.error_code = "ITEM_LOGIN_REQUIRED"
            elif mode == "not_ready":
                item.ready = False
            elif mode == "institution_down":
                item.faults.counted[mode] = Counted(10**9)
            elif mode == "server_error":  # flaky: two 500s for its first sync to absorb (on /accounts/get, they
                item.faults.counted[mode] = Counted(2, endpoint="/transactions/sync")  # failed every link of it)
            self.items[item_id] = item
            self.by_token[item.access_token] = item_id
            return item

    def _life_start(self, institution_id: str, username: str, today: date) -> date:
        """The day a login's history begins: its first link's, so a later link of it lives the very same life."""
        earlier = [i.anchor for i in self.items.values() if (i.institution_id, i.login) == (institution_id, username)]
        return min([*earlier, today - timedelta(days=self.history_days - 1)])

    def issue_public_token(self, item: Item, update: bool = False) -> str:
        """Mint a single-use public token for an item (`update`: from an update-mode Link session)."""
        token = f"public-demo-{secrets.token_hex(16)}"
        self.public_tokens[token] = (item.item_id, utc_now() + PUBLIC_TOKEN_TTL, update)
        return token

    def exchange(self, public_token: str) -> Item:
        """Redeem a public token once; exchanging an update-mode token also repairs the item."""
        with self.lock:
            entry = self.public_tokens.get(public_token)
            if entry is None or entry[1] < utc_now():
                raise problems.invalid_token("public")
            item = self.items[entry[0]]
            err = item.faults.next_error("/item/public_token/exchange")
            if err is not None:
                raise err  # failed before redeeming: the same public token may be tried again
            del self.public_tokens[public_token]
            if entry[2]:
                self.repair(item.item_id)
            return item

    def item_for(self, access_token: str, path: str) -> Item:
        """Resolve an access token, catch the item up with the clock and apply its faults."""
        with self.lock:
            item_id = self.by_token.get(access_token)
            item = self.items.get(item_id) if item_id else None
            if item is None or item.removed:
                raise problems.invalid_token("access")
            if item.revoked:  # Plaid answers every endpoint so, /item/get and /item/remove too; it never comes back
                raise problems.item_not_found()
            self.catch_up(item)
            err = item.faults.next_error(path)
            if err is not None:
                raise err
            if item.error_code and path not in ("/item/get", "/item/remove", "/link/token/create"):
                raise problems.login_required()
            return item

    def item(self, item_id: str) -> Item:
        """Look an item up by id (test API)."""
        try:
            return self.items[item_id]
        except KeyError:
            raise KeyError(f"no demo item {item_id!r}") from None

    # -- time and mutations -----------------------------------------------------------------------

    def catch_up(self, item: Item) -> None:
        """Simulate the days between the item's own date and the clock."""
        target = self.clock()
        if item.today < target:
            self.advance(item.item_id, (target - item.today).days)

    def advance(self, item_id: str, days: int = 1) -> int:
        """Let `days` days pass for an item; return how many log entries that produced."""
        with self.lock:
            item = self.item(item_id)
            before = len(item.ledger.log)
            for _ in range(days):
                item.today += timedelta(days=1)
                simulate_day(item.ledger, item.accounts, item.seed, item.today, item.anchor)
            item.last_successful_update = utc_now()
            self._changed(item, before)
            return len(item.ledger.log) - before

    def mutate(self, item_id: str, action: str, **fields: Any) -> dict[str, Any] | None:
        """Apply one change: add, modify, remove, restore (a removed one, same id) or post (a pending transaction);
        return the resulting row."""
        with self.lock:
            item = self.item(item_id)
            ledger, before = item.ledger, len(item.ledger.log)
            if action == "add":
                account = fields.pop("account", "checking")
                day = fields.pop("date", item.today)
                txn = ledger.add(
                    Txn(
                        transaction_id=ledger.new_id(),
                        account_id=item.accounts.get(account, account),
                        cents=int(fields.pop("cents")),
                        date=day,
                        authorized_date=day,
                        name=str(fields.pop("name", "DEMO MERCHANT")),
                        merchant_name=fields.pop("merchant_name", None),
                        primary=str(fields.pop("primary", "GENERAL_MERCHANDISE")),
                        detailed=str(fields.pop("detailed", "GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE")),
                        confidence="HIGH",
                        channel=str(fields.pop("channel", "in store")),
                        website=None,
                        pending=bool(fields.pop("pending", False)),
                        # a posted twin whose pending row Plaid removed in an earlier sync (they can arrive apart)
                        pending_transaction_id=fields.pop("pending_transaction_id", None),
                    )
                )
            elif action == "modify":
                txn = ledger.modify(fields.pop("transaction_id"), **fields)
            elif action == "remove":
                ledger.remove(fields.pop("transaction_id"))
                txn = None
            elif action == "restore":
                txn = ledger.restore(fields.pop("transaction_id"))
            elif action == "post":
                txn = ledger.post(fields.pop("transaction_id"), cents=fields.pop("cents", None))
            else:
                raise ValueError(f"unknown mutation {action!r}")
            self._changed(item, before)
            return None if txn is None else txn_json(txn)

    def generate_history(self, item_id: str, count: int) -> None:
        """Append `count` posted transactions before the item's history, for benchmarks (all of it is shared)."""
        with self.lock:
            item = self.item(item_id)
            item.since = None
            bulk_history(item.ledger, item.accounts, item.seed, count, item.anchor)

    def hold_history(self, item_id: str, days: int = 30) -> None:
        """Play Plaid's initial pull: until `finish_history`, the item sends only its last `days` days, and
        /transactions/sync says INITIAL_UPDATE_COMPLETE."""
        with self.lock:
            item = self.item(item_id)
            item.pulled_from = item.today - timedelta(days=days - 1)

    def finish_history(self, item_id: str) -> None:
        """Plaid's historical pull completes: the older history is sent as added, and SYNC_UPDATES_AVAILABLE says
        so (`historical_update_complete`)."""
        with self.lock:
            item = self.item(item_id)
            held, item.pulled_from = item.pulled_from, None
            if held is None:
                return
            hidden = item.hidden_ids()
            older = sorted((t for t in item.ledger.txns.values() if t.date < held and item.sends(t, hidden)),
                           key=lambda t: t.created_pos)  # fmt: skip
            item.ledger.add_again([t.transaction_id for t in older])
            self._updates_available(item)

    def truth(self, item_id: str) -> list[dict[str, Any]]:
        """Every current transaction of an item as Plaid JSON, newest first."""
        with self.lock:
            item = self.item(item_id)
            hidden = item.hidden_ids()
            shown = (t for t in item.ledger.txns.values() if item.sends(t, hidden))
            txns = sorted(shown, key=lambda t: (t.date, t.transaction_id), reverse=True)
            return [txn_json(t) for t in txns]

    # -- faults -----------------------------------------------------------------------------------

    def set_fault(
        self,
        item_id: str,
        kind: FaultKind,
        *,
        times: int = 1,
        endpoint: str | None = None,
        page: int = 2,
        seconds: float = 0.0,
    ) -> None:
        """Inject a fault into one item (see `FaultKind`); counted faults fail the next `times` calls."""
        with self.lock:
            item = self.item(item_id)
            if kind == "login_required":
                item.error_code = "ITEM_LOGIN_REQUIRED"
                self.notify(item, "ITEM", "ERROR", error=error_json(item, webhook=True))
            elif kind == "new_accounts":  # the bank opened an account: Plaid says so, sharing waits for the user
                if OPENED_LATER.key not in item.accounts and OPENED_LATER.key not in item.offered:
                    item.offered.append(OPENED_LATER.key)
                self.notify(item, "ITEM", "NEW_ACCOUNTS_AVAILABLE", error=None)
            elif kind == "permission_revoked":  # the user withdrew access at the bank or at my.plaid.com
                item.revoked = True
                self.notify(item, "ITEM", "USER_PERMISSION_REVOKED", error=problems.permission_revoked().webhook_body())
            elif kind == "delay":
                item.faults.delay = seconds
            elif kind == "mutation_during_pagination":
                item.faults.mutation_page = page
            elif kind in ("rate_limit", "server_error", "institution_down"):
                item.faults.counted[kind] = Counted(times, endpoint)
            else:
                raise ValueError(f"unknown fault {kind!r}")

    def clear_faults(self, item_id: str) -> None:
        """Remove every injected fault except the login state (use `repair`)."""
        with self.lock:
            item = self.item(item_id)
            item.faults.counted.clear()
            item.faults.delay = 0.0
            item.faults.mutation_page = None
            item.ready = True

    def repair(self, item_id: str, *, elsewhere: bool = True) -> None:
        """Clear ITEM_LOGIN_REQUIRED. ``elsewhere``: the user signed in again outside our app (another app on the same
        Plaid login, or the bank cleared it), which Plaid announces with LOGIN_REPAIRED; a repair through our own
        update-mode Link sends no webhook (the app learns it from Link's onSuccess)."""
        with self.lock:
            item = self.item(item_id)
            if item.error_code:
                item.error_code = None
                if elsewhere:
                    self.notify(item, "ITEM", "LOGIN_REPAIRED")

    # -- webhooks ---------------------------------------------------------------------------------

    def notify(self, item: Item, webhook_type: str, code: str, now: bool = False, **extra: Any) -> Delivery | None:
        """Send a webhook for an item if it has a webhook URL (in the background unless `now`)."""
        if not item.webhook:
            return None
        payload = {
            "webhook_type": webhook_type,
            "webhook_code": code,
            "item_id": item.item_id,
            "environment": "sandbox",
        }
        payload.update(extra)
        item.last_webhook = (utc_now(), code)
        if now:
            return self.webhooks.send(item.webhook, payload)
        self.webhooks.send_later(item.webhook, payload)
        return None

    @contextmanager
    def one_update(self, item_id: str) -> Iterator[Item]:
        """Changes made inside are announced by one SYNC_UPDATES_AVAILABLE at the end, as Plaid sends one per update
        it finds at the bank, not one per transaction."""
        with self.lock:
            item = self.item(item_id)
            before = len(item.ledger.log)
            self._rounds.add(item_id)
            try:
                yield item
            finally:
                self._rounds.discard(item_id)
                self._changed(item, before)

    def _changed(self, item: Item, before: int) -> None:
        if item.item_id in self._rounds:
            return
        if len(item.ledger.log) > before and item.synced_once:
            self._updates_available(item)

    def _updates_available(self, item: Item) -> None:
        """SYNC_UPDATES_AVAILABLE, as Plaid sends it once an item's history is complete."""
        self.notify(
            item,
            "TRANSACTIONS",
            "SYNC_UPDATES_AVAILABLE",
            initial_update_complete=True,
            historical_update_complete=True,
        )
