"""Field encryption: AES-256-GCM with a versioned key ring, bound to table, column, row and owner.

Blob layout: ``format (1 byte) | key version (4 bytes, big-endian) | nonce (12) | ciphertext+tag``.
Each column has its own key, derived from the ring's key by HKDF-SHA256 with the table and column as
info, so Plaid access tokens and TOTP seeds never share a key (security bar H4). The associated data
binds the blob to where it lives: table, column, row id, the id of the user who owns the row, and the
key version (bar H1). A ciphertext copied to another row or column, or a row handed to another user by
rewriting its ``user_id``, fails to decrypt instead of returning someone else's secret.

Older formats still decrypt, and ``keys rotate`` rewrites them as the current one: format 2 (per-column
key, no owner in the associated data) and format 1 (the ring's key itself for every column).
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

from models import KeyCanary
from services.db import unit_of_work
from services.errors import CryptoError, DecryptionError, KeyMissing
from services.key_ring import KeyEntry

FORMAT = 3  # a key per column; the owner's id in the associated data
UNOWNED_FORMAT = 2  # a key per column, no owner in the associated data: read, and rewritten by rotation
LEGACY_FORMAT = 1  # the ring's key for every column: read, and rewritten by rotation
FORMATS = (FORMAT, UNOWNED_FORMAT, LEGACY_FORMAT)
NO_OWNER = "-"  # the owner part of the associated data for rows no user owns (key canaries, revocations)
HEADER = struct.Struct(">BI")
NONCE_BYTES = 12
CANARY = b"finsync key canary"


def _aad(fmt: int, table: str, column: str, row_id: object, owner: object, version: int) -> bytes:
    if fmt != FORMAT:
        return f"finsync|{table}|{column}|{row_id}|{version}".encode()
    return f"finsync|{table}|{column}|{row_id}|{NO_OWNER if owner is None else owner}|{version}".encode()


def owner_of(row: object) -> object:
    """The owner a model's encrypted columns are bound to: the attribute named by ``__encrypted_owner__``."""
    attribute = getattr(type(row), "__encrypted_owner__", None)
    return None if attribute is None else getattr(row, attribute)


class FieldCipher:
    """Encrypts with the first key of the ring; decrypts with any key in it."""

    def __init__(self, ring: Sequence[KeyEntry]) -> None:
        if not ring:
            raise CryptoError("FINSYNC_ENCRYPTION_KEYS: the key ring is empty")
        self._masters = {entry.version: entry.key for entry in ring}
        self._aeads: dict[tuple[int, str, str], AESGCM] = {}
        self.primary_version = ring[0].version
        self.versions = tuple(entry.version for entry in ring)

    def _aead(self, fmt: int, version: int, table: str, column: str) -> AESGCM:
        """The AES-GCM key for a column: derived per column since format 2, the ring's key itself in format 1."""
        legacy = fmt == LEGACY_FORMAT
        cache_key = (version, "", "") if legacy else (version, table, column)
        aead = self._aeads.get(cache_key)
        if aead is None:
            master = self._masters[version]
            info = f"finsync field key|{table}|{column}".encode()
            key = master if legacy else HKDF(hashes.SHA256(), 32, None, info).derive(master)
            aead = self._aeads[cache_key] = AESGCM(key)
        return aead

    def encrypt(self, plaintext: bytes | str, *, table: str, column: str, row_id: object, owner: object) -> bytes:
        """Seal ``plaintext`` to one column of one row owned by ``owner`` (a user id, or None for no user)."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(FORMAT, table, column, row_id, owner, self.primary_version)
        body = self._aead(FORMAT, self.primary_version, table, column).encrypt(nonce, data, aad)
        return HEADER.pack(FORMAT, self.primary_version) + nonce + body

    def is_current(self, blob: bytes) -> bool:
        """Whether ``blob`` is already what ``encrypt`` writes now: this format and the primary key."""
        try:
            return self.key_version(blob) == self.primary_version and blob[0] == FORMAT
        except DecryptionError:
            return False  # damaged: not current, and rotation will say it cannot read it

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: object, owner: object) -> bytes:
        version = self.key_version(blob)
        if version not in self._masters:
            raise KeyMissing(
                f"{table}.{column}: encrypted with key version {version}, which is not in FINSYNC_ENCRYPTION_KEYS",
                version,
            )
        key = self._aead(blob[0], version, table, column)
        nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
        try:
            aad = _aad(blob[0], table, column, row_id, owner, version)
            return key.decrypt(nonce, blob[HEADER.size + NONCE_BYTES :], aad)
        except InvalidTag:
            raise DecryptionError(
                f"{table}.{column}: the value failed authentication (tampered, moved, or a wrong key)"
            ) from None

    def decrypt_text(self, blob: bytes, *, table: str, column: str, row_id: object, owner: object) -> str:
        return self.decrypt(blob, table=table, column=column, row_id=row_id, owner=owner).decode()

    @staticmethod
    def key_version(blob: bytes) -> int:
        if len(blob) < HEADER.size + NONCE_BYTES + 16:
            raise DecryptionError("encrypted value is truncated")
        fmt, version = HEADER.unpack_from(blob)
        if fmt not in FORMATS:
            raise DecryptionError(f"unknown encrypted value format {fmt}")
        return int(version)


def encrypted_models() -> list[type[SQLModel]]:
    """Every table that declares ``__encrypted__`` columns."""
    found = []
    for mapper in SQLModel._sa_registry.mappers:
        cls = mapper.class_
        if getattr(cls, "__encrypted__", ()):
            found.append(cls)
    return sorted(found, key=lambda c: str(c.__tablename__))


def check_key_ring(engine: Engine, cipher: FieldCipher) -> None:
    """Refuse a ring whose keys do not match the database's canaries; record canaries for new keys."""
    with unit_of_work(engine) as session:
        stored = {c.version: c for c in session.execute(select(KeyCanary)).scalars()}
        for version in cipher.versions:
            canary = stored.get(version)
            if canary is None:
                continue
            try:
                plain = cipher.decrypt(canary.blob, table="key_canaries", column="blob", row_id=version, owner=None)
            except DecryptionError:
                plain = b""
            if plain != CANARY:
                raise CryptoError(
                    f"FINSYNC_ENCRYPTION_KEYS: key version {version} is not the key this database was "
                    "encrypted with; restore the right key ring"
                )
        if cipher.primary_version not in stored:
            blob = cipher.encrypt(
                CANARY, table="key_canaries", column="blob", row_id=cipher.primary_version, owner=None
            )
            session.add(KeyCanary(version=cipher.primary_version, blob=blob))


@dataclass
class RotationReport:
    """What a rotation pass did."""

    rewritten: int = 0
    scanned: int = 0
    batches: int = 0
    unreadable: int = 0  # left as they were: on a key missing from the ring, or failing authentication


def rotate_keys(
    engine: Engine,
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    models: Iterable[type[SQLModel]] | None = None,
) -> RotationReport:
    """Re-encrypt every encrypted field with the primary key (and the current format), one committed batch at a time.

    Safe to interrupt: a rerun skips rows already current and finishes the rest. Safe while the app runs: each
    batch's rows are locked (SQLite: the write lock) from read to commit, so a secret written meanwhile (a new
    TOTP seed, a repaired connection) waits for the batch instead of being overwritten by its old value. A value
    this ring cannot read (its key dropped too soon, or damaged) is left as it is and counted, and the rest goes on:
    put the key back and a rerun rewrites it.
    """
    report = RotationReport()
    for model in models if models is not None else encrypted_models():
        columns: tuple[str, ...] = model.__encrypted__  # type: ignore[attr-defined]
        table = str(model.__tablename__)
        pk = model.id  # type: ignore[attr-defined]
        last: uuid.UUID | None = None
        while True:
            with unit_of_work(engine, immediate=True) as session:
                query = select(model).order_by(pk).limit(batch_size).with_for_update()
                if last is not None:
                    query = query.where(pk > last)
                rows = list(session.execute(query).scalars())
                for row in rows:
                    report.scanned += 1
                    for column in columns:
                        blob = getattr(row, column)
                        if blob is None or cipher.is_current(blob):
                            continue
                        owner = owner_of(row)
                        try:
                            plain = cipher.decrypt(blob, table=table, column=column, row_id=row.id, owner=owner)
                        except DecryptionError:
                            report.unreadable += 1
                            continue
                        fresh = cipher.encrypt(plain, table=table, column=column, row_id=row.id, owner=owner)
                        setattr(row, column, fresh)
                        report.rewritten += 1
            if not rows:
                break
            report.batches += 1
            last = rows[-1].id
    return report


def _blobs(engine: Engine) -> Iterator[bytes]:
    """Every encrypted value in the database."""
    with unit_of_work(engine) as session:
        for model in encrypted_models():
            for column in model.__encrypted__:  # type: ignore[attr-defined]
                yield from (b for b in session.execute(select(getattr(model, column))).scalars() if b is not None)


def versions_in_use(engine: Engine, cipher: FieldCipher) -> dict[int, int]:
    """How many encrypted values each key version still protects (versions missing from the ring included; a
    value too damaged to name its version counts under 0)."""
    counts: dict[int, int] = {}
    for blob in _blobs(engine):
        try:
            version = cipher.key_version(blob)
        except DecryptionError:
            version = 0
        counts[version] = counts.get(version, 0) + 1
    return counts


def values_to_rotate(engine: Engine, cipher: FieldCipher) -> int:
    """How many encrypted values ``rotate_keys`` would rewrite (an older key, or an older format)."""
    return sum(not cipher.is_current(blob) for blob in _blobs(engine))
