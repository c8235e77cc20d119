"""Typed reads of request fields: a value of the wrong JSON type is Plaid's 400 INVALID_FIELD, never a 500."""

from __future__ import annotations

from typing import Any

from services.demo_bank import problems

Body = dict[str, Any]


def need(body: Body, *names: str, where: str = "") -> None:
    """Raise MISSING_FIELDS naming every absent or empty field among `names`."""
    missing = [where + n for n in names if body.get(n) in (None, "", [])]
    if missing:
        raise problems.missing_fields(missing)


def _wrong(where: str, name: str, kind: str) -> problems.BankError:
    return problems.invalid_field(f"{where}{name} must be {kind}")


def text(body: Body, name: str, *, where: str = "") -> str:
    """A required string (call `need` first, so absence is MISSING_FIELDS)."""
    value = body.get(name)
    if not isinstance(value, str):
        raise _wrong(where, name, "a string")
    return value


def opt_text(body: Body, name: str, *, where: str = "") -> str | None:
    """An optional string; null and absent are both None."""
    return None if body.get(name) is None else text(body, name, where=where)


def texts(body: Body, name: str, *, where: str = "") -> list[str] | None:
    """An optional array of strings; null and absent are both None."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(where, name, "an array of strings")
    return value


def obj(body: Body, name: str, *, where: str = "") -> Body:
    """An optional object; null and absent are both an empty object."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _wrong(where, name, "an object")
    return value


def integer(body: Body, name: str, default: int, *, where: str = "") -> int:
    """An optional integer (JSON true/false are not integers, though Python's bool is one)."""
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, name, "an integer")
    return value


def flag(body: Body, name: str, *, where: str = "") -> bool:
    """An optional boolean, false when absent or null."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong(where, name, "a boolean")
    return value
