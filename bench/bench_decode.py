"""Transactions decoded per second: plaid-python's default models vs our raw-JSON fast path, same run.

Usage: .venv/bin/python bench/bench_decode.py [--transactions N] [--sdk-transactions M]
Both paths read /transactions/sync from the demo bank over real loopback HTTP with count=500.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plaid
from plaid.api import plaid_api
from plaid.model.transactions_sync_request import TransactionsSyncRequest

from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, start_demo_bank
from services.plaid_client import PlaidGateway


def sdk_default(url: str, token: str, limit: int) -> tuple[int, float]:
    """Decode pages into the SDK's models (default type checking) until `limit` transactions."""
    cfg = plaid.Configuration(
        host=url, api_key={"clientId": DEMO_CLIENT_ID, "secret": DEMO_SECRET, "plaidVersion": "2020-09-14"}
    )
    api = plaid_api.PlaidApi(plaid.ApiClient(cfg))
    total, cursor, started = 0, "", time.perf_counter()
    while total < limit:
        page = api.transactions_sync(TransactionsSyncRequest(access_token=token, cursor=cursor, count=500))
        total += len(page.added)
        cursor = page.next_cursor
        if not page.has_more:
            break
    return total, time.perf_counter() - started


def fast_path(url: str, token: str) -> tuple[int, float]:
    """Sync the whole history through the gateway (raw JSON -> our dataclasses)."""
    gateway = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, url)
    total, cursor, started = 0, "", time.perf_counter()
    while True:
        page = gateway.transactions_sync(token, cursor, 500)
        total += len(page.added)
        cursor = page.next_cursor
        if not page.has_more:
            return total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions", type=int, default=200_000, help="history size for the fast path")
    parser.add_argument("--sdk-transactions", type=int, default=5_000, help="how many the slow SDK path decodes")
    args = parser.parse_args()
    bank = start_demo_bank()
    try:
        item_id, token = bank.link_item("ins_demo_1")
        t0 = time.perf_counter()
        bank.generate_history(item_id, args.transactions)
        print(f"history: {args.transactions:,} extra transactions generated in {time.perf_counter() - t0:.2f} s")
        fast_n, fast_s = fast_path(bank.url, token)
        sdk_n, sdk_s = sdk_default(bank.url, token, args.sdk_transactions)
    finally:
        bank.stop()
    fast_rate, sdk_rate = fast_n / fast_s, sdk_n / sdk_s
    print(f"sdk default models : {sdk_n:>8,} txns in {sdk_s:7.2f} s = {sdk_rate:>9,.0f} txns/s")
    print(f"gateway fast path  : {fast_n:>8,} txns in {fast_s:7.2f} s = {fast_rate:>9,.0f} txns/s")
    print(f"ratio fast/sdk     : {fast_rate / sdk_rate:.1f}x  (both include HTTP and the bank's JSON encoding)")


if __name__ == "__main__":
    main()
