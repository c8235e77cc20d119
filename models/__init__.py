"""SQLModel tables and read shapes; importing this package registers every table."""

from models.banking import BankAccount, LinkSession, PlaidApiEvent, PlaidItem, WebhookDelivery
from models.tables import (
    AuditEvent,
    AuthSession,
    KeyCanary,
    OneTimeToken,
    RecoveryCode,
    ThrottleCounter,
    User,
)

__all__ = [
    "AuditEvent",
    "AuthSession",
    "BankAccount",
    "KeyCanary",
    "LinkSession",
    "OneTimeToken",
    "PlaidApiEvent",
    "PlaidItem",
    "RecoveryCode",
    "ThrottleCounter",
    "User",
    "WebhookDelivery",
]
