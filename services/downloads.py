"""Files prepared for one signed-in session, fetched from finsync's own route (``GET /download/<token>``).

Streamlit's ``st.download_button`` serves its file from ``/media/<hash>`` to anyone holding that address, signed in
or not, for minutes after the person signed out: a bank history must not leave that way. A prepared file is held
here, in the server's memory (the process that serves the page serves the route), for ``DOWNLOAD_LASTS``; it is
given only to a request carrying the session cookie of the session that prepared it, so its address alone (in a
browser's history, a proxy's log) opens nothing, and signing out ends it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

DOWNLOAD_LASTS = 600.0  # seconds: time to press the link (and press it again) after preparing the file
MAX_HELD = 32  # files held at once in this process, the oldest dropped first: memory stays bounded
MAX_HELD_BYTES = 512 * 1024 * 1024  # and their bytes together (a million-row ledger's CSV is about 150 MB)


@dataclass(frozen=True)
class Prepared:
    session_id: uuid.UUID
    data: bytes
    filename: str
    mime: str
    expires: float


class DownloadShelf:
    """Prepared files by the SHA-256 of their token (the token itself is only in the page that shows the link)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, Prepared] = {}
        self._lock = threading.Lock()

    def put(self, session_id: uuid.UUID, data: bytes, *, filename: str, mime: str) -> str:
        """Hold ``data`` for this session; returns the token of its address."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._held = {k: v for k, v in self._held.items() if v.expires > now}
            while self._held and (
                len(self._held) >= MAX_HELD
                or sum(len(p.data) for p in self._held.values()) + len(data) > MAX_HELD_BYTES
            ):
                self._held.pop(next(iter(self._held)))
            self._held[_key(token)] = Prepared(session_id, data, filename, mime, now + DOWNLOAD_LASTS)
        return token

    def get(self, token: str, session_id: uuid.UUID) -> Prepared | None:
        """The file, when ``token`` names one this session prepared and its time has not run out; else None."""
        with self._lock:
            found = self._held.get(_key(token))
        if found is None or found.session_id != session_id or found.expires <= self._clock():
            return None
        return found


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


SHELF = DownloadShelf()
