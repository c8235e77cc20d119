"""Field encryption: AES-256-GCM with a versioned key ring, bound to table, column and row.

Blob layout: ``format (1 byte) | key version (4 bytes, big-endian) | nonce (12) | ciphertext+tag``.
Format 2 encrypts each column with its own key, derived from the ring's key by HKDF-SHA256 with the
table and column as info, so Plaid access tokens and TOTP seeds never share a key (security bar H4);
format 1 (the ring's key itself) still decrypts, and ``keys rotate`` rewrites it as format 2. The
associated data binds the blob to where it lives, so a ciphertext copied to another row or column
fails to decrypt instead of returning someone else's secret.
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
from services.config import KeyEntry
from services.db import unit_of_work
from services.errors import CryptoError, DecryptionError

FORMAT = 2  # a key per column
LEGACY_FORMAT = 1  # the ring's key for every column: read, and rewritten by rotation
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
        self._masters = {entry.version: entry.key for entry in ring}
        self._aeads: dict[tuple[int, int, str, str], AESGCM] = {}
        self.primary_version = ring[0].version
        self.versions = tuple(entry.version for entry in ring)

    def _aead(self, fmt: int, version: int, table: str, column: str) -> AESGCM:
        """The AES-GCM key for a column: derived per column in format 2, the ring's key itself in format 1."""
        cache_key = (fmt, version, table, column) if fmt == FORMAT else (fmt, version, "", "")
        aead = self._aeads.get(cache_key)
        if aead is None:
            master = self._masters[version]
            info = f"finsync field key|{table}|{column}".encode()
            key = master if fmt == LEGACY_FORMAT else HKDF(hashes.SHA256(), 32, None, info).derive(master)
            aead = self._aeads[cache_key] = AESGCM(key)
        return aead

    def encrypt(self, plaintext: bytes | str, *, table: str, column: str, row_id: object) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(table, column, row_id, self.primary_version)
        body = self._aead(FORMAT, self.primary_version, table, column).encrypt(nonce, data, aad)
        return HEADER.pack(FORMAT, self.primary_version) + nonce + body

    def is_current(self, blob: bytes) -> bool:
        """Whether ``blob`` is already what ``encrypt`` writes now: this format and the primary key."""
        return self.key_version(blob) == self.primary_version and blob[0] == FORMAT

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: object) -> bytes:
        version = self.key_version(blob)
        if version not in self._masters:
            raise DecryptionError(
                f"{table}.{column}: encrypted with key version {version}, which is not in FINSYNC_ENCRYPTION_KEYS"
            )
        key = self._aead(blob[0], version, table, column)
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
        if fmt not in (FORMAT, LEGACY_FORMAT):
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
    """Re-encrypt every encrypted field with the primary key (and the current format), one committed batch at a time.

    Safe to interrupt: a rerun skips rows already current and finishes the rest.
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
                        if blob is None or cipher.is_current(blob):
                            continue
                        plain = cipher.decrypt(blob, table=table, column=column, row_id=row.id)
                        setattr(row, column, cipher.encrypt(plain, table=table, column=column, row_id=row.id))
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
    """How many encrypted values each key version still protects."""
    counts: dict[int, int] = {}
    for blob in _blobs(engine):
        version = cipher.key_version(blob)
        counts[version] = counts.get(version, 0) + 1
    return counts


def values_to_rotate(engine: Engine, cipher: FieldCipher) -> int:
    """How many encrypted values ``rotate_keys`` would rewrite (an older key, or the single-key format)."""
    return sum(not cipher.is_current(blob) for blob in _blobs(engine))
