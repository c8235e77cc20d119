"""Log records as JSON lines on stderr: one object per record, control characters escaped, UTC times.

One handler on the root logger, levels set on the ``finsync`` namespace only. Streamlit's and
uvicorn's loggers keep their own handlers and do not propagate, so nothing is printed twice; other
libraries reach us at WARNING and above (the root's default level), never their DEBUG chatter.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

ENV_VAR = "FINSYNC_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
NAMESPACE = "finsync"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_CORE = ("ts", "level", "logger", "msg")

# What a database driver quotes from the rows it refused (PostgreSQL's DETAIL of a unique, foreign-key or not-null
# violation; the value in "invalid input syntax"; psycopg2 binds parameters into the statement it shows under
# LINE n): emails, hashes, ciphertexts. Column, constraint and table names stay, they say what went wrong; the
# values go. SQLAlchemy's own statement text carries no values (engines are made with hide_parameters=True).
WITHHELD = "(values withheld)"
_KEY = re.compile(r"(Key \((?:[^()\n]|\([^()\n]*\))*\))=\((.*)$", re.M)  # key columns may hold one level of ( )
_KEY_ENDINGS = (" already exists", " is not present in table", " is still referenced from table", " is duplicated",
                " conflicts with existing key")  # fmt: skip
_DRIVER_VALUES = (
    (re.compile(r"(Failing row contains ).*$", re.M), r"\1" + WITHHELD),
    (re.compile(r'(invalid input (?:syntax|value) for [^:\n]*: )"[^\n]*$', re.M), r"\1" + WITHHELD),
    (re.compile(r"(?:^|(?<=\\n))(LINE \d+: )(?:[^\n\\]|\\(?!n))*", re.M), r"\1" + WITHHELD),
)
_GATE = ("DETAIL", "LINE ", "invalid input")


def _withhold_key(match: re.Match[str]) -> str:
    """``Key (cols)=(values) already exists.`` -> ``Key (cols)=(values withheld) already exists.``"""
    key, tail = match.group(1), match.group(2)
    for ending in _KEY_ENDINGS:
        at = tail.find(ending)
        if at >= 0:
            rest = tail[at:]
            return f"{key}={WITHHELD}{rest if '=(' not in rest else ending}"  # a second key's values go too
    return f"{key}={WITHHELD}"


def scrub_driver_values(text: str) -> str:
    """``text`` without the row values a database error quotes (see ``_DRIVER_VALUES``)."""
    if not any(word in text for word in _GATE):
        return text
    text = _KEY.sub(_withhold_key, text)
    for pattern, replacement in _DRIVER_VALUES:
        text = pattern.sub(replacement, text)
    return text


def utc_stamp(created: float) -> str:
    """``2026-01-01T12:00:00.123Z``: UTC, ISO-8601, milliseconds."""
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Loggers with their own format and handlers that print an uncaught exception with its traceback: Streamlit's
# (a page's) and uvicorn's (a route of our own, such as the webhook).
STREAMLIT_EXCEPTION_LOGGERS = ("streamlit.error_util", "streamlit.runtime.fragment", "uvicorn.error")


class ScrubDriverValues(logging.Filter):
    """On a logger whose handlers we do not own: the record's text and traceback without the driver's values."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub_driver_values(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub_driver_values(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": utc_stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub_driver_values(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[f"extra_{key}" if key in _CORE or key in ("exc", "stack") else key] = value
        if record.exc_info:
            out["exc"] = scrub_driver_values(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = scrub_driver_values(record.exc_text)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii also escapes U+2028, U+0085 and the like, which some log viewers split lines on.
        return json.dumps(out, ensure_ascii=True, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now (test capture and reloaders swap it)."""

    finsync_json = True

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # as logging.lastResort does: no stream fixed at creation

    @property  # read-only on purpose, as in logging.lastResort
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def _resolve(level: str) -> tuple[int, bool]:
    """The level to use and whether the environment asked for something we refuse."""
    wanted = os.environ.get(ENV_VAR)
    if wanted is not None and wanted.strip().upper() in LEVELS:
        return logging.getLevelName(wanted.strip().upper()), False
    fallback = level.strip().upper() if level.strip().upper() in LEVELS else "INFO"
    return logging.getLevelName(fallback), wanted is not None


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON handler once; ``FINSYNC_LOG_LEVEL`` (DEBUG/INFO/WARNING/ERROR) overrides ``level``."""
    root = logging.getLogger()
    if not any(getattr(h, "finsync_json", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    for name in STREAMLIT_EXCEPTION_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, ScrubDriverValues) for f in target.filters):
            target.addFilter(ScrubDriverValues())
    numeric, refused = _resolve(level)
    logging.getLogger(NAMESPACE).setLevel(numeric)
    if refused:  # the value itself is not echoed: it may be anything someone pasted
        logging.getLogger(f"{NAMESPACE}.logs").warning(
            "%s is not one of %s; using %s", ENV_VAR, ", ".join(LEVELS), logging.getLevelName(numeric)
        )
