"""Password policy and hashing, code formats and identity validation: no database (A1-A6, A10, B10, E5, E7)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bcrypt
import pytest

from services import otp, passwords
from services.errors import InputError
from services.users import clean_email, clean_username

PEPPER = b"p" * 32
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


# A1, A2, A5, A6: policy ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "password",
    [
        "kettle orbit plum",  # 17 lowercase letters and spaces, no composition rules
        "🦊🌵🎻🧲🪁🛶🧊🦉🌋🎲🧵🪐🦔🍄🛸",  # 15 emoji = 15 code points (60 bytes)
        "a" * 0 + "zq" + "奇妙的蓝色大象在月光下跳舞唱歌",  # CJK
        "x7" + "moon lantern violin cactus " * 9,  # 254 characters
    ],
)
def test_policy_accepts_long_unicode_without_composition_rules(password: str) -> None:
    passwords.check_policy(password, context=["alice@example.com", "alice"])


def test_length_is_counted_in_code_points_14_refused_15_accepted() -> None:
    with pytest.raises(InputError, match="at least 15 characters \\(you typed 14\\)"):
        passwords.check_policy("ortho-kiwi-jaz")
    passwords.check_policy("🦊🌵🎻🧲🪁🛶🧊🦉🌋🎲🧵🪐🦔🍄🛸")
    with pytest.raises(InputError, match="at least 15"):
        passwords.check_policy("🦊🌵🎻🧲🪁🛶🧊🦉🌋🎲🧵🪐🦔🍄")  # 14 emoji = 56 bytes, still 14 characters


def test_too_long_is_refused_with_a_message_and_without_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(passwords.bcrypt, "hashpw", lambda *a: calls.append(1))
    with pytest.raises(InputError, match="at most 256"):
        passwords.check_policy("y" * 10_000)
    assert calls == []


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("Password1234567", []),
        ("passwordpassword", []),
        ("alice.wonder2026", ["alice.wonder@example.com", "alice.wonder"]),
        ("finsyncfinsync123", []),
        ("aaaaaaaaaaaaaaaaaaaa", []),
    ],
)
def test_guessable_and_context_passwords_are_refused_with_a_reason(password: str, context: list[str]) -> None:
    with pytest.raises(InputError, match=r"too weak: .+") as info:
        passwords.check_policy(password, context=context)
    assert "hint" not in str(info.value).lower()


@pytest.mark.parametrize(
    "password",
    [
        " " * 20,  # was refused as "mostly your username, your email address or this site's name"
        " " * 300,  # not "at most 256 characters" either
        " " * 5,  # nor "at least 15": no length of spaces makes a password
        "\t \u00a0\u3000\u2003 \n" * 3,  # tabs, no-break, ideographic and em spaces, line breaks
        "\u200b\u200d\u2060" * 6,  # invisible format characters
    ],
)
def test_a_password_of_only_blank_characters_is_refused_saying_so(password: str) -> None:
    with pytest.raises(InputError, match=r"^A password of only spaces \(or other blank characters\) is not a password"):
        passwords.check_policy(password, context=["alice@example.com", "alice", "alice"])


def test_spaces_around_a_real_password_are_not_taken_for_a_blank_one() -> None:
    with pytest.raises(InputError, match="at least 15 characters \\(you typed 0\\)"):
        passwords.check_policy("")  # nothing typed: not called spaces
    passwords.check_policy("   kettle orbit plum granite   ", context=["alice@example.com", "alice", "alice"])


def test_nul_is_refused() -> None:
    with pytest.raises(InputError, match="NUL"):
        passwords.check_policy("correct horse\x00battery staple")


# A3, A4, A5: hashing -------------------------------------------------------------------------
def test_no_truncation_past_72_bytes() -> None:
    stored = passwords.hash_password("a" * 72 + "X", PEPPER)
    assert passwords.verify_password("a" * 72 + "X", stored, PEPPER)
    assert not passwords.verify_password("a" * 72 + "Y", stored, PEPPER)


@pytest.mark.parametrize("size", [73, 300, 4096])
def test_long_inputs_never_raise(size: int) -> None:
    password = "🦊" * (size // 4) + "a" * (size % 4)
    assert len(password.encode()) == size
    stored = passwords.hash_password(password, PEPPER)
    assert passwords.verify_password(password, stored, PEPPER)
    assert not passwords.verify_password(password + "b", stored, PEPPER)


def test_nfkc_normalised_forms_verify() -> None:
    stored = passwords.hash_password("\u00c5ngstr\u00f6m lantern violin", PEPPER)
    assert passwords.verify_password("\u212bngstr\u00f6m lantern violin", stored, PEPPER)


def test_stored_hash_is_bcrypt_cost_12_over_a_peppered_prehash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 12)
    stored = passwords.hash_password("🦊" * 50, PEPPER)  # 200 bytes
    assert stored.startswith("$2b$12$")
    assert passwords.verify_password("🦊" * 50, stored, PEPPER)
    assert not passwords.verify_password("🦊" * 50, stored, b"q" * 32)  # the pepper is part of it
    assert not bcrypt.checkpw("🦊".encode() * 18, stored.encode())  # not plain bcrypt of the bytes


def test_legacy_hash_verifies_and_asks_for_upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 12)
    legacy = bcrypt.hashpw(b"old streamlit password", bcrypt.gensalt(4)).decode()
    assert passwords.verify_password("old streamlit password", legacy, PEPPER, scheme=passwords.LEGACY_SCHEME)
    assert not passwords.verify_password("old streamlit passwor", legacy, PEPPER, scheme=passwords.LEGACY_SCHEME)
    assert passwords.needs_rehash(legacy, passwords.LEGACY_SCHEME)
    assert passwords.needs_rehash("$2b$10$" + "x" * 53, passwords.SCHEME) is True


def test_no_password_hints_anywhere() -> None:
    found = subprocess.run(
        ["grep", "-rniE", "password_hint|security question", "services", "pages", "app.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == ""


# E5, E7: code formats ------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "clean"), [("123456", "123456"), (" 123 456 ", "123456")])
def test_codes_accepted_after_removing_spaces(code: str, clean: str) -> None:
    assert otp.clean_code(code) == clean


@pytest.mark.parametrize(
    "code", ["１２３４５６", "12345", "1234567", 123456, "1" * 5000, "12345\n", "٤٥٦١٢٣", "12a456", None, "123456\x00"]
)
def test_codes_refused_before_pyotp_sees_them(code: object) -> None:
    assert otp.clean_code(code) is None


def test_recovery_code_format() -> None:
    assert otp.clean_recovery("ABCDE-FGHIJ-KLMNO-PQRST-UVWXY-Z") == "abcdefghijklmnopqrstuvwxyz"
    assert otp.clean_recovery("abc") is None
    assert otp.clean_recovery("x" * 5000) is None


# B10 and hostile identities ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("a@b.c\r\nBcc: x@y.z", "control characters"),
        ("bob@example.com\x00", "control characters"),
        ("user@exаmple.com", "different alphabets"),  # Cyrillic 'а' in a Latin domain
        ("pаypal@example.com", "different alphabets"),
        ("ɑdmin@example.com", "phonetic letters"),  # the phonetic alpha: one alphabet, still a look-alike
        ("\uff41lice@example.com", "special forms of letters"),  # a full-width "a": compares as alice@
        ("o\ufb03ce@example.com", "special forms of letters"),  # the "ffi" ligature: compares as office@
        ("\u00df" * 64 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 24 + ".com", "at most 254"),  # "ß" folds to "ss"
        ("x" * 10_000 + "@example.com", "at most 254"),
        ("not an address", "not valid"),
        ("<script>@example.com", "not valid"),
        ("", "Enter an email"),
    ],
)
def test_bad_email_addresses_are_refused(raw: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        clean_email(raw)


def test_single_script_international_addresses_are_allowed() -> None:
    assert clean_email("иван@пример.рф") == "иван@пример.рф"
    assert clean_email("O'Brien+tag@Example.COM") == "O'Brien+tag@example.com"


@pytest.mark.parametrize("raw", ["ab", "x" * 10_000, "a b c", "robert'); DROP TABLE users;--", "<script>", "bo\r\nb"])
def test_bad_usernames_are_refused(raw: str) -> None:
    with pytest.raises(InputError):
        clean_username(raw)


@pytest.mark.parametrize("raw", ["ɑdmin", "ʟɪᴍɪᴛ", "ᴀdmin"])
def test_usernames_in_phonetic_letters_that_pass_for_ordinary_ones_are_refused(raw: str) -> None:
    with pytest.raises(InputError, match="phonetic letters"):
        clean_username(raw)


def test_a_username_whose_folded_form_outgrows_its_column_is_refused_with_a_message() -> None:
    """ "ΐ" folds into three characters: 32 of them fit the 3-to-32 rule but not the 64 the folded form is kept in
    (PostgreSQL refused the row with an error the page could only call unexpected)."""
    with pytest.raises(InputError, match="too long once letters are compared without case"):
        clean_username("\u0390" * 32)
    assert clean_username("\u0390" * 21) == "\u0390" * 21  # 63 folded: fits


def test_ordinary_letters_of_every_alphabet_stay_welcome_in_usernames() -> None:
    assert [clean_username(n) for n in ("josé", "ırmak", "иван", "zoë_1")] == ["josé", "ırmak", "иван", "zoë_1"]


@pytest.mark.parametrize(
    ("password", "stored_cost", "scheme"),
    [
        ("old streamlit password", 4, passwords.LEGACY_SCHEME),  # an imported hash cheaper than ours
        ("x" * 73, 4, passwords.LEGACY_SCHEME),  # too long for plain bcrypt: refused without any check
        ("a password of ours", 6, passwords.SCHEME),  # ours at the full cost: nothing to pad
        ("a password of ours", 5, passwords.SCHEME),  # ours from before a cost increase
    ],
)
def test_every_verification_costs_the_same_bcrypt_work(
    monkeypatch: pytest.MonkeyPatch, password: str, stored_cost: int, scheme: str
) -> None:
    """Bar B3: an imported (cheaper) hash must not answer faster than an unknown login's dummy check."""
    monkeypatch.setattr(passwords, "BCRYPT_COST", 6)
    raw = b"old streamlit password" if scheme == passwords.LEGACY_SCHEME else None
    stored = (
        bcrypt.hashpw(raw, bcrypt.gensalt(rounds=stored_cost)).decode()
        if raw
        else passwords.hash_password(password, PEPPER, cost=stored_cost)
    )
    spent: list[int] = []
    real = bcrypt.checkpw

    def counting(secret: bytes, hashed: bytes) -> bool:
        spent.append(1 << int(hashed.split(b"$")[2]))
        return real(secret, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    passwords.verify_password(password, stored, PEPPER, scheme=scheme)
    assert sum(spent) == 1 << 6  # 2**cost units: the same as the dummy check of an unknown login
    spent.clear()
    passwords.dummy_verify(password, PEPPER)
    assert sum(spent) == 1 << 6


@pytest.mark.parametrize(
    "password",
    [
        "alice ALICE@example.com",  # zxcvbn alone scores this 3: the username beside the address
        "Alice@Example.com!! alice",
        "example ALICE finsync 2026",
        "ALICE.EXAMPLE.COM.FINSYNC",
    ],
)
def test_a_password_made_of_the_users_own_names_is_refused_in_plain_words(password: str) -> None:
    with pytest.raises(InputError, match="mostly your username, your email address or this site's name"):
        passwords.check_policy(password, context=["alice@example.com", "alice", "alice"])


def test_a_password_that_merely_contains_the_username_is_fine() -> None:
    passwords.check_policy("alice keeps granite meadows", context=["alice@example.com", "alice", "alice"])


def test_an_invalid_address_is_refused_in_two_plain_sentences() -> None:
    with pytest.raises(InputError) as info:
        clean_email("not-an-email")
    assert str(info.value) == "That email address is not valid. An email address must have an @-sign."


def test_a_weak_password_is_refused_in_one_sentence() -> None:
    """The checker's own sentence came after our colon with its capital ("too weak: This is similar to …"): it now
    continues our sentence in lower case."""
    with pytest.raises(InputError) as info:
        passwords.check_policy("Password1234567", context=[])
    said = str(info.value)
    assert said.startswith("This password is too weak: this is similar to a commonly used password. "), said
    assert ": This" not in said
