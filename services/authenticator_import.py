"""Import users from a streamlit-authenticator ``config.yaml`` (bcrypt hashes kept as the legacy scheme).

Imported accounts are plain users (roles in the file are ignored: admins are made with the CLI),
unverified until they verify their address, and their hash is upgraded to our scheme at the first
successful sign-in. Entries with a plain-text password are skipped and the password is never stored.
The file is read by a YAML loader that refuses anchors and aliases, deep nesting, huge integers and any tag
``SafeLoader`` does not know (``!!python/...``), so a few hostile bytes cannot spend minutes of CPU or
gigabytes of memory, nor name code to run (security bar, hostile inputs).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from models import User
from services import audit, passwords, users
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError

MAX_FILE_BYTES = 5 * 1024 * 1024
# A real file nests 6 nodes deep (credentials, usernames, user, roles, role); PyYAML composes recursively.
MAX_DEPTH = 32
# PyYAML turns "1:2:3:..." into an int in quadratic time, and Python refuses ints over 4300 digits.
MAX_INT_CHARS = 32
IMPORTED = f"imported from a streamlit-authenticator file, {audit.COMMAND_LINE}"  # the CLI is the only caller
BCRYPT_HASH = re.compile(r"\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}")


class _Refused(Exception):
    """The file uses a YAML feature that no credentials file needs and that hostile files abuse."""


class _CredentialsLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors or aliases (billion laughs), deeper nesting than MAX_DEPTH or huge ints."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # (untyped in types-PyYAML)
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:  # "&name" or "*name" (an AliasEvent)
            raise _Refused("uses YAML anchors or aliases (& and *), which credential files never need")
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep, which credential files never are")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Refuse a key given twice: PyYAML keeps the last, so one of two "bob" entries would vanish unreported."""
        lines: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                if (key.tag, key.value) in lines:
                    name = audit.clean_text(key.value, 64)
                    raise _Refused(f"lists {name!r} twice (lines {lines[key.tag, key.value]} and {line})")
                lines[key.tag, key.value] = line
        return super().construct_mapping(node, deep=deep)

    def construct_unknown_tag(self, node: yaml.Node) -> Any:
        """A tag ``SafeLoader`` has no constructor for (``!!python/object/apply:os.system``, ``!Ref``): it never runs
        anything, but said only "not a YAML file" of a file that is one."""
        tag = audit.clean_text(re.sub(r"^tag:yaml\.org,2002:", "!!", node.tag or ""), 80)  # as it was written
        raise _Refused(f"uses the YAML tag {tag!r}, which credential files never need")

    def construct_short_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(f"has a number longer than {MAX_INT_CHARS} characters, which credential files never need")
        return self.construct_yaml_int(node)


_CredentialsLoader.add_constructor("tag:yaml.org,2002:int", _CredentialsLoader.construct_short_int)
_CredentialsLoader.add_constructor(None, _CredentialsLoader.construct_unknown_tag)


@dataclass(frozen=True)
class ImportReport:
    """Usernames imported, and (name, reason) for every entry skipped."""

    imported: list[str]
    skipped: list[tuple[str, str]]


def _read_capped(path: Path) -> bytes:
    """The file's bytes; refused when it is not a regular file (/dev/zero, a pipe: their size says 0 and they never
    end) or holds more than ``MAX_FILE_BYTES``."""
    # O_NONBLOCK: opening a pipe nobody writes to would wait forever; a regular file reads as usual.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path} is not a regular file: give the path of the YAML file itself.")
        body = handle.read(MAX_FILE_BYTES + 1)
    if len(body) > MAX_FILE_BYTES:
        raise InputError(f"{path.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
    return body


def _load(path: Path) -> dict[str, Any]:
    try:
        body = _read_capped(path).decode("utf-8")
        data = yaml.load(body, Loader=_CredentialsLoader)  # noqa: S506 (safe subclass)
    except _Refused as exc:
        raise InputError(f"{path.name} {exc}; nothing was imported.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(f"{path.name} is not a YAML file.") from None
    credentials = data.get("credentials") if isinstance(data, dict) else None
    entries = credentials.get("usernames") if isinstance(credentials, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{path.name} has no credentials.usernames section (is it a streamlit-authenticator file?).")
    return entries


def _entry(name: object, entry: object) -> tuple[str, str, str] | str:
    """(username, email, hash) or the reason to skip."""
    if not isinstance(name, str) or not isinstance(entry, dict):
        return "not a user entry"
    try:
        username = users.clean_username(name)
        email = users.clean_email(str(entry.get("email", "")))
    except InputError as exc:
        return str(exc)
    secret = entry.get("password")
    match = BCRYPT_HASH.fullmatch(secret) if isinstance(secret, str) else None
    if match is None or int(match[1]) < passwords.MIN_COST:
        return "the password is not a bcrypt hash (plain-text passwords are never imported)"
    if int(match[1]) > passwords.MAX_COST:
        return f"the bcrypt cost {int(match[1])} is above {passwords.MAX_COST}: every sign-in attempt would tie up the server"
    return username, email, match[0]


def import_authenticator(c: Container, path: Path) -> ImportReport:
    """Create the file's users (unverified, legacy hash); skip invalid and duplicate entries with a reason."""
    entries = _load(Path(path))
    imported: list[str] = []
    skipped: list[tuple[str, str]] = []
    now = c.clock()
    with unit_of_work(c.engine) as session:
        for name, entry in entries.items():
            label = audit.clean_text(name, 64)
            parsed = _entry(name, entry)
            if isinstance(parsed, str):
                skipped.append((label, parsed))
                continue
            username, email, secret = parsed
            if users.identity_taken(session, users.fold(email), users.fold(username)):
                skipped.append((label, "that email address or username is already registered"))
                continue
            user = User(
                email=email,
                email_norm=users.fold(email),
                username=username,
                username_norm=users.fold(username),
                password_hash=secret,
                password_scheme=passwords.LEGACY_SCHEME,
                email_verified=False,
                created_at=now,
                password_changed_at=now,
            )
            session.add(user)
            session.flush()
            audit.record(session, event="registered", user_id=user.id, detail=IMPORTED, at=now)
            imported.append(username)
    return ImportReport(imported=imported, skipped=skipped)
