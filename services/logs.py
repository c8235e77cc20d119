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
# violation; psycopg2 binds parameters into the statement it shows under LINE n): emails, hashes, ciphertexts.
# The column and constraint names stay, they say what went wrong; the values go. SQLAlchemy's own statement text
# carries no values (engines are made with hide_parameters=True).
_WITHHELD = "(values withheld)"
_DRIVER_VALUES = (
    (
        re.compile(r"(Key \([^)\n]*\))=\(.*\)(?= already exists| is not present| is still referenced|$)", re.M),
        r"\1=" + _WITHHELD,
    ),
    (re.compile(r"(Failing row contains ).*$", re.M), r"\1" + _WITHHELD),
    (re.compile(r"^(LINE \d+: ).*$", re.M), r"\1" + _WITHHELD),
)


def scrub_driver_values(text: str) -> str:
    """``text`` without the row values a database error quotes (see ``_DRIVER_VALUES``)."""
    if "DETAIL" not in text and "LINE " not in text:
        return text
    for pattern, replacement in _DRIVER_VALUES:
        text = pattern.sub(replacement, text)
    return text


def utc_stamp(created: float) -> str:
    """``2026-01-01T12:00:00.123Z``: UTC, ISO-8601, milliseconds."""
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Streamlit's own loggers (its format, its handlers) that print a page's uncaught exception with its traceback.
STREAMLIT_EXCEPTION_LOGGERS = ("streamlit.error_util", "streamlit.runtime.fragment")


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
