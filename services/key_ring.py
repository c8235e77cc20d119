"""The encryption key ring as written in FINSYNC_ENCRYPTION_KEYS: ``version:base64key,...``, parsed and made."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

MAX_KEY_VERSION = 2**32 - 1  # a ciphertext's header holds the version in four bytes (services/crypto.py)


@dataclass(frozen=True)
class KeyEntry:
    """One versioned 256-bit encryption key."""

    version: int
    key: bytes


def parse_key_ring(raw: str) -> tuple[KeyEntry, ...]:
    """Parse ``version:base64key,...``; the first entry encrypts, all decrypt."""
    entries: list[KeyEntry] = []
    for position, part in enumerate(p.strip() for p in raw.split(",")):
        where = f"entry {position + 1}"
        version_text, sep, key_text = part.partition(":")
        digits = version_text.strip()
        if not sep or not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_KEY_VERSION:
            raise ValueError(
                f"{where} must look like 'VERSION:BASE64KEY' with VERSION a whole number from 1 to {MAX_KEY_VERSION}"
            )
        try:
            key = base64.b64decode(key_text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}: the key is not standard base64") from None
        if len(key) != 32:
            raise ValueError(f"{where}: the key must decode to 32 bytes, not {len(key)}")
        if any(e.version == int(version_text) for e in entries):
            raise ValueError(f"{where}: version {int(version_text)} appears twice")
        entries.append(KeyEntry(int(version_text), key))
    if not entries:
        raise ValueError("no keys given")
    return tuple(entries)


def new_key_entry(version: int) -> str:
    """A fresh ``version:key`` entry from the OS CSPRNG."""
    return f"{version}:{base64.b64encode(os.urandom(32)).decode()}"
