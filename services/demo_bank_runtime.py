"""The demo bank for a data dir: one per machine, shared by the app, workers and the CLI; state kept on disk."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from services.config import Settings

if TYPE_CHECKING:
    from services.demo_bank import DemoBankHandle

STATE_FILE = "demo_bank.json"
URL_FILE = "demo_bank.url"
_lock = threading.Lock()
_running: dict[Path, DemoBankHandle] = {}


def _answers(url: str) -> bool:
    """True when ``url`` is a live demo bank (it answers a Plaid-shaped error with a request id)."""
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}/item/get", data=b"{}", headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - our own loopback URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError):
        return False
    try:
        return "request_id" in json.loads(body)
    except ValueError:
        return False


def ensure_demo_bank(settings: Settings) -> str:
    """The URL of this data dir's demo bank, starting it here if no process runs one yet.

    Several processes (the app, `services.cli worker`, `plaid link-sandbox`) must talk to the same
    bank, or each would keep its own copy of the items and overwrite the other's state file.
    """
    state = (settings.data_dir / STATE_FILE).resolve()
    url_file = state.with_name(URL_FILE)
    with _lock:
        handle = _running.get(state)
        if handle is not None:
            return handle.url
        if url_file.exists():
            url = url_file.read_text(encoding="utf-8").strip()
            if url.startswith("http://127.0.0.1:") and _answers(url):
                return url
        from services.demo_bank import start_demo_bank  # starlette and uvicorn only when demo mode runs

        state.parent.mkdir(parents=True, exist_ok=True)
        handle = _running[state] = start_demo_bank(state_file=state)
        tmp = url_file.with_suffix(".tmp")
        tmp.write_text(handle.url, encoding="utf-8")
        os.replace(tmp, url_file)
        return handle.url
