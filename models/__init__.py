"""SQLModel tables and read shapes; importing this package registers every table."""

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
    "KeyCanary",
    "OneTimeToken",
    "RecoveryCode",
    "ThrottleCounter",
    "User",
]
