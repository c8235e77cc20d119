"""The one exception tree of finsync; pages catch only ``FinsyncError``.

::

    FinsyncError                     every error a user or operator can act on
    ├── ConfigError                  a setting is missing or malformed (names the setting)
    ├── DatabaseUnavailable          the database cannot be reached or opened
    ├── CryptoError                  key ring problems
    │   └── DecryptionError          ciphertext tampered, moved, or its key is gone
    │       └── KeyMissing           its key version is not in the ring (put back, nothing is lost)
    ├── InputError                   bad user input; ``str()`` is the message to show
    │   └── DuplicateConnection      that bank login is linked already (``item_id``: repair it instead)
    ├── NotFound                     no such object for this user
    │   └── NotYours                 someone else's object: the same words, and audited (``access_denied``)
    ├── PermissionDenied             the user may not do this
    │   └── AdminOnly                an admin function asked for by someone who is not one (audited too)
    └── AuthError                    sign-in and account flows
        ├── InvalidCredentials       generic: wrong password, unknown user, locked, disabled
        ├── TokenInvalid             a link, ticket or code that is unknown, used or expired
        └── Throttled                too many attempts; ``retry_after`` seconds
"""

from __future__ import annotations


class FinsyncError(Exception):
    """Root of every error finsync raises on purpose."""


class ConfigError(FinsyncError):
    """A setting is missing or invalid; the message names it and never echoes a secret."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class DatabaseUnavailable(FinsyncError):
    """The database cannot be reached or opened."""


class CryptoError(FinsyncError):
    """The key ring is unusable."""


class DecryptionError(CryptoError):
    """A ciphertext did not authenticate (tampered, moved to another row, or key missing)."""


class KeyMissing(DecryptionError):
    """The value's key version is not in FINSYNC_ENCRYPTION_KEYS: an operator's change, undone by putting it back."""

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


class InputError(FinsyncError):
    """Bad input; the message says what to fix."""


class DuplicateConnection(InputError):
    """The bank just linked is a connection the user already has; ``item_id`` is the one to repair (when
    ``repairable``; else the one to remove first: its access was withdrawn, and Link cannot bring it back)."""

    def __init__(self, message: str, item_id: object, *, repairable: bool = True) -> None:
        self.item_id = item_id
        self.repairable = repairable
        super().__init__(message)


class NotFound(FinsyncError):
    """The object does not exist for this user."""


class PermissionDenied(FinsyncError):
    """The user is not allowed to do this."""


class Denial(FinsyncError):
    """An authorisation failure: ``unit_of_work`` has ``audit`` record it after the rollback (ASVS 16.3.2)."""

    def __init__(self, message: str, *, user_id: object, what: str) -> None:
        super().__init__(message)
        self.user_id, self.what, self.recorded = user_id, what, False


class NotYours(Denial, NotFound):
    """Someone else's object, said in the words of a missing one (no enumeration), and audited."""


class AdminOnly(Denial, PermissionDenied):
    """An admin function asked for by someone who is not an active admin, audited."""


class AuthError(FinsyncError):
    """Sign-in and account flows."""


class InvalidCredentials(AuthError):
    """One generic message for every sign-in failure, so nothing is enumerable."""

    def __init__(self, message: str = "Sign-in failed: check your details and try again.") -> None:
        super().__init__(message)


class SignInEnded(InvalidCredentials):
    """The code step of a sign-in is over (5 minutes, or 5 wrong codes): the password must be given again. Said as
    such, so the person is not left typing right codes into a dead step; it tells nothing the password did not."""

    def __init__(
        self,
        message: str = "This sign-in has ended: it took more than 5 minutes or had too many wrong codes. "
        "Please sign in again.",
    ) -> None:
        super().__init__(message)


class TokenInvalid(AuthError):
    """A link, ticket or code that is unknown, already used or expired."""

    def __init__(self, message: str = "This link or code is invalid or has expired.") -> None:
        super().__init__(message)


class Throttled(AuthError):
    """Too many attempts."""

    def __init__(self, message: str, retry_after: int = 0) -> None:
        self.retry_after = retry_after
        super().__init__(message)
