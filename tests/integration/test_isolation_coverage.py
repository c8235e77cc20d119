"""Tenant isolation (security bar F1), its reach: every service function that takes a ``user_id`` has a recipe.

Functions are found by introspection (every public function of every ``services`` module with a ``user_id``
or ``actor_id`` parameter), so a new one fails ``test_every_user_scoped_function_is_covered`` until it gets a
recipe in ``CASES`` (tests/integration/isolation_cases.py) or a reason in ``EXEMPT``; the recipes are run by
tests/integration/test_isolation_calls.py.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import services
from tests.integration.isolation_cases import CASES


# --- discovery --------------------------------------------------------------------------------------------
def discovered() -> dict[str, Callable[..., Any]]:
    """Every public function defined (not imported) in a services module that takes ``user_id`` or ``actor_id``."""
    found: dict[str, Callable[..., Any]] = {}
    for info in pkgutil.walk_packages(services.__path__, "services."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            fn = inspect.unwrap(obj) if callable(obj) else None
            if name.startswith("_") or not inspect.isfunction(fn) or getattr(obj, "__module__", "") != module.__name__:
                continue
            if {"user_id", "actor_id"} & set(inspect.signature(fn).parameters):
                found[f"{info.name.removeprefix('services.')}.{name}"] = obj
    return found


EXEMPT: dict[str, str] = {
    "banking_store.encrypt_token": "pure: seals a token to the item and owner it is given; reads and writes no row",
    "plaid_events.calls_for": "context manager tagging Plaid call-log rows with ids its caller already checked; reads nothing",
    "sync_bulk.insert_new": "sync internals: user_id and item_id come from the PlaidItem row sync_item locked, never a caller",
    "sync_store.write_plan": "sync internals: user_id and item_id come from the PlaidItem row sync_item locked, never a caller",
    "job_rows.enqueue_row": "job rows in the caller's unit of work: item_id and user_id come from a PlaidItem row the caller read",
    "job_rows.sync_soon": "job rows in the caller's unit of work: complete_repair passes the item owned_item checked is the user's",
}


# --- tests ------------------------------------------------------------------------------------------------
def test_every_user_scoped_function_is_covered() -> None:
    names = set(discovered())
    assert len(names) > 50, sorted(names)  # discovery itself works
    missing = sorted(names - CASES.keys() - EXEMPT.keys())
    assert not missing, (
        f"new user-scoped service functions without an isolation case in CASES (or a reason in EXEMPT): {missing}"
    )
    assert not CASES.keys() & EXEMPT.keys(), sorted(CASES.keys() & EXEMPT.keys())
    stale = sorted((CASES.keys() | EXEMPT.keys()) - names)
    assert not stale, f"cases for functions that no longer exist or take no user_id: {stale}"
