"""Field encryption: AES-256-GCM with a versioned key ring, bound to table, column and row.

Blob layout: ``b"\\x01" | key version (4 bytes, big-endian) | nonce (12) | ciphertext+tag``.
The associated data binds the blob to where it lives, so a ciphertext copied to another row
or column fails to decrypt instead of returning someone else's secret.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

from models import KeyCanary
from services.config import KeyEntry
from services.db import unit_of_work
from services.errors import CryptoError, DecryptionError

FORMAT = 1
HEADER = struct.Struct(">BI")
NONCE_BYTES = 12
CANARY = b"finsync key canary"


def _aad(table: str, column: str, row_id: object, version: int) -> bytes:
    return f"finsync|{table}|{column}|{row_id}|{version}".encode()


class FieldCipher:
    """Encrypts with the first key of the ring; decrypts with any key in it."""

    def __init__(self, ring: Sequence[KeyEntry]) -> None:
        if not ring:
            raise CryptoError("FINSYNC_ENCRYPTION_KEYS: the key ring is empty")
        self._keys = {entry.version: AESGCM(entry.key) for entry in ring}
        self.primary_version = ring[0].version
        self.versions = tuple(entry.version for entry in ring)

    def encrypt(self, plaintext: bytes | str, *, table: str, column: str, row_id: object) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(table, column, row_id, self.primary_version)
        body = self._keys[self.primary_version].encrypt(nonce, data, aad)
        return HEADER.pack(FORMAT, self.primary_version) + nonce + body

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: object) -> bytes:
        version = self.key_version(blob)
        key = self._keys.get(version)
        if key is None:
            raise DecryptionError(
                f"{table}.{column}: encrypted with key version {version}, which is not in FINSYNC_ENCRYPTION_KEYS"
            )
        nonce = blob[HEADER.size : HEADER.size + NONCE_BYTES]
        try:
            return key.decrypt(nonce, blob[HEADER.size + NONCE_BYTES :], _aad(table, column, row_id, version))
        except InvalidTag:
            raise DecryptionError(
                f"{table}.{column}: the value failed authentication (tampered, moved, or a wrong key)"
            ) from None

    def decrypt_text(self, blob: bytes, *, table: str, column: str, row_id: object) -> str:
        return self.decrypt(blob, table=table, column=column, row_id=row_id).decode()

    @staticmethod
    def key_version(blob: bytes) -> int:
        if len(blob) < HEADER.size + NONCE_BYTES + 16:
            raise DecryptionError("encrypted value is truncated")
        fmt, version = HEADER.unpack_from(blob)
        if fmt != FORMAT:
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
                plain = cipher.decrypt(canary.blob, table="key_canaries", column="blob", row_id=version)
            except DecryptionError:
                plain = b""
            if plain != CANARY:
                raise CryptoError(
                    f"FINSYNC_ENCRYPTION_KEYS: key version {version} is not the key this database was "
                    "encrypted with; restore the right key ring"
                )
        if cipher.primary_version not in stored:
            blob = cipher.encrypt(CANARY, table="key_canaries", column="blob", row_id=cipher.primary_version)
            session.add(KeyCanary(version=cipher.primary_version, blob=blob))


@dataclass
class RotationReport:
    """What a rotation pass did."""

    rewritten: int = 0
    scanned: int = 0
    batches: int = 0


def rotate_keys(
    engine: Engine,
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    models: Iterable[type[SQLModel]] | None = None,
) -> RotationReport:
    """Re-encrypt every encrypted field with the primary key, one committed batch at a time.

    Safe to interrupt: a rerun skips rows already on the primary key and finishes the rest.
    """
    report = RotationReport()
    for model in models if models is not None else encrypted_models():
        columns: tuple[str, ...] = model.__encrypted__  # type: ignore[attr-defined]
        table = str(model.__tablename__)
        pk = model.id  # type: ignore[attr-defined]
        last: uuid.UUID | None = None
        while True:
            with unit_of_work(engine) as session:
                query = select(model).order_by(pk).limit(batch_size)
                if last is not None:
                    query = query.where(pk > last)
                rows = list(session.execute(query).scalars())
                for row in rows:
                    report.scanned += 1
                    for column in columns:
                        blob = getattr(row, column)
                        if blob is None or cipher.key_version(blob) == cipher.primary_version:
                            continue
                        plain = cipher.decrypt(blob, table=table, column=column, row_id=row.id)
                        setattr(row, column, cipher.encrypt(plain, table=table, column=column, row_id=row.id))
                        report.rewritten += 1
            if not rows:
                break
            report.batches += 1
            last = rows[-1].id
    return report


def versions_in_use(engine: Engine, cipher: FieldCipher) -> dict[int, int]:
    """How many encrypted values each key version still protects."""
    counts: dict[int, int] = {}
    with unit_of_work(engine) as session:
        for model in encrypted_models():
            for column in model.__encrypted__:  # type: ignore[attr-defined]
                for blob in session.execute(select(getattr(model, column))).scalars():
                    if blob is not None:
                        version = cipher.key_version(blob)
                        counts[version] = counts.get(version, 0) + 1
    return counts
