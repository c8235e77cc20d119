"""Rotation re-encrypts every encrypted field in batches, resumes after a crash, and frees old keys."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from models import User
from services.crypto import FieldCipher, check_key_ring, rotate_keys, values_to_rotate, versions_in_use
from services.db import unit_of_work
from services.errors import CryptoError, DecryptionError
from services.key_ring import parse_key_ring
from tests.factories import key_entry


def seed(engine: Engine, cipher: FieldCipher, n: int, *, name: str = "u") -> dict[object, str]:
    secrets = {}
    with unit_of_work(engine) as session:
        for i in range(n):
            user = User(
                email=f"{name}{i}@example.com",
                email_norm=f"{name}{i}@example.com",
                username=f"{name}{i}",
                username_norm=f"{name}{i}",
                password_hash="x",
            )
            session.add(user)
            session.flush()
            secret = f"TOTPSECRET{name}{i:06d}"
            user.totp_secret_enc = cipher.encrypt(
                secret, table="users", column="totp_secret_enc", row_id=user.id, owner=user.id
            )
            secrets[user.id] = secret
    return secrets


def read_all(engine: Engine, cipher: FieldCipher) -> dict[object, str]:
    with unit_of_work(engine) as session:
        return {
            u.id: cipher.decrypt_text(
                u.totp_secret_enc, table="users", column="totp_secret_enc", row_id=u.id, owner=u.id
            )
            for u in session.execute(select(User)).scalars()
            if u.totp_secret_enc
        }


def test_rotation_then_old_key_dropped(engine: Engine) -> None:
    old, new = key_entry(1), key_entry(2)
    secrets = seed(engine, FieldCipher(parse_key_ring(old)), 23)
    ring = FieldCipher(parse_key_ring(f"{new},{old}"))
    report = rotate_keys(engine, ring, batch_size=5)
    assert report.rewritten == 23 and report.batches == 5
    assert versions_in_use(engine, ring) == {2: 23}
    new_only = FieldCipher(parse_key_ring(new))
    assert read_all(engine, new_only) == secrets
    with pytest.raises(DecryptionError):
        read_all(engine, FieldCipher(parse_key_ring(old)))


def test_rotation_resumes_after_a_crash(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = key_entry(1), key_entry(2)
    secrets = seed(engine, FieldCipher(parse_key_ring(old)), 12)
    ring = FieldCipher(parse_key_ring(f"{new},{old}"))
    real_encrypt = ring.encrypt
    calls = {"n": 0}

    def crashing_encrypt(*args: object, **kwargs: object) -> bytes:
        calls["n"] += 1
        if calls["n"] == 7:  # dies in the middle of the second batch
            raise SystemExit("killed")
        return real_encrypt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ring, "encrypt", crashing_encrypt)
    with pytest.raises(SystemExit):
        rotate_keys(engine, ring, batch_size=4)
    assert versions_in_use(engine, ring) == {2: 4, 1: 8}  # first batch committed, second rolled back
    assert read_all(engine, ring) == secrets
    monkeypatch.setattr(ring, "encrypt", real_encrypt)
    report = rotate_keys(engine, ring, batch_size=4)
    assert report.rewritten == 8
    assert versions_in_use(engine, ring) == {2: 12}
    assert read_all(engine, FieldCipher(parse_key_ring(new))) == secrets


def test_wrong_key_ring_is_refused_at_start(engine: Engine) -> None:
    right = FieldCipher(parse_key_ring(key_entry(1)))
    check_key_ring(engine, right)  # records the canary
    check_key_ring(engine, right)
    with pytest.raises(CryptoError, match="key version 1 is not the key"):
        check_key_ring(engine, FieldCipher(parse_key_ring(key_entry(1))))


def test_a_key_dropped_too_soon_leaves_its_values_alone_and_the_rest_rotates(engine: Engine) -> None:
    """An operator removes key 1 before rotating it away: rotation rewrites what it can read, counts and keeps what
    it cannot (no batch rolled back around them); with key 1 back, a rerun finishes the work and nothing is lost."""
    one, two, three = key_entry(1), key_entry(2), key_entry(3)
    secrets = seed(engine, FieldCipher(parse_key_ring(one)), 3)
    secrets |= seed(engine, FieldCipher(parse_key_ring(two)), 3, name="more")
    with unit_of_work(engine) as session:  # and one value damaged past naming its key
        broken = User(
            email="b@example.com", email_norm="b@example.com", username="b", username_norm="b", password_hash="x"
        )
        broken.totp_secret_enc = b"\x03\x00"
        session.add(broken)
    too_soon = FieldCipher(parse_key_ring(f"{three},{two}"))
    report = rotate_keys(engine, too_soon, batch_size=2)
    assert (report.rewritten, report.unreadable) == (3, 4)
    assert versions_in_use(engine, too_soon) == {3: 3, 1: 3, 0: 1}
    whole = FieldCipher(parse_key_ring(f"{three},{two},{one}"))
    again = rotate_keys(engine, whole, batch_size=2)
    assert (again.rewritten, again.unreadable) == (3, 1)
    assert versions_in_use(engine, whole) == {3: 6, 0: 1}
    with unit_of_work(engine) as session:
        session.delete(session.execute(select(User).where(User.username == "b")).scalar_one())
    assert read_all(engine, FieldCipher(parse_key_ring(three))) == secrets


def test_rotation_rewrites_older_formats_as_the_current_one(engine: Engine) -> None:
    """Values written before per-column keys (format 1) or before owner binding (format 2) are rewritten by
    `keys rotate`, even on the same key, and come out bound to their owner."""
    import base64
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from services import crypto

    entry = key_entry(1)
    ring = FieldCipher(parse_key_ring(entry))
    secrets = seed(engine, ring, 4)
    raw = base64.b64decode(entry.split(":", 1)[1])
    keys = {
        crypto.LEGACY_FORMAT: AESGCM(raw),
        crypto.UNOWNED_FORMAT: AESGCM(
            HKDF(hashes.SHA256(), 32, None, b"finsync field key|users|totp_secret_enc").derive(raw)
        ),
    }
    with unit_of_work(engine) as session:  # as older releases of finsync stored them
        for n, user in enumerate(session.execute(select(User)).scalars()):
            fmt = crypto.LEGACY_FORMAT if n % 2 else crypto.UNOWNED_FORMAT
            nonce = os.urandom(12)
            aad = f"finsync|users|totp_secret_enc|{user.id}|1".encode()
            body = keys[fmt].encrypt(nonce, secrets[user.id].encode(), aad)
            user.totp_secret_enc = crypto.HEADER.pack(fmt, 1) + nonce + body
    assert read_all(engine, ring) == secrets  # still readable
    assert values_to_rotate(engine, ring) == 4 and versions_in_use(engine, ring) == {1: 4}
    report = rotate_keys(engine, ring, batch_size=3)
    assert report.rewritten == 4
    assert rotate_keys(engine, ring).rewritten == 0 and values_to_rotate(engine, ring) == 0  # nothing left
    with unit_of_work(engine) as session:
        users = list(session.execute(select(User)).scalars())
        assert {u.totp_secret_enc[0] for u in users} == {crypto.FORMAT}
        for user in users:  # now bound to the owner too
            with pytest.raises(DecryptionError):
                ring.decrypt(user.totp_secret_enc, table="users", column="totp_secret_enc", row_id=user.id, owner=None)
    assert read_all(engine, ring) == secrets


def test_a_secret_written_while_rotation_runs_is_not_overwritten_by_its_old_value(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bar H5, rotation without downtime: a user sets up a new authenticator while `keys rotate` holds their row."""
    import threading

    old, new = key_entry(1), key_entry(2)
    secrets = seed(engine, FieldCipher(parse_key_ring(old)), 3)
    ring = FieldCipher(parse_key_ring(f"{new},{old}"))
    target = sorted(secrets, key=str)[0]
    wrote: list[bool] = []

    def new_authenticator() -> None:  # what Settings → Two-factor writes, from another request
        with unit_of_work(engine, immediate=True) as session:
            user = session.get(User, target)
            assert user is not None
            user.totp_secret_enc = ring.encrypt(
                "NEWSECRET", table="users", column="totp_secret_enc", row_id=user.id, owner=user.id
            )
        wrote.append(True)

    real_decrypt = ring.decrypt
    writer = threading.Thread(target=new_authenticator)

    def decrypt_while_the_user_writes(blob: bytes, **seat: object) -> bytes:
        if not writer.is_alive() and not wrote:
            writer.start()
            writer.join(1.5)  # the write lands now unless the rotation's lock makes it wait for the batch
        return real_decrypt(blob, **seat)  # type: ignore[arg-type]

    monkeypatch.setattr(ring, "decrypt", decrypt_while_the_user_writes)
    rotate_keys(engine, ring, batch_size=10)
    writer.join(30)
    monkeypatch.undo()
    assert wrote
    assert read_all(engine, ring)[target] == "NEWSECRET"  # the user's new secret, not the rotated old one
    assert values_to_rotate(engine, ring) == 0
