"""Users: normalising and validating identities, and creating accounts."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, func, or_, select
from sqlmodel import Session, col

from models import User
from services import passwords
from services.errors import InputError

USERNAME_RE = re.compile(r"^[\w.-]{3,32}$")
MAX_EMAIL = 254
MAX_USERNAME_FOLDED = 64  # the column its folded form is kept in
ROLES = ("user", "admin")
CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


@dataclass(frozen=True)
class UserPublic:
    """What leaves the service about a user: never a hash or a secret."""

    id: uuid.UUID
    email: str
    username: str
    role: str
    status: str
    email_verified: bool
    totp_enabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            role=user.role,
            status=user.status,
            email_verified=user.email_verified,
            totp_enabled=user.totp_enabled,
            created_at=user.created_at,
            last_sign_in_at=user.last_sign_in_at,
        )


def fold(text: str) -> str:
    """NFKC + casefold: the comparison form of emails and usernames."""
    return unicodedata.normalize("NFKC", text).casefold()


def _no_controls(text: str, what: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        raise InputError(f"The {what} contains invisible or control characters.")


def _script(ch: str) -> str | None:
    """The script of a letter from its Unicode name (LATIN, CYRILLIC, GREEK, ...); None for non-letters."""
    if not ch.isalpha():
        return None
    return unicodedata.name(ch, "UNKNOWN").split(" ")[0]


# Phonetic notation (IPA, small capitals, modifier letters): no one's name is spelled in it, and its letters pass
# for ordinary ones ("ɑdmin", "ʟɪᴍɪᴛ"). NFKC already turns the superscript ones into plain letters.
_PHONETIC = ((0x0250, 0x02FF), (0x1D00, 0x1DBF))
# Letters of one alphabet that read as others, beyond what NFKC + casefold unify: "admın" is "admin" to the eye.
_SAME_SHAPE = {"ı": "i", "ȷ": "j"}
_TO_PLAIN = str.maketrans("".join(_SAME_SHAPE), "".join(_SAME_SHAPE.values()))


def _phonetic(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _PHONETIC)


def skeleton(username_norm: str) -> str:
    """The folded username as it reads: letters that pass for others replaced by them."""
    return username_norm.translate(_TO_PLAIN)


def _mixed_script(text: str) -> bool:
    """True when one label mixes Latin, Cyrillic or Greek letters: the shape of a homoglyph spoof."""
    for label in re.split(r"[@.+_-]", text):
        scripts = {s for s in map(_script, label) if s in CONFUSABLE_SCRIPTS}
        if len(scripts) > 1:
            return True
    return False


def clean_email(raw: str) -> str:
    """A syntactically valid address in its normal form, or ``InputError`` saying why not."""
    text = raw.strip()
    if not text:
        raise InputError("Enter an email address.")
    if len(text) > MAX_EMAIL:
        raise InputError(f"An email address has at most {MAX_EMAIL} characters.")
    _no_controls(text, "email address")
    # Look-alike letters (a Cyrillic 'а' in 'exаmple.com') make a second account that reads the same.
    if _mixed_script(text):
        raise InputError("That email address mixes letters from different alphabets; type it in one alphabet.")
    if _phonetic(text):
        raise InputError("That email address has phonetic letters (such as ɑ or ᴍ); type it in ordinary letters.")
    # Full-width letters and ligatures ("ａlice", "oﬃce") compare as the plain address, so such an address would
    # take a real one's place (and its mail would go to the look-alike mailbox).
    if unicodedata.normalize("NFKC", text) != text:
        raise InputError(
            "That email address has special forms of letters (such as full-width letters or ligatures); "
            "type it in ordinary letters."
        )
    if len(fold(text)) > MAX_EMAIL:  # a few letters fold into more than one ("ß" into "ss")
        raise InputError(f"An email address has at most {MAX_EMAIL} characters.")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InputError(f"That email address is not valid. {exc}") from None  # the reason is a sentence
    return result.normalized


def clean_username(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw.strip())
    _no_controls(text, "username")
    if not USERNAME_RE.fullmatch(text) or "@" in text:
        raise InputError("A username has 3 to 32 letters, digits, dots, dashes or underscores.")
    if _mixed_script(text):  # "аlice" with a Cyrillic "а" would pass for someone else's "alice"
        raise InputError("That username mixes letters from different alphabets; use one alphabet.")
    if _phonetic(text):  # "ɑlice" with the phonetic alpha, likewise
        raise InputError("That username has phonetic letters (such as ɑ or ᴍ); use ordinary letters.")
    if len(fold(text)) > MAX_USERNAME_FOLDED:  # a few letters fold into several ("ΐ" into three): it is stored so
        raise InputError("That username is too long once letters are compared without case; use a shorter one.")
    return text


def find_by_login(session: Session, login: str) -> User | None:
    """The user whose email or username folds to ``login``."""
    key = fold(login.strip())
    if not key or len(key) > MAX_EMAIL or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in key):
        return None  # PostgreSQL refuses NUL in text; no stored identity has control characters anyway
    return session.execute(
        select(User).where(or_(col(User.email_norm) == key, col(User.username_norm) == key))
    ).scalar_one_or_none()


def email_taken(session: Session, email_norm: str) -> bool:
    query = select(func.count()).select_from(User).where(col(User.email_norm) == email_norm)
    return bool(session.execute(query).scalar_one())


def _reads_as(username_norm: str) -> ColumnElement[bool]:
    """Users whose folded username is this one, or reads the same ("admın" for "admin")."""
    stored: Any = col(User.username_norm)
    for letter, plain in _SAME_SHAPE.items():
        stored = func.replace(stored, letter, plain)
    return stored == skeleton(username_norm)  # type: ignore[no-any-return]


def username_taken(session: Session, username_norm: str) -> bool:
    """True when a user has this folded username, or one that reads the same."""
    query = select(func.count()).select_from(User).where(_reads_as(username_norm))
    return bool(session.execute(query).scalar_one())


def find_by_email(session: Session, email_norm: str, *, lock: bool = False) -> User | None:
    """The user whose folded email is ``email_norm`` (locked for this transaction with ``lock``)."""
    query = select(User).where(col(User.email_norm) == email_norm)
    return session.execute(query.with_for_update() if lock else query).scalar_one_or_none()


def identity_taken(session: Session, email_norm: str, username_norm: str) -> bool:
    query = (
        select(func.count())
        .select_from(User)
        .where(
            or_(
                col(User.email_norm) == email_norm,
                _reads_as(username_norm),
                col(User.username_norm) == email_norm,
            )
        )
    )
    return bool(session.execute(query).scalar_one())


def check_new_user(email: str, username: str, password: str) -> tuple[str, str]:
    """The normal forms of a new account's email and username; ``InputError`` on bad input or a weak password."""
    email, username = clean_email(email), clean_username(username)
    check_new_password(password, email, username)
    return email, username


def check_new_password(password: str, email: str, username: str) -> None:
    """``InputError`` saying why a new account's password is refused (scoring it can take seconds: see callers)."""
    passwords.check_policy(password, context=[email, username, email.partition("@")[0]])


def add_user(
    session: Session,
    *,
    email: str,
    username: str,
    password_hash: str,
    role: str = "user",
    email_verified: bool = False,
) -> User:
    """Add a user whose email and username ``check_new_user`` returned (the caller's unit of work commits)."""
    if role not in ROLES:
        raise InputError(f"Role must be one of {', '.join(ROLES)}.")
    user = User(
        email=email,
        email_norm=fold(email),
        username=username,
        username_norm=fold(username),
        password_hash=password_hash,
        role=role,
        email_verified=email_verified,
    )
    session.add(user)
    session.flush()
    return user


def create_user(
    session: Session,
    *,
    email: str,
    username: str,
    password: str,
    pepper: bytes,
    role: str = "user",
    email_verified: bool = False,
) -> User:
    """Validate and add a user (the caller's unit of work commits); ``InputError`` on bad input."""
    if role not in ROLES:
        raise InputError(f"Role must be one of {', '.join(ROLES)}.")
    email, username = check_new_user(email, username, password)
    if identity_taken(session, fold(email), fold(username)):
        raise InputError("That email address or username is already registered.")
    password_hash = passwords.hash_password(password, pepper)
    return add_user(
        session, email=email, username=username, password_hash=password_hash, role=role, email_verified=email_verified
    )
