"""One password sign-in at bcrypt cost 12 (median of 5), on a throwaway SQLite database.

Run: .venv/bin/python bench/bench_signin.py
"""

from __future__ import annotations

import base64
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services import auth, migrations, passwords
from services.config import Settings
from services.container import build_container
from services.db import make_engine
from services.errors import InvalidCredentials
from services.mailer import MemoryMailer


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=url,
        FINSYNC_DATA_DIR=folder,
        FINSYNC_SECRET_KEY=base64.b64encode(os.urandom(36)).decode(),
        FINSYNC_ENCRYPTION_KEYS=f"1:{base64.b64encode(os.urandom(32)).decode()}",
        PLAID_ENV="demo",
    )
    c = build_container(settings, engine=engine, mailer=MemoryMailer())
    assert passwords.BCRYPT_COST == 12
    password = "tidal umbrella orchard kettle 42"
    auth.register(c, email="bench@example.com", username="bench", password=password)
    auth.begin_sign_in(c, login="bench", password=password, ip="127.0.0.1")  # warm-up (dummy hash, imports)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        step = auth.begin_sign_in(c, login="bench", password=password, ip="127.0.0.1")
        auth.redeem_ticket(c, ticket=step.ticket or "", ip="127.0.0.1")
        times.append(time.perf_counter() - start)
    unknown = []
    for _ in range(5):
        start = time.perf_counter()
        with contextlib.suppress(InvalidCredentials):
            auth.begin_sign_in(c, login="nobody", password=password, ip="127.0.0.2")
        unknown.append(time.perf_counter() - start)
    print(f"sign-in (password + session), bcrypt cost 12: median {statistics.median(times) * 1000:.0f} ms of 5")
    print(f"unknown login (dummy verify):                 median {statistics.median(unknown) * 1000:.0f} ms of 5")


if __name__ == "__main__":
    main()
