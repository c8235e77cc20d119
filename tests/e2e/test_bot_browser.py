"""The sync bot with nobody clicking: the demo bank's customers shop, the bank sends a signed webhook,
the app's own scheduler syncs, and the new transaction is in the ledger and in the export."""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, shot, sign_in, start_server

pytestmark = pytest.mark.e2e
PASSWORD = "saffron beacon tundra 7812 oriole"


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory, FINSYNC_DEMO_ACTIVITY_SECONDS="3", SYNC_TICK_SECONDS="1")


def exported(server: Server, path: str, start: str | None = None, end: str | None = None) -> list[dict[str, str]]:
    dates = [*(["--from", start] if start else []), *(["--to", end] if end else [])]
    result = server.cli("export", "transactions", "--email", "bot@example.com", "--format", "csv", "--out", path,
                        *dates)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_new_demo_transactions_arrive_without_a_click(busy_server: Server, browser: object, tmp_path: object) -> None:
    server = busy_server
    made = server.cli("users", "create", "--email", "bot@example.com", "--username", "bot", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    linked = server.cli("plaid", "link-sandbox", "--email", "bot@example.com", "--institution", "ins_demo_2")
    assert linked.returncode == 0, linked.stderr

    out = f"{tmp_path}/ledger.csv"
    deadline = time.monotonic() + 90
    first: list[dict[str, str]] = []
    while time.monotonic() < deadline and not first:  # the scheduler's first sync of the new item
        time.sleep(1)
        first = exported(server, out)
    assert first, "the scheduler never synced the new bank"
    while time.monotonic() < deadline:  # then the bank's new purchases, announced by webhook
        time.sleep(2)
        later = exported(server, out)
        if len(later) > len(first):
            break
    else:
        pytest.fail("no new transaction arrived by itself")
    new_ids = {r["transaction_id"] for r in later} - {r["transaction_id"] for r in first}
    assert new_ids and len({r["transaction_id"] for r in later}) == len(later)  # no duplicate

    page = browser.new_context().new_page()  # type: ignore[attr-defined]
    sign_in(page, server, "bot", PASSWORD)
    page.get_by_role("link", name="Sync history").click()
    page.get_by_role("heading", name="Sync history").wait_for(timeout=20_000)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=20_000)
    shot(page, "sync-history")
    page.get_by_role("link", name="Transactions").click()
    page.get_by_text("newest first").wait_for(timeout=20_000)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=20_000)  # the ledger grid, drawn after the caption
    page.wait_for_timeout(500)  # its canvas paints a moment later
    shot(page, "transactions")
    page.get_by_test_id("stDataFrame").first.hover()  # the table's own toolbar shows on hover ...
    toolbar = page.get_by_test_id("stElementToolbar").first
    toolbar.get_by_role("button", name="Show/hide columns").wait_for(timeout=10_000)
    assert toolbar.get_by_role("button", name="Download as CSV").count() == 0  # ... without a download of the rows

    # Left open, the list says when a sync has brought more, and shows them when asked (never reloading by itself).
    # The bank's webhooks have spent the item's burst budget by now (their syncs wait): cron's sync brings the rest.
    caption = page.get_by_text("newest first")
    before = caption.inner_text()
    synced = server.cli("sync", "--email", "bot@example.com")
    assert synced.returncode == 0 and re.search(r"\b[1-9]\d* added", synced.stdout), synced.stdout + synced.stderr
    news = page.get_by_text("Your banks sent new or changed transactions since this list was shown.")
    news.wait_for(timeout=60_000)
    assert caption.inner_text() == before  # the list itself waits for the click
    shot(page, "transactions-news")
    page.get_by_role("button", name="Show them").click()
    page.wait_for_function(
        "before => [...document.querySelectorAll('p')].some(p => p.innerText.includes('newest first')"
        " && p.innerText !== before)",
        arg=before,
        timeout=20_000,
    )
    assert _count(caption.inner_text()) > _count(before)

    # A row opened for editing: the list's poll still speaks only of news that came (it claimed news at every poll
    # once a row was open, for ever: the page reused the name of what the poll compared with).
    grid = page.get_by_test_id("stDataFrame").first
    page.wait_for_timeout(1_000)  # the grid settles where the news was
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)  # the first row's selection box
    page.get_by_role("button", name="Save").wait_for(timeout=20_000)
    page.wait_for_timeout(2_000 + 1_000 * 25)  # more than one poll of the news fragment (20 s)
    shot(page, "transactions-row-open")
    assert not news.is_visible()

    # The CSV, after the password, comes from finsync's own route, to this signed-in browser and no other; dates
    # typed in the form limit it (to weeks back here: the bank's new purchases are today's), and stay typed.
    page.get_by_text("Download as CSV").click()
    days = sorted({r["date"] for r in later})
    start, end = days[len(days) // 4], days[len(days) // 2]
    for label, day in (("From (optional)", start), ("To (optional)", end)):
        page.get_by_role("spinbutton", name=f"year, {label}").click()  # year, month, day: each moves to the next
        page.keyboard.type(day.replace("-", ""))
    page.locator('input[aria-label="Your password"]:visible').fill("not the password at all")
    page.get_by_role("button", name="Prepare the file").click()
    page.get_by_text("That password is not right.").wait_for(timeout=20_000)
    assert [_typed(page, "From (optional)"), _typed(page, "To (optional)")] == [start, end]  # to try again
    page.locator('input[aria-label="Your password"]:visible').fill(PASSWORD)
    page.get_by_role("button", name="Prepare the file").click()
    link = page.get_by_role("link", name="Download CSV")
    link.wait_for(timeout=20_000)
    shot(page, "transactions-download")
    with page.expect_download() as got:
        link.click()
    rows = list(csv.DictReader(open(got.value.path(), encoding="utf-8")))  # noqa: SIM115 - read once
    assert got.value.suggested_filename == "finsync-transactions.csv"
    assert rows and len({r["transaction_id"] for r in rows}) == len(rows)
    assert {r["transaction_id"] for r in rows} == {r["transaction_id"] for r in exported(server, out, start, end)}
    assert all(start <= r["date"] <= end for r in rows) and len(rows) < len(later)
    assert [_typed(page, "From (optional)"), _typed(page, "To (optional)")] == [start, end]
    page.get_by_text(f"{len(rows):,} transactions from {start} to {end}.").wait_for(timeout=5_000)
    assert page.locator('input[aria-label="Your password"]:visible').input_value() == ""  # no password left
    address = link.get_attribute("href")
    assert address and address.startswith("/download/")
    stranger = browser.new_context().new_page()  # type: ignore[attr-defined]
    answer = stranger.request.get(f"{server.url}{address}")
    assert answer.status == 404 and "no longer available" in answer.text()
    stranger.context.close()

    # Text shown through Markdown (a search, a bank's or merchant's name) never becomes a link in the browser.
    search = page.get_by_label("Search name, merchant, category, account, note or tags")
    search.fill("www.evil.example or https://evil.example/x or help@evil.example")
    search.press("Enter")
    said = page.locator("[data-testid=stMarkdownContainer]").filter(has_text="No transactions match")
    said.wait_for(timeout=20_000)
    assert "www.evil.example or https://evil.example/x or help@evil.example" in said.inner_text().replace("\u2060", "")
    assert said.locator("a").count() == 0
    page.context.close()


def _count(caption: str) -> int:
    """How many transactions the Transactions caption says the list holds ("1,234 transactions, newest first")."""
    return int(caption.split(" ", 1)[0].replace(",", ""))


def _typed(page: object, label: str) -> str:
    """The date a date field shows, read from its year, month and day segments ("2026-10-01")."""
    parts = [page.get_by_role("spinbutton", name=f"{part}, {label}").inner_text() for part in ("year", "month", "day")]  # type: ignore[attr-defined]
    return "-".join(parts)
