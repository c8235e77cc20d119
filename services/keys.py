"""Keys derived from FINSYNC_SECRET_KEY, one per purpose (HKDF), so no key does two jobs."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` (e.g. ``password-pepper``, ``token-mac``)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"finsync", info=purpose.encode()).derive(secret)


def token_hash(token: str) -> str:
    """SHA-256 hex of a high-entropy token: what we store instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
