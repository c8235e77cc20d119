"""Password policy (NIST SP 800-63B rev. 4) and hashing: bcrypt over base64(HMAC-SHA-384(pepper, pw))."""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Iterable

import bcrypt
from zxcvbn import zxcvbn

from services.errors import InputError

MIN_LENGTH = 15
MAX_LENGTH = 256
BCRYPT_COST = 12
# Costs a stored hash may have. 4 is bcrypt's own minimum (cheaper stored hashes are padded to our cost when
# verified and replaced at the next sign-in). Each step doubles the work: 14 is 4x ours, about a second per
# attempt; 31 would tie up a server thread for days per sign-in attempt, so such a hash is never checked.
MIN_COST = 4
MAX_COST = 14
SCHEME = "pbcrypt"
LEGACY_SCHEME = "legacy"
# zxcvbn is quadratic-ish in length; beyond this a password is long enough that we score a prefix.
ZXCVBN_MAX = 100


def normalise(password: str) -> str:
    """NFKC, so the same password typed on another keyboard verifies (NIST 800-63B 3.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, context: Iterable[str] = ()) -> None:
    """Raise ``InputError`` saying in plain words why a new password is refused."""
    if "\x00" in password:
        raise InputError("Passwords cannot contain NUL characters.")
    password = normalise(password)
    if password and not any(unicodedata.category(ch)[0] not in "ZC" for ch in password):  # first: at any length
        raise InputError(  # no other reason is the right one (not "mostly your username", not "too short")
            "A password of only spaces (or other blank characters) is not a password: anyone could type it. "
            "Use a few unrelated words instead."
        )
    length = len(password)
    if length < MIN_LENGTH:
        raise InputError(f"Use at least {MIN_LENGTH} characters (you typed {length}). A few unrelated words work well.")
    if length > MAX_LENGTH:
        raise InputError(f"Use at most {MAX_LENGTH} characters.")
    words = [w for w in context if w]
    _not_mostly_context(password, [*words, "finsync"])
    result = zxcvbn(password[:ZXCVBN_MAX], user_inputs=[*words, "finsync"], max_length=ZXCVBN_MAX)
    if result["score"] < 3:
        feedback = result.get("feedback") or {}
        reason = feedback.get("warning") or "It is too easy to guess."
        tips = " ".join(feedback.get("suggestions") or [])
        raise InputError(f"This password is too weak: {_clause(reason)}. {tips}".strip())


def _clause(sentence: str) -> str:
    """The checker's sentence ("This is similar to a commonly used password.") as the rest of ours: no capital
    after the colon (unless the word is "I" or all capitals: "ID"), no full stop of its own."""
    sentence = sentence.strip().rstrip(".")
    first = sentence.split(" ", 1)[0]
    if first[:1].isupper() and first != "I" and not (len(first) > 1 and first.isupper()):
        sentence = sentence[0].lower() + sentence[1:]
    return sentence


OWN_CHARACTERS = 10  # letters, digits or symbols (emoji) a password needs besides the user's own names and the site's


def _not_mostly_context(password: str, words: list[str]) -> None:
    """NIST 800-63B: no password made of context-specific words. zxcvbn lets "alice ALICE@example.com" pass (its
    separators and case changes score as effort); what is left once the username, the email address (whole, its
    name, its domain and the domain's labels) and the site's name are taken out must still be a password."""
    parts = set()
    for word in words:
        folded = word.casefold()
        parts.add(folded)
        if "@" in folded:
            name, _, domain = folded.partition("@")
            parts |= {name, domain, *domain.split(".")}
    left = password.casefold()
    for part in sorted((p for p in parts if len(p) >= 3), key=len, reverse=True):
        left = left.replace(part, " ")
    if sum(unicodedata.category(ch)[0] not in "PZC" for ch in left) < OWN_CHARACTERS:  # letters, digits, symbols
        raise InputError(
            "This password is too weak: it is mostly your username, your email address or this site's name. "
            "Add a few words of your own."
        )


def _prehash(password: str, pepper: bytes) -> bytes:
    digest = hmac.new(pepper, normalise(password).encode("utf-8"), hashlib.sha384).digest()
    return base64.b64encode(digest)


def hash_password(password: str, pepper: bytes, *, cost: int | None = None) -> str:
    """A bcrypt hash of the peppered pre-hash; any length of Unicode, never truncated."""
    # BCRYPT_COST is read at call time so the test suite can lower it (one test keeps 12).
    rounds = cost if cost is not None else BCRYPT_COST
    return bcrypt.hashpw(_prehash(password, pepper), bcrypt.gensalt(rounds=rounds)).decode()


def verify_password(password: str, stored: str, pepper: bytes, *, scheme: str = SCHEME) -> bool:
    """True when ``password`` matches; legacy hashes are plain bcrypt of the UTF-8 password.

    Every answer costs the bcrypt work of our cost: a cheaper stored hash (an imported one at cost 10, a
    legacy password too long to check at all) is padded, so timing never tells an imported account from
    an unknown login (security bar B3; the dummy verification covers unknown logins).
    """
    if len(password) > MAX_LENGTH * 4:
        return False
    done = 0  # the bcrypt cost actually spent, as 2**cost units
    try:
        if hash_cost(stored) > MAX_COST:  # imported before the importer refused such costs: never spend it
            return False
        if scheme == LEGACY_SCHEME:
            raw = password.encode("utf-8")
            if len(raw) > 72:
                return False
            done = _units(stored)
            return bcrypt.checkpw(raw, stored.encode())
        done = _units(stored)
        return bcrypt.checkpw(_prehash(password, pepper), stored.encode())
    except ValueError:  # not a bcrypt hash: nothing was spent on it
        done = 0
        return False
    finally:
        _pad(done)


def hash_cost(stored: str) -> int:
    """The cost written in a bcrypt hash (0 when it has none)."""
    try:
        return max(int(stored.split("$")[2]), 0)
    except (IndexError, ValueError):
        return 0


def _units(stored: str) -> int:
    """2**cost of a bcrypt hash (0 when it has no readable cost: no work is done then)."""
    rounds = hash_cost(stored)
    return 1 << rounds if rounds else 0


_PAD_HASHES: dict[int, bytes] = {}


def _pad(done: int) -> None:
    """Spend what is missing to reach 2**BCRYPT_COST units, one dummy check per missing power of two (4 and up)."""
    missing = (1 << BCRYPT_COST) - done
    for cost in range(BCRYPT_COST, 3, -1):
        if missing >= 1 << cost:
            if cost not in _PAD_HASHES:
                _PAD_HASHES[cost] = bcrypt.hashpw(b"finsync timing pad", bcrypt.gensalt(rounds=cost))
            bcrypt.checkpw(b"finsync timing pad", _PAD_HASHES[cost])
            missing -= 1 << cost


def needs_rehash(stored: str, scheme: str) -> bool:
    """Legacy scheme or a lower cost than ours: upgrade at the next successful sign-in."""
    if scheme != SCHEME:
        return True
    try:
        return int(stored.split("$")[2]) < BCRYPT_COST
    except (IndexError, ValueError):
        return True


_DUMMY: dict[tuple[bytes, int], str] = {}


def dummy_verify(password: str, pepper: bytes) -> None:
    """Spend the same bcrypt time for an unknown user, so timing reveals nothing."""
    key = (pepper, BCRYPT_COST)
    if key not in _DUMMY:
        _DUMMY[key] = hash_password("finsync dummy password for timing", pepper)
    verify_password(password, _DUMMY[key], pepper)
