"""SQLModel tables and read shapes; importing this package registers every table."""

from models.banking import BankAccount, LinkSession, PlaidApiEvent, PlaidItem, PlaidRevocation, WebhookDelivery
from models.ledger import (
    AccountCheck,
    ItemSyncState,
    LedgerTransaction,
    NotificationPrefs,
    PendingEdit,
    SyncJob,
    SyncQuarantine,
    SyncRun,
    SyncStaged,
    TransactionChange,
)
from models.tables import (
    AuditEvent,
    AuthSession,
    KeyCanary,
    OneTimeToken,
    QueuedMail,
    RecoveryCode,
    ThrottleCounter,
    User,
)

__all__ = [
    "AccountCheck",
    "AuditEvent",
    "AuthSession",
    "BankAccount",
    "ItemSyncState",
    "KeyCanary",
    "LedgerTransaction",
    "LinkSession",
    "NotificationPrefs",
    "OneTimeToken",
    "PendingEdit",
    "PlaidApiEvent",
    "PlaidItem",
    "PlaidRevocation",
    "QueuedMail",
    "RecoveryCode",
    "SyncJob",
    "SyncQuarantine",
    "SyncRun",
    "SyncStaged",
    "ThrottleCounter",
    "TransactionChange",
    "User",
    "WebhookDelivery",
]
