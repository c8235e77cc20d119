"""Stopping the server stops the sync bot and the demo bank it serves, instead of cutting them off mid-job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A child process: importing app.py starts the scheduler, and Streamlit allows one Runtime per process.
_PROBE = """
import json, urllib.error, urllib.request
from services.cli import main
main(["db", "upgrade"])
from starlette.testclient import TestClient
import app
from services import scheduler
from services.config import get_settings


def bank_answers(url):
    try:
        urllib.request.urlopen(url + "/", timeout=2)
    except urllib.error.HTTPError:
        return True  # it answered (with an error page for "/"): the server is up
    except OSError:
        return False
    return True


out = {}
with TestClient(app.app) as web:
    assert web.get("/healthz").status_code == 200
    running = scheduler._instance
    bank = app.container().plaid.base_url
    out["while_serving"] = [running is not None and running.running, bank_answers(bank)]
out["after_shutdown"] = [scheduler._instance is not None, running.running, bank_answers(bank)]
print(json.dumps(out))
"""


def test_stopping_the_server_stops_the_scheduler_and_the_demo_bank() -> None:
    done = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env={**os.environ, "SYNC_TICK_SECONDS": "3600"},  # isolated_env points FINSYNC_DATA_DIR at tmp
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["while_serving"] == [True, True]
    assert seen["after_shutdown"] == [False, False, False]
