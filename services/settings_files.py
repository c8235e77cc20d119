"""The files settings come from (``.env``, ``DATA_DIR/secrets.env``): read with one clear line, written whole."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from dotenv.parser import parse_stream

from services.errors import ConfigError


def read_text(path: Path) -> str:
    """A settings file's text, or ``ConfigError`` naming the file and what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problem = "is not UTF-8 text; save it as UTF-8 NAME=value lines"
    except IsADirectoryError:
        problem = "is a directory, not a file of NAME=value lines; move it away"
    except FileNotFoundError:  # os.path.lexists said it was there: a link to nothing (or it was removed just now)
        problem = "has just disappeared; run the command again"
        if path.is_symlink():
            problem = f"is a link to {os.readlink(path)!r}, which does not exist; fix or remove the link"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc}); check its owner and mode"
    raise ConfigError(str(path), problem)


def check_lines(path: Path, text: str) -> None:
    """python-dotenv skips a line it cannot parse (an unclosed quote) with a log line, and the setting on it fell
    back to its default: a DATABASE_URL so lost put the ledger in a new SQLite file. The line is named, not shown."""
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raw = binding.original.string
            line = binding.original.line + len(raw) - len(raw.lstrip("\r\n"))
            raise ConfigError(str(path), f"line {line} is not NAME=value (an unclosed quote?): fix or remove it")


def with_value(text: str, name: str, value: str) -> str | None:
    """``text`` with every line that sets ``name`` (as python-dotenv reads it: any case, ``export``, quotes, a
    comment after it) setting ``value`` instead, keeping the rest of the line; None when no line sets ``name``."""
    out, found = [], False
    for binding in parse_stream(io.StringIO(text)):
        raw = binding.original.string
        if binding.key is None or binding.key.lower() != name.lower():
            out.append(raw)
            continue
        found = True
        old = binding.value or ""
        equals = raw.find("=")  # the name, quoted or not, holds no "=" (or it would not be ``name``)
        at = raw.find(old, equals) if old and equals >= 0 else -1
        if at < 0:  # NAME= with nothing after it, or NAME alone: the line is written anew
            body = raw.rstrip("\r\n")
            end = raw[len(body) :] or "\n"
            out.append(body[: len(body) - len(body.lstrip())] + f"{name}={value}" + end)
        else:
            out.append(raw[:at] + value + raw[at + len(old) :])
    return "".join(out) if found else None


def create_whole(path: Path, body: str) -> bool:
    """Write a new secrets file at ``path`` whole, unless another process got there first (False: use theirs).

    The app and a worker started together on an empty data dir both create it: written in place, the second got
    "File exists", or read the first's file before its lines were in ("is missing ..."), and did not start. Written
    aside and linked into place, the file is never seen half-written, and exactly one process's keys are kept.
    """
    fd, aside = tempfile.mkstemp(prefix=".secrets-", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(aside, path)  # fails, as the old O_EXCL create did, when the file is there
    except FileExistsError:
        return False
    except OSError:  # FAT, exFAT and many SMB shares have no hard links: create it in place, as before
        return _create_in_place(path, body)
    finally:
        os.unlink(aside)
    return True


def _create_in_place(path: Path, body: str) -> bool:
    """``create_whole`` where links cannot be made: another process starting at that very moment may find the file
    before its lines are in (and says which file to check), but never finds a missing or replaced one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body)
    return True
