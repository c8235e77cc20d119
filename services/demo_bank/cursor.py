"""Opaque, HMAC-signed /transactions/sync cursors: item id, log positions and page offset."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from services.demo_bank.problems import BankError, invalid_field


@dataclass(frozen=True)
class Cursor:
    """Where a sync resumes: replay the log from `start`; while paging, also `end`, `offset` and `page`."""

    item_id: str
    start: int
    end: int = -1
    offset: int = 0
    page: int = 1

    @property
    def paging(self) -> bool:
        """True while the cursor points into the middle of one pagination."""
        return self.end >= 0


def encode(cursor: Cursor, key: bytes) -> str:
    """Serialise and sign a cursor as standard base64 (it may contain + and /, like Plaid's)."""
    raw = f"{cursor.item_id}|{cursor.start}|{cursor.end}|{cursor.offset}|{cursor.page}".encode()
    tag = hmac.new(key, raw, hashlib.sha256).digest()[:16]
    return base64.b64encode(tag + raw).decode()


def decode(token: str, key: bytes, item_id: str) -> Cursor:
    """Verify and parse a cursor issued for this item, or raise INVALID_FIELD."""
    bad: BankError = invalid_field("cursor is invalid or belongs to another item")
    try:
        blob = base64.b64decode(token.encode(), validate=True)
    except ValueError:
        raise bad from None
    tag, raw = blob[:16], blob[16:]
    if not hmac.compare_digest(tag, hmac.new(key, raw, hashlib.sha256).digest()[:16]):
        raise bad
    parts = raw.decode().split("|")
    if len(parts) != 5 or parts[0] != item_id:
        raise bad
    start, end, offset, page = (int(p) for p in parts[1:])
    return Cursor(item_id, start, end, offset, page)
