"""Ctrl-C on a long command: exit 130 with one line saying what was kept and how to carry on, and nothing lost."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from models import ItemSyncState
from services import cli
from services.container import Container
from services.crypto import FieldCipher, versions_in_use
from services.db import make_engine, unit_of_work
from services.demo_bank import DemoBankHandle
from services.key_ring import parse_key_ring
from services.plaid_client import PlaidGateway
from tests.factories import key_entry
from tests.integration.sync_helpers import ledger, make_user, process_env, signal_mid_sync, slow_items, sync_runs, truth
from tests.integration.test_key_rotation import read_all, seed

ROOT = Path(__file__).resolve().parents[2]

# Ctrl-C as the terminal sends it (SIGINT), at the sixth value encrypted: after some batches of two were committed.
_ROTATE_CUT_SHORT = """
import os, signal, sys
from services import cli, crypto

real, calls = crypto.FieldCipher.encrypt, [0]

def encrypt(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 6:
        os.kill(os.getpid(), signal.SIGINT)
    return real(self, *args, **kwargs)

crypto.FieldCipher.encrypt = encrypt
sys.exit(cli.main(["keys", "rotate", "--batch-size", "2"]))
"""

ROTATE_LINE = (
    "finsync: interrupted: nothing is lost (the batches done are committed, the one in hand was rolled back); "
    "run the same command again to resume"
)


def test_keys_rotate_cut_short_by_ctrl_c_says_so_loses_nothing_and_resumes(db_url: str, tmp_path: Path) -> None:
    """Ctrl-C during `keys rotate` ended it with exit 130 and not a word: the operator could not tell whether the
    ring was half rotated, whether anything was damaged, or what to do next."""
    one, two = key_entry(1), key_entry(2)
    engine = make_engine(db_url)
    try:
        secrets = seed(engine, FieldCipher(parse_key_ring(one)), 10)
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "FINSYNC_SECRET_KEY": "s" * 48,
            "FINSYNC_ENCRYPTION_KEYS": f"{two},{one}",
            "FINSYNC_DATA_DIR": str(tmp_path / "data"),
        }
        run = {"capture_output": True, "text": True, "cwd": ROOT, "env": env, "timeout": 120}
        cut = subprocess.run([sys.executable, "-c", _ROTATE_CUT_SHORT], **run)  # noqa: PLW1510
        assert cut.returncode == 130, cut.stderr[-2000:]
        assert cut.stderr.strip().splitlines() == [ROTATE_LINE]
        assert "re-encrypted" not in cut.stdout
        ring = FieldCipher(parse_key_ring(f"{two},{one}"))
        half = versions_in_use(engine, ring)
        assert half.get(1, 0) > 0 and half.get(2, 0) > 0  # some batches done, the rest still on key 1
        assert read_all(engine, ring) == secrets  # every value reads: none was damaged by the cut

        again = subprocess.run([sys.executable, "-m", "services.cli", "keys", "rotate"], **run)  # noqa: PLW1510
        assert again.returncode == 0, again.stderr[-2000:]
        assert f"re-encrypted {half[1]} value(s)" in again.stdout
        assert 1 not in versions_in_use(engine, ring)
        assert read_all(engine, FieldCipher(parse_key_ring(two))) == secrets  # key 1 can go: nothing needs it
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["keys", "rotate"], ROTATE_LINE),
        (
            ["sync", "--all"],
            "finsync: interrupted: nothing is lost (each connection synced is committed whole; the one in hand, if "
            "any, was rolled back and is due again); run the same command again to sync the rest",
        ),
        (
            ["worker"],
            "finsync: interrupted: worker stopped at once; nothing is lost (the sync in hand, if any, was rolled back "
            "and runs again on a later pass); start the worker again to carry on",
        ),
        (
            ["export", "transactions", "--email", "a@example.com", "--out", "my {year}.csv"],
            "finsync: interrupted: my {year}.csv is as it was or the whole export, never half written; run the same "
            "command again",
        ),
        (
            ["db", "upgrade"],
            "finsync: interrupted: nothing is lost (the upgrade is one transaction: all of it or none); run the same "
            "command again",
        ),
        (["db", "purge"], "finsync: interrupted: the rest is left as it was; run the same command again to purge it"),
        (["keys", "status"], "finsync: interrupted"),
    ],
)
def test_every_long_command_says_what_ctrl_c_kept_and_how_to_carry_on(
    args: list[str], said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands an operator leaves running (sync --all, worker, export, db upgrade) went silent on Ctrl-C."""
    real = cli.build_parser

    def parser_whose_commands_are_interrupted() -> argparse.ArgumentParser:
        parser = real()
        parse = parser.parse_args

        def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
            parsed = parse(argv)
            parsed.handler = lambda _args: (_ for _ in ()).throw(KeyboardInterrupt)
            return parsed

        parser.parse_args = parse_args  # type: ignore[method-assign,assignment]
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_whose_commands_are_interrupted)
    assert cli.main(args) == 130
    out = capsys.readouterr()
    assert out.err.splitlines() == [said] and out.out == ""


@pytest.mark.slow
def test_sync_all_cut_short_by_ctrl_c_keeps_what_it_synced_and_the_same_command_finishes(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, tmp_path: Path
) -> None:
    user_id = make_user(container)
    items = slow_items(container, gateway, demo_bank, user_id)  # a sync takes a few seconds: Ctrl-C lands inside one
    sync = signal_mid_sync(container, demo_bank, ["sync", "--all"], signal.SIGINT, tmp_path)
    err = sync.stderr
    assert sync.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("finsync: interrupted: nothing is lost") and "Traceback" not in err
    runs = sync_runs(container)
    assert {r.status for r in runs} <= {"ok", "failed"} and any(r.error_code == "INTERRUPTED" for r in runs)
    synced = {r.item_id for r in runs if r.status == "ok"}
    kept = {k: v for item_id, pid in items if item_id in synced for k, v in truth(demo_bank, pid).items()}
    assert ledger(container, user_id) == kept  # the item in hand left nothing half applied
    with unit_of_work(container.engine) as s:
        assert all(st.lease_owner is None for st in s.execute(select(ItemSyncState)).scalars())

    again = subprocess.run(  # noqa: PLW1510 - "run the same command again"
        [sys.executable, "-m", "services.cli", "sync", "--all"],
        cwd=tmp_path, env=process_env(container, demo_bank), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert ledger(container, user_id) == truth(demo_bank, items[0][1]) | truth(demo_bank, items[1][1])
