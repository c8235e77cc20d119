"""A real finsync server (``streamlit run app.py``) and real Chromium for browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]
    log: Path

    def outbox(self) -> list[str]:
        folder = self.data_dir / "outbox"
        files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        return [f.read_text(encoding="utf-8") for f in files]

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: PLW1510
            [sys.executable, "-m", "services.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env,
            timeout=120,
        )


def start_server(factory: pytest.TempPathFactory, **settings: str) -> Iterator[Server]:
    """Migrate a fresh data dir and serve ``app.py`` on a free loopback port until the generator closes."""
    if not Path(CHROMIUM).exists():
        pytest.skip("browser test: Debian's chromium is not installed (make test installs it as root)")
    data = factory.mktemp("e2e") / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINSYNC_", "PLAID_", "DATABASE_URL", "SMTP_"))}
    env.update(FINSYNC_DATA_DIR=str(data), FINSYNC_BASE_URL=f"http://127.0.0.1:{port}", **settings)
    log = data.parent / "server.log"
    subprocess.run(
        [sys.executable, "-m", "services.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
                "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"server did not start: {log.read_text()[-2000:]}")
    try:
        yield Server(url=url, data_dir=data, env=env, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def shot(page: object, name: str) -> None:
    """Keep a screenshot of what the user saw (for people reviewing the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in(page: object, server: Server, login: str, password: str) -> None:
    """Sign in through the form as a person does and wait for the home page."""
    page.goto(server.url)  # type: ignore[attr-defined]
    page.get_by_label("Email or username").fill(login)  # type: ignore[attr-defined]
    page.get_by_label("Password", exact=True).fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.get_by_text(f"Welcome, {login}").wait_for(timeout=30_000)  # type: ignore[attr-defined]


def csp_violations(page: object) -> list[str]:
    """Collects what the page's console says about Content-Security-Policy refusals, from now on (all frames)."""
    seen: list[str] = []

    def note(message: object) -> None:
        text = str(message.text)  # type: ignore[attr-defined]
        if "Content Security Policy" in text:
            seen.append(text)

    page.on("console", note)  # type: ignore[attr-defined]
    return seen


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A browser test that failed shows the end of its server's log (syncs, webhooks, audit events) in the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Server) and value.log.exists():
            tail = value.log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
            report.sections.append((f"server log of {value.url} (last 40 lines)", "\n".join(tail)))
