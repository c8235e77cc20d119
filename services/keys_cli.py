"""``keys generate``, ``keys rotate`` and ``keys status``: the encryption key ring."""

from __future__ import annotations

import argparse
import os

from services.config import load_settings
from services.container import Container, command_container
from services.crypto import rotate_keys, values_to_rotate, versions_in_use
from services.errors import FinsyncError
from services.key_ring import new_key_entry
from services.local_secrets import LOCAL_SECRETS_FILE, ensure_local_secrets, write_local_key_ring
from services.settings import env_files


def _batch_size(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of rows from 1 to 100000")
    return int(text)


def _keys_generate(args: argparse.Namespace) -> int:
    settings = load_settings(create_secrets=False)
    from_env = settings.encryption_keys is not None
    local = settings.data_dir / LOCAL_SECRETS_FILE
    if not from_env and local.exists():
        settings = ensure_local_secrets(settings, announce=False)
    ring = settings.key_ring if settings.encryption_keys else ()
    version = max((e.version for e in ring), default=0) + 1
    entry = new_key_entry(version)
    current = settings.encryption_keys.get_secret_value() if settings.encryption_keys else ""
    value = f"{entry}{',' + current if current else ''}"
    if args.write:
        if from_env:  # pydantic-settings: a variable of the process wins over a line of .env
            where = "the environment" if os.environ.get("FINSYNC_ENCRYPTION_KEYS") else str(env_files()[0])
            raise FinsyncError(f"FINSYNC_ENCRYPTION_KEYS is set in {where}: update it there, not with --write.")
        write_local_key_ring(settings.data_dir, value)
        print(f"added key version {version} first in {local}; restart finsync, then run `keys rotate`")
        return 0
    print(f"new key entry:          {entry}")
    print(f"FINSYNC_ENCRYPTION_KEYS={value}")
    print("Put the new entry first, restart finsync, then run `python -m services.cli keys rotate`.")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    c = command_container()
    report = rotate_keys(c.engine, c.cipher, batch_size=args.batch_size)
    print(
        f"re-encrypted {report.rewritten} value(s) in {report.batches} batch(es) with key version {c.cipher.primary_version}"
    )
    in_use = versions_in_use(c.engine, c.cipher)
    unused = [v for v in c.cipher.versions if v not in in_use and v != c.cipher.primary_version]
    if unused:
        print(f"key version(s) {', '.join(map(str, unused))} protect nothing now and can be removed from the ring")
    if report.unreadable:
        print(f"{report.unreadable} value(s) could not be read and were left as they were{_missing_keys(c, in_use)}")
        return 1
    return 0


def _keys_status(args: argparse.Namespace) -> int:
    c = command_container()
    in_use = versions_in_use(c.engine, c.cipher)
    for version in c.cipher.versions:
        role = "encrypts" if version == c.cipher.primary_version else "decrypts"
        print(f"key {version}: {role}, protects {in_use.get(version, 0)} value(s)")
    lost = {v: n for v, n in in_use.items() if v not in c.cipher.versions}
    for version, n in sorted(lost.items()):
        name = f"key {version}: NOT IN THE RING" if version else "damaged values (no readable key version):"
        print(f"{name}, {n} value(s) cannot be read")
    if stale := values_to_rotate(c.engine, c.cipher):
        print(
            f"{stale} value(s) are not on key {c.cipher.primary_version} in the current format yet: run `keys rotate`"
        )
    if lost:
        print(f"unreadable values{_missing_keys(c, in_use)}")
        return 1
    return 0


def _missing_keys(c: Container, in_use: dict[int, int]) -> str:
    """What to do about values no key of the ring reads: the versions to put back, when that is the cause."""
    missing = sorted(v for v in in_use if v and v not in c.cipher.versions)
    if not missing:
        return " (damaged: restore them from a backup)"
    return (
        f": put key version(s) {', '.join(map(str, missing))} back in FINSYNC_ENCRYPTION_KEYS (after the first entry),"
        " restart, then run `keys rotate`"
    )


def register_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="encryption key ring").add_subparsers(dest="action", required=True)
    generate = keys.add_parser("generate", help="make a new key to put first in FINSYNC_ENCRYPTION_KEYS")
    generate.add_argument(
        "--write", action="store_true", help="put it first in the local secrets file under the data dir"
    )
    generate.set_defaults(handler=_keys_generate)
    rotate = keys.add_parser("rotate", help="re-encrypt every encrypted field with the first key (resumable)")
    rotate.add_argument("--batch-size", type=_batch_size, default=500, help="rows per committed batch (default 500)")
    rotate.set_defaults(
        handler=_keys_rotate,
        on_interrupt="nothing is lost (the batches done are committed, the one in hand was rolled back); "
        "run the same command again to resume",
    )
    keys.add_parser("status", help="how many values each key version protects").set_defaults(handler=_keys_status)
