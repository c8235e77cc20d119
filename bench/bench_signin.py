"""One password sign-in at bcrypt cost 12 (median of 5), and a flood of bad ones, on a throwaway SQLite database.

Run: .venv/bin/python bench/bench_signin.py

The flood (security bar C4): 20 threads send wrong passwords at once, first all from one client
address (spraying), then each from its own. Meanwhile a probe thread times a database read like the
one ``/healthz`` does; the figures are its latency during the flood against the same probe at rest,
and how many bcrypt computations the attempts cost (the address limit refuses before bcrypt).
"""

from __future__ import annotations

import base64
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services import auth, migrations, passwords
from services.container import build_container
from services.db import check_database, make_engine
from services.errors import InvalidCredentials
from services.mailer import MemoryMailer
from services.settings import Settings


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
    for spread in (False, True):
        flood(c, spread=spread)


def _probe(c, stop: threading.Event) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    while not stop.is_set():
        start = time.perf_counter()
        check_database(c.engine)
        times.append(time.perf_counter() - start)
        time.sleep(0.02)
    return times


def _p95(times: list[float]) -> float:
    return sorted(times)[int(len(times) * 0.95)] * 1000


def flood(c, *, spread: bool, threads: int = 20, each: int = 5) -> None:  # type: ignore[no-untyped-def]
    """``threads`` x ``each`` wrong passwords at once; probe latency and bcrypt count."""
    from services import throttle

    with c.engine.begin() as conn:  # a fresh start: no counters left by the run before
        conn.exec_driver_sql("DELETE FROM throttle_counters")
    stop, rest = threading.Event(), []
    probe = threading.Thread(target=lambda: rest.extend(_probe(c, stop)))
    probe.start()
    time.sleep(1.0)
    stop.set()
    probe.join()
    hashes = [0]
    real = passwords.bcrypt.checkpw

    def counted(secret: bytes, hashed: bytes) -> bool:
        hashes[0] += 1
        return real(secret, hashed)

    passwords.bcrypt.checkpw = counted  # type: ignore[assignment]

    def attack(n: int) -> None:
        for _ in range(each):
            with contextlib.suppress(Exception):
                auth.begin_sign_in(c, login="bench", password="wrong guess " * 2, ip=f"10.0.0.{n if spread else 1}")

    stop, busy = threading.Event(), []
    probe = threading.Thread(target=lambda: busy.extend(_probe(c, stop)))
    probe.start()
    started = time.perf_counter()
    workers = [threading.Thread(target=attack, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took = time.perf_counter() - started
    stop.set()
    probe.join()
    passwords.bcrypt.checkpw = real  # type: ignore[assignment]
    where = f"{threads} addresses" if spread else "one address"
    print(
        f"flood from {where}: {threads * each} bad sign-ins by {threads} threads in {took:.1f} s, "
        f"{hashes[0]} bcrypt computations (address limit {throttle.IP_LIMIT}, account lock after {throttle.ACCOUNT_LIMIT}); "
        f"probe p95 {_p95(busy):.0f} ms, max {max(busy) * 1000:.0f} ms (at rest: p95 {_p95(rest):.1f} ms)"
    )


if __name__ == "__main__":
    main()
