"""A Plaid-compatible demo bank: deterministic data, fault injection, signed webhooks and a Link stand-in."""

from services.demo_bank.app import DEMO_CLIENT_ID, DEMO_SECRET, create_app
from services.demo_bank.bank import Bank
from services.demo_bank.catalog import INSTITUTIONS
from services.demo_bank.links import PASSWORD, USERNAMES
from services.demo_bank.server import Clock, DemoBankHandle, start_demo_bank
from services.demo_bank.webhooks import Delivery

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_SECRET",
    "INSTITUTIONS",
    "PASSWORD",
    "USERNAMES",
    "Bank",
    "Clock",
    "Delivery",
    "DemoBankHandle",
    "create_app",
    "start_demo_bank",
]
