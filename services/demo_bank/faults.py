"""Per-item fault injection: counted HTTP errors, outages, slowness and a mid-pagination mutation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from services.demo_bank.problems import BankError, institution_down, internal_error, rate_limited

FaultKind = Literal[
    "login_required",
    "rate_limit",
    "server_error",
    "institution_down",
    "mutation_during_pagination",
    "delay",
    "new_accounts",
    "permission_revoked",
]

# Endpoints that keep working whatever state the item is in, as Plaid's item-management calls do
# (unless a fault names one of them explicitly).
ALWAYS_UP = frozenset({"/item/remove", "/item/get", "/item/public_token/exchange"})


@dataclass
class Counted:
    """Fail the next `times` calls (to `endpoint` only, if given)."""

    times: int
    endpoint: str | None = None


@dataclass
class Faults:
    """Everything currently wrong with one item."""

    counted: dict[str, Counted] = field(default_factory=dict)
    delay: float = 0.0
    mutation_page: int | None = None

    def next_error(self, path: str) -> BankError | None:
        """Consume one counted fault matching this endpoint and return the error to answer with."""
        for kind in ("rate_limit", "server_error", "institution_down"):
            spec = self.counted.get(kind)
            if spec is None or spec.times <= 0 or (spec.endpoint is not None and spec.endpoint != path):
                continue
            if path in ALWAYS_UP and spec.endpoint != path:
                continue  # item management fails only when a fault names it explicitly
            spec.times -= 1
            if spec.times <= 0:
                del self.counted[kind]
            if kind == "rate_limit":
                return rate_limited(path)
            return internal_error() if kind == "server_error" else institution_down()
        return None
