"""CSV export of a user's ledger (a contract: column names and formats are relied on by others).

Columns: transaction_id,date,account_id,account_name,name,merchant_name,amount,iso_currency_code,category,
pending, then authorized_date,note,tags,excluded,unofficial_currency_code,account_mask (the last four digits
that tell two accounts of one name apart),institution_name. ``amount`` is a decimal with the statement sign (money
out negative), ``category`` the user's override else Plaid's detailed category. Text cells a spreadsheet
would run as a formula get a leading apostrophe (OWASP "CSV Injection"); bidi and control characters are
dropped.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TextIO

from sqlmodel import col, select

from models import BankAccount, LedgerTransaction
from services import audit, safe_text
from services.container import Container
from services.credentials import confirm_identity
from services.db import unit_of_work
from services.errors import InputError
from services.money import decimal_text
from services.settings import env_files

COLUMNS = (
    "transaction_id", "date", "account_id", "account_name", "name", "merchant_name", "amount",
    "iso_currency_code", "category", "pending", "authorized_date", "note", "tags", "excluded",
    "unofficial_currency_code", "account_mask", "institution_name",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def safe_cell(text: str | None) -> str:
    """Text a spreadsheet shows as text: no controls or bidi overrides, formulas neutralised."""
    if not text:
        return ""
    clean = safe_text.clean(text)
    # Some spreadsheets trim leading blanks before deciding a cell is a formula: look past them too.
    lead = next((ch for ch in clean if not (ch.isspace() or ch == "\u200d" or unicodedata.category(ch) == "Zs")), "")
    # A full-width "＝" or small "﹢" is read as "=" or "+" by some spreadsheets (NFKC folds them the same way).
    lead = unicodedata.normalize("NFKC", lead)[:1] if lead else ""
    return "'" + clean if clean.startswith(_FORMULA_START) or (lead and lead in _FORMULA_START) else clean


def decimal_amount(amount_minor: int, currency: str | None) -> str:
    """Minor units as a plain decimal with the currency's number of places (``-12.50``, ``-1200`` for JPY)."""
    return decimal_text(amount_minor, currency)


def rows(
    c: Container, user_id: uuid.UUID, start: date | None = None, end: date | None = None
) -> Iterator[tuple[str, ...]]:
    """The export rows, streamed from the database a thousand at a time."""
    q = (
        select(LedgerTransaction, BankAccount)
        .join(BankAccount, col(BankAccount.id) == col(LedgerTransaction.account_id))
        .where(LedgerTransaction.user_id == user_id)
    )
    if start is not None:
        q = q.where(LedgerTransaction.date >= start)
    if end is not None:
        q = q.where(LedgerTransaction.date <= end)
    q = q.order_by(col(LedgerTransaction.date), col(LedgerTransaction.plaid_transaction_id))
    with unit_of_work(c.engine) as session:
        for t, account in session.exec(q.execution_options(yield_per=1000)):
            yield (  # every text cell through safe_cell, ids and codes too: Plaid's never start with = + - @
                safe_cell(t.plaid_transaction_id),
                t.date.isoformat(),
                safe_cell(account.plaid_account_id),
                safe_cell(account.name),
                safe_cell(t.name),
                safe_cell(t.merchant_name),
                decimal_amount(t.amount_minor, t.iso_currency_code or t.unofficial_currency_code),
                safe_cell(t.iso_currency_code),
                safe_cell(t.category_override or t.category_detailed),
                "true" if t.pending else "false",
                t.authorized_date.isoformat() if t.authorized_date else "",
                safe_cell(t.note),
                safe_cell(t.tags),
                "true" if t.excluded else "false",
                safe_cell(t.unofficial_currency_code),  # crypto and other non-ISO codes: the amount's currency
                safe_cell(account.mask),
                safe_cell(account.institution_name),  # which bank: every bank has its "Everyday Checking"
            )


def _check_dates(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise InputError("The start date is after the end date.")


def _write(fh: TextIO, c: Container, user_id: uuid.UUID, start: date | None, end: date | None) -> int:
    _check_dates(start, end)
    writer = csv.writer(fh)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows(c, user_id, start, end):
        writer.writerow(row)
        count += 1
    return count


def _record(c: Container, user_id: uuid.UUID, count: int, ip: str, *, command_line: bool = False) -> None:
    """Audited; an export from the command line says so (no client address to show, and the person whose ledger it
    is must not read it as a download by someone unknown)."""
    detail = f"{count} transactions" + (f", {audit.COMMAND_LINE}" if command_line else "")
    with unit_of_work(c.engine) as session:
        audit.record(session, event="transactions_exported", user_id=user_id, ip=ip, detail=detail)


def _check_out(c: Container, out: Path) -> Path:
    """The file the export will replace (through symbolic links). Refuse a folder, a device, pipe or socket (the
    rename would put a plain file in its place), and finsync's own files: the rename would replace the database (its
    WAL and shared-memory files with it) or the key ring, saying it succeeded."""
    try:
        mode: int | None = out.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _unwritable(out, exc) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"{out} is a folder: give a file name, such as {out / 'transactions.csv'}.")
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(
            f"{out} is not a regular file (a device, pipe or socket): give a file name, such as transactions.csv."
        )
    target = out.resolve()  # through symbolic links: the file that would really be replaced
    data = c.settings.data_dir.resolve()
    database = c.engine.url.database if c.engine.url.get_backend_name() == "sqlite" else None
    own = Path(database).resolve() if database and database != ":memory:" else None
    siblings = {own, *(own.with_name(own.name + end) for end in ("-wal", "-shm", "-journal"))} if own else set()
    if target == data or data in target.parents or target in siblings:
        raise InputError(
            f"{out} is one of finsync's own files (its data folder {data} holds the database and the keys): "
            "write the export somewhere else."
        )
    if target in {path.resolve() for path in env_files()}:  # it may hold the key ring
        raise InputError(
            f"{out} is one of finsync's own files (the settings file it reads at start, {target}): "
            "write the export somewhere else."
        )
    return target


def export_csv(c: Container, user_id: uuid.UUID, out: Path, start: date | None = None, end: date | None = None) -> int:
    """Write the CSV atomically (a temp file renamed into place, private to its owner: 0600, as finance data should
    be); a symbolic link's target gets the export. Return the number of transactions."""
    target = _check_out(c, out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".csv", dir=target.parent)
    except OSError as exc:
        raise _unwritable(out, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            count = _write(fh, c, user_id, start, end)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a folder gone read-only: said in one line, the old file intact
            raise _unwritable(out, exc) from None
        raise
    _record(c, user_id, count, "", command_line=True)
    return count


def _unwritable(out: Path, exc: OSError) -> InputError:
    return InputError(f"Cannot write {out}: {exc.strerror or exc}.")


def export_bytes(
    c: Container,
    user_id: uuid.UUID,
    start: date | None = None,
    end: date | None = None,
    *,
    password: str,
    code: str | None = None,
    ip: str = "",
) -> tuple[bytes, int]:
    """The same CSV as ``export_csv``, in memory, for a download from the Transactions page, after re-authentication."""
    _check_dates(start, end)  # a typo in the dates is said before the password is checked (and counted)
    confirm_identity(c, user_id, action="export", password=password, code=code, ip=ip)
    buffer = io.StringIO(newline="")
    count = _write(buffer, c, user_id, start, end)
    _record(c, user_id, count, ip)
    return buffer.getvalue().encode("utf-8"), count
