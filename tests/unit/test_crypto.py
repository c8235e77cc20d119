"""Field encryption: every failure is our own error, never garbage."""

from __future__ import annotations

import base64
import uuid

import pytest

from services.crypto import FieldCipher
from services.errors import DecryptionError, KeyMissing
from services.key_ring import parse_key_ring
from tests.factories import key_entry

ROW = uuid.uuid4()
OWNER = uuid.uuid4()


def cipher(*entries: str) -> FieldCipher:
    return FieldCipher(parse_key_ring(",".join(entries)))


def seal(c: FieldCipher, text: str = "access-sandbox-123", row: object = ROW, owner: object = OWNER) -> bytes:
    return c.encrypt(text, table="items", column="access_token_enc", row_id=row, owner=owner)


def open_(
    c: FieldCipher, blob: bytes, row: object = ROW, column: str = "access_token_enc", owner: object = OWNER
) -> str:
    return c.decrypt_text(blob, table="items", column=column, row_id=row, owner=owner)


def test_round_trip_and_fresh_nonce() -> None:
    c = cipher(key_entry(1))
    a, b = seal(c), seal(c)
    assert a != b
    assert open_(c, a) == open_(c, b) == "access-sandbox-123"
    assert b"access-sandbox" not in a


@pytest.mark.parametrize("position", [0, 3, 7, 20, -1])
def test_flipped_bit_fails(position: int) -> None:
    c = cipher(key_entry(1))
    blob = bytearray(seal(c))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        open_(c, bytes(blob))


def test_wrong_key_with_same_version_fails() -> None:
    blob = seal(cipher(key_entry(1)))
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_(cipher(key_entry(1)), blob)


def test_missing_key_version_names_it() -> None:
    blob = seal(cipher(key_entry(7)))
    with pytest.raises(KeyMissing, match="key version 7") as raised:
        open_(cipher(key_entry(1)), blob)
    assert raised.value.version == 7  # what tells the operator which key to put back


def test_a_damaged_value_is_not_taken_for_a_missing_key() -> None:
    blob = bytearray(seal(cipher(key_entry(1))))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError, match="failed authentication") as raised:
        open_(cipher(key_entry(1)), bytes(blob))
    assert not isinstance(raised.value, KeyMissing)  # "put the key back" would send the operator looking in vain


def test_ciphertext_moved_to_another_row_or_column_fails() -> None:
    c = cipher(key_entry(1))
    blob = seal(c)
    with pytest.raises(DecryptionError):
        open_(c, blob, row=uuid.uuid4())
    with pytest.raises(DecryptionError):
        open_(c, blob, column="totp_secret_enc")
    with pytest.raises(DecryptionError):
        c.decrypt(blob, table="users", column="access_token_enc", row_id=ROW, owner=OWNER)


def test_ciphertext_handed_to_another_owner_fails() -> None:
    """Bar H1/H2: the owner's id is in the associated data, so rewriting a row's user id makes its secret unreadable."""
    c = cipher(key_entry(1))
    blob = seal(c)
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_(c, blob, owner=uuid.uuid4())
    with pytest.raises(DecryptionError):
        open_(c, blob, owner=None)
    unowned = seal(c, owner=None)
    assert open_(c, unowned, owner=None) == "access-sandbox-123"
    with pytest.raises(DecryptionError):  # an ownerless value cannot be claimed by a user either
        open_(c, unowned, owner=OWNER)


def test_truncated_value_fails() -> None:
    c = cipher(key_entry(1))
    with pytest.raises(DecryptionError):
        open_(c, seal(c)[:20])


def test_old_keys_decrypt_first_key_encrypts() -> None:
    old = key_entry(1)
    blob = seal(cipher(old))
    ring = cipher(key_entry(2), old)
    assert open_(ring, blob) == "access-sandbox-123"
    assert FieldCipher.key_version(seal(ring)) == 2


def test_key_is_256_bits() -> None:
    entry = key_entry(3)
    assert len(base64.b64decode(entry.split(":")[1])) == 32


def test_each_column_has_its_own_key_and_old_formats_still_open() -> None:
    """Bar H4: access tokens and TOTP seeds never share a key; blobs of the two older formats still decrypt."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from services import crypto

    entry = key_entry(1)
    c = cipher(entry)
    blob = seal(c)
    assert blob[0] == crypto.FORMAT == 3
    master = base64.b64decode(entry.split(":", 1)[1])
    header, nonce, body = blob[:5], blob[5:17], blob[17:]
    owned_aad = f"finsync|items|access_token_enc|{ROW}|{OWNER}|1".encode()
    with pytest.raises(InvalidTag):  # the ring's key itself does not open it: a derived per-column key does
        AESGCM(master).decrypt(nonce, body, owned_aad)
    column_key = HKDF(hashes.SHA256(), 32, None, b"finsync field key|items|access_token_enc").derive(master)
    assert AESGCM(column_key).decrypt(nonce, body, owned_aad) == b"access-sandbox-123"  # the layout is as documented
    old_aad = f"finsync|items|access_token_enc|{ROW}|1".encode()
    legacy = bytes([crypto.LEGACY_FORMAT]) + header[1:] + nonce + AESGCM(master).encrypt(nonce, b"old token", old_aad)
    unowned = bytes([crypto.UNOWNED_FORMAT]) + header[1:] + nonce + AESGCM(column_key).encrypt(nonce, b"v2", old_aad)
    assert open_(c, legacy) == "old token" and not c.is_current(legacy) and c.is_current(blob)
    assert open_(c, unowned) == "v2" and not c.is_current(unowned)
    with pytest.raises(DecryptionError):  # an older blob is still bound to its column and row
        open_(c, legacy, column="totp_secret_enc")
    with pytest.raises(DecryptionError):
        open_(c, unowned, row=uuid.uuid4())
