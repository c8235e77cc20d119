"""Keep the demo bank's items across restarts: one JSON file, written atomically after each change.

Stored: items with their ledgers and change logs (so access tokens and sync cursors keep working),
live public/link tokens, the cursor key and the webhook signing keys. Faults are not stored.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from services.demo_bank.faults import Faults
from services.demo_bank.items import Item
from services.demo_bank.ledger import Ledger, Txn
from services.demo_bank.links import DAYS_REQUESTED, LinkSession
from services.demo_bank.webhooks import SigningKey

if TYPE_CHECKING:
    from services.demo_bank.bank import Bank

VERSION = 1


def _txn_out(t: Txn) -> dict[str, Any]:
    d = {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}
    d["date"], d["authorized_date"] = t.date.isoformat(), t.authorized_date.isoformat()
    return d


def _txn_in(d: dict[str, Any]) -> Txn:
    return Txn(
        **{**d, "date": date.fromisoformat(d["date"]), "authorized_date": date.fromisoformat(d["authorized_date"])}
    )


def _ledger_out(ledger: Ledger) -> dict[str, Any]:
    return {
        "txns": [_txn_out(t) for t in ledger.txns.values()],
        "gone": [_txn_out(t) for t in ledger.gone.values()],
        "restored": sorted(ledger.restored),
        "log": ledger.log,
        "posted": ledger.posted,
        "pending": ledger.pending,
        "opening": ledger.opening,
        "serial": ledger._serial,
    }


def _ledger_in(item_id: str, d: dict[str, Any]) -> Ledger:
    ledger = Ledger(item_id, d["opening"])
    ledger.txns = {t["transaction_id"]: _txn_in(t) for t in d["txns"]}
    ledger.gone = {t["transaction_id"]: _txn_in(t) for t in d["gone"]}
    ledger.restored = {str(tid) for tid in d.get("restored", [])}
    ledger.log = [(int(kind), str(tid)) for kind, tid in d["log"]]
    ledger.posted, ledger.pending = dict(d["posted"]), dict(d["pending"])
    ledger._serial = int(d["serial"])
    return ledger


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _item_out(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "access_token": item.access_token,
        "institution_id": item.institution_id,
        "seed": item.seed,
        "accounts": item.accounts,
        "ledger": _ledger_out(item.ledger),
        "today": item.today.isoformat(),
        "anchor": item.anchor.isoformat(),
        "created_at": item.created_at.isoformat(),
        "webhook": item.webhook,
        "login": item.login,
        "ready": item.ready,
        "error_code": item.error_code,
        "synced_once": item.synced_once,
        "removed": item.removed,
        "revoked": item.revoked,
        "last_successful_update": _when(item.last_successful_update),
        "offered": item.offered,
        "hidden": item.hidden,
        "since": None if item.since is None else item.since.isoformat(),
        "pulled_from": None if item.pulled_from is None else item.pulled_from.isoformat(),
    }


def _item_in(d: dict[str, Any]) -> Item:
    last = d.get("last_successful_update")
    return Item(
        item_id=d["item_id"],
        access_token=d["access_token"],
        institution_id=d["institution_id"],
        seed=d["seed"],
        accounts=dict(d["accounts"]),
        ledger=_ledger_in(d["item_id"], d["ledger"]),
        today=date.fromisoformat(d["today"]),
        anchor=date.fromisoformat(d["anchor"]),
        created_at=datetime.fromisoformat(d["created_at"]),
        webhook=d.get("webhook"),
        login=str(d.get("login") or "user_good"),
        ready=bool(d.get("ready", True)),
        error_code=d.get("error_code"),
        synced_once=bool(d.get("synced_once")),
        removed=bool(d.get("removed")),
        revoked=bool(d.get("revoked")),  # absent in state files written before it existed
        last_successful_update=datetime.fromisoformat(last) if last else None,
        faults=Faults(),
        offered=[str(k) for k in d.get("offered", [])],  # absent in state files written before it existed
        hidden=[str(k) for k in d.get("hidden", [])],  # likewise
        since=date.fromisoformat(d["since"]) if d.get("since") else None,  # likewise
        pulled_from=date.fromisoformat(d["pulled_from"]) if d.get("pulled_from") else None,  # likewise
    )


def _key_out(key: SigningKey) -> dict[str, Any]:
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"kid": key.kid, "pem": pem.decode(), "created_at": key.created_at, "expired_at": key.expired_at}


def _key_in(d: dict[str, Any]) -> SigningKey:
    private = serialization.load_pem_private_key(d["pem"].encode(), password=None)
    return SigningKey(d["kid"], private, int(d["created_at"]), d.get("expired_at"))  # type: ignore[arg-type]


def snapshot(bank: Bank) -> dict[str, Any]:
    """Everything worth keeping, as JSON-ready data (call under the bank's lock)."""
    return {
        "version": VERSION,
        "serial": bank._serial,
        "cursor_key": bank.cursor_key.hex(),
        "items": [_item_out(i) for i in bank.items.values()],
        "public_tokens": {t: [i, _when(exp), upd] for t, (i, exp, upd) in bank.public_tokens.items()},
        "link_sessions": {
            t: {
                "client_user_id": s.client_user_id,
                "item_id": s.item_id,
                "webhook": s.webhook,
                "expires": _when(s.expires),
                "account_selection": s.account_selection,
                "days_requested": s.days_requested,
            }
            for t, s in bank.link_sessions.items()
        },
        "keys": [_key_out(k) for k in bank.webhooks.keys.values()],
        "current_kid": bank.webhooks.current.kid,
    }


def restore(bank: Bank, data: dict[str, Any]) -> None:
    """Load a snapshot into a fresh bank."""
    if data.get("version") != VERSION:
        raise ValueError(f"demo bank state version {data.get('version')!r} is not {VERSION}")
    bank._serial = int(data["serial"])
    bank.cursor_key = bytes.fromhex(data["cursor_key"])
    bank.items = {d["item_id"]: _item_in(d) for d in data["items"]}
    bank.by_token = {i.access_token: i.item_id for i in bank.items.values() if not i.removed}
    bank.public_tokens = {
        t: (i, datetime.fromisoformat(exp), bool(upd)) for t, (i, exp, upd) in data["public_tokens"].items()
    }
    bank.link_sessions = {
        t: LinkSession(
            s["client_user_id"],
            s["item_id"],
            s["webhook"],
            datetime.fromisoformat(s["expires"]),
            bool(s.get("account_selection")),  # absent in state files written before it existed
            int(s.get("days_requested") or DAYS_REQUESTED),  # likewise
        )
        for t, s in data["link_sessions"].items()
    }
    keys = {d["kid"]: _key_in(d) for d in data["keys"]}
    bank.webhooks.keys = keys
    bank.webhooks.current = keys[data["current_kid"]]


_writing = threading.Lock()  # the shopper thread and the request handlers both save: one write at a time


def save(bank: Bank, path: Path) -> None:
    """Write the snapshot atomically (a temporary file of its own, then rename), readable by the owner only."""
    with _writing:  # taken and written in turn: an earlier snapshot is never renamed over a later one
        with bank.lock:
            body = json.dumps(snapshot(bank), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load(bank: Bank, path: Path) -> bool:
    """Restore the bank from `path` if it exists; return whether it did."""
    if not path.exists():
        return False
    restore(bank, json.loads(path.read_text(encoding="utf-8")))
    return True
