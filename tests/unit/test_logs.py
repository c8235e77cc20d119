"""JSON log lines (SECURITY_BAR I3): one object per record, control characters escaped, UTC times."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services import audit
from services.logs import ENV_VAR, configure_logging, scrub_driver_values

FORGED = "bob\r\n2026-01-01 admin login ok"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _ours(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "finsync_json", False)]


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Each test configures from scratch; the root and ``finsync`` loggers are put back afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("finsync")
    saved_level = ours.level
    for handler in _ours(root):
        root.removeHandler(handler)
    yield
    for handler in _ours(root):
        root.removeHandler(handler)
    ours.setLevel(saved_level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    # splitlines() also breaks on \r, \x85 and \u2028: a record must contain none of them raw.
    return [json.loads(line) for line in err.splitlines()]


def test_one_json_object_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    log = logging.getLogger("finsync.test")
    log.info("first %s", 1)
    log.warning("second")
    first, second = _lines(capsys)
    assert first["msg"] == "first 1" and first["level"] == "INFO" and first["logger"] == "finsync.test"
    assert second["msg"] == "second" and second["level"] == "WARNING"
    assert "exc" not in first


def test_timestamp_is_utc_iso8601_with_milliseconds(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("finsync.test").info("tick")
    (line,) = _lines(capsys)
    assert TS.match(line["ts"]), line["ts"]


def test_forged_username_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("finsync.auth").info("sign-in failed for %s", FORGED, extra={"username": FORGED})
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.count("\n") == 1 and "\r" not in err
    assert "\\r\\n2026-01-01 admin login ok" in err
    record = json.loads(err)
    assert record["msg"] == f"sign-in failed for {FORGED}" and record["username"] == FORGED


def test_unicode_line_breaks_are_escaped_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("finsync.test").info("a\u2028b\x85c\x00d\x1b[31m")
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "\u2028" not in err and "\x85" not in err and "\x1b" not in err
    assert json.loads(err)["msg"] == "a\u2028b\x85c\x00d\x1b[31m"


def test_extra_fields_from_the_audit_trail_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    class Session:  # audit.record only adds the row; the caller commits
        def add(self, row: object) -> None:
            self.row = row

    configure_logging()
    user_id = uuid.uuid4()
    audit.record(Session(), event="sign_in_failed", user_id=user_id, detail=FORGED)  # type: ignore[arg-type]
    (line,) = _lines(capsys)
    assert line["logger"] == "finsync.auth"
    assert (line["event"], line["user_id"], line["result"]) == ("sign_in_failed", str(user_id), "failure")


def test_extras_never_replace_the_core_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("finsync.test").info("real", extra={"ts": "forged", "level": "forged", "exc": "forged"})
    (line,) = _lines(capsys)
    assert TS.match(line["ts"]) and line["level"] == "INFO" and "exc" not in line
    assert line["extra_ts"] == line["extra_level"] == line["extra_exc"] == "forged"


def test_non_json_extras_are_written_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    item = uuid.uuid4()
    logging.getLogger("finsync.test").info("sync", extra={"item_id": item})
    assert _lines(capsys)[0]["item_id"] == str(item)


def test_exception_traceback_is_one_field(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("finsync.test").exception("sync failed")
    (line,) = _lines(capsys)
    assert line["msg"] == "sync failed" and line["level"] == "ERROR"
    assert line["exc"].startswith("Traceback") and "RuntimeError: boom" in line["exc"]


def test_configuring_twice_adds_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    configure_logging()
    assert len(_ours(logging.getLogger())) == 1
    logging.getLogger("finsync.test").info("once")
    assert len(_lines(capsys)) == 1


def test_levels_apply_to_the_finsync_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging()
    assert logging.getLogger("finsync").level == logging.INFO
    configure_logging("WARNING")
    assert logging.getLogger("finsync").level == logging.WARNING
    monkeypatch.setenv(ENV_VAR, "debug")
    configure_logging("WARNING")  # the environment wins over the caller's default
    assert logging.getLogger("finsync").level == logging.DEBUG
    assert logging.getLogger("finsync.auth").getEffectiveLevel() == logging.DEBUG


@pytest.mark.parametrize("bad", ["verbose", "", "CRITICAL", "10", "INFO\nforged"])
def test_bad_level_falls_back_to_info_with_a_warning(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_VAR, bad)
    configure_logging()
    assert logging.getLogger("finsync").level == logging.INFO
    (line,) = _lines(capsys)
    assert line["level"] == "WARNING" and ENV_VAR in line["msg"] and "using INFO" in line["msg"]
    assert bad not in line["msg"] or bad == ""  # the value itself is never echoed


def test_handler_writes_to_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging()  # created while one stderr is in place...
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)  # ...it follows the next (test capture, reloaders)
    logging.getLogger("finsync.test").info("still here")
    assert json.loads(swapped.getvalue())["msg"] == "still here"


REFUSED = (
    'duplicate key value violates unique constraint "users_email_norm_key"\n'
    "DETAIL:  Key (email_norm)=(ann.private@example.com) already exists.\n"
)


def _refusal() -> Exception:
    try:
        raise RuntimeError(REFUSED)  # PostgreSQL's text, as psycopg2 carries it into every wrapping exception
    except RuntimeError as exc:
        return exc


def test_our_lines_keep_a_refusals_names_but_not_its_values(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("finsync.test").error("could not save: %s", _refusal(), exc_info=_refusal())
    (line,) = _lines(capsys)
    assert "ann.private" not in json.dumps(line)
    assert "Key (email_norm)=(values withheld) already exists" in line["msg"] and "email_norm" in line["exc"]


def _printed_by(name: str, emit: Callable[[], None]) -> str:
    """What a logger with handlers of its own (Streamlit's, uvicorn's) prints while ``emit`` runs."""
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    target = logging.getLogger(name)
    target.addHandler(handler)
    try:
        emit()
    finally:
        target.removeHandler(handler)
    return seen.getvalue()


def test_streamlits_report_of_a_pages_uncaught_error_keeps_no_values_either(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit prints a page's uncaught exception through its own logger and format: filtered there too (with
    the app's ``logger.enableRich = false``; rich would print it past every logging filter)."""
    import tomllib

    from streamlit import config, error_util

    ours = tomllib.loads((Path(__file__).parents[2] / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    real = config.get_option
    monkeypatch.setattr(
        config, "get_option", lambda key: ours["logger"]["enableRich"] if key == "logger.enableRich" else real(key)
    )
    configure_logging()
    said = _printed_by("streamlit.error_util", lambda: error_util._log_uncaught_app_exception(_refusal()))
    assert "Uncaught app execution" in said and "Key (email_norm)=(values withheld)" in said
    assert "ann.private" not in said


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("DETAIL:  Key (user_id)=(6f1c-private) is not present in table \"users\".",
         "Key (user_id)=(values withheld) is not present in table \"users\"."),
        ("DETAIL:  Key (email_norm)=(a.private@b.c) is duplicated.", "Key (email_norm)=(values withheld) is duplicated."),
        ("DETAIL:  Key (c)=(private-1) conflicts with existing key (c)=(private-2).",
         "Key (c)=(values withheld) conflicts with existing key"),
        ("DETAIL:  Key (lower(email))=(ann.private@x.com) already exists.",
         "Key (lower(email))=(values withheld) already exists."),
        ("DETAIL:  Key (email_norm)=(a@private.c)=(d) already exists. (x)",
         "Key (email_norm)=(values withheld) already exists. (x)"),
        ('null value in column "password_hash" violates not-null constraint\nDETAIL:  Failing row contains (1, private).',
         'null value in column "password_hash" violates not-null constraint'),
        ('invalid input syntax for type uuid: "ann.private@example.com"', "invalid input syntax for type uuid:"),
        ("ProgrammingError('syntax error at or near \"WHERE\"\\nLINE 1: SELECT \\'private\\' FROM WHERE\\n')",
         'syntax error at or near "WHERE"\\nLINE 1: (values withheld)'),
    ],
)  # fmt: skip
def test_what_postgresql_quotes_from_a_refused_row_is_withheld_and_the_names_stay(said: str, kept: str) -> None:
    out = scrub_driver_values(said)
    assert "private" not in out and kept in out


def test_text_without_a_database_refusal_is_left_alone() -> None:
    text = 'Traceback (most recent call last):\n  File "x.py", line 3, in f\nValueError: LINE of (credit) = (8)'
    assert scrub_driver_values(text) == text


def test_uvicorns_report_of_a_routes_uncaught_error_keeps_no_values_either() -> None:
    """A route of ours (the webhook, the session hand-off) that raises is reported by uvicorn in its own format."""
    configure_logging()
    uvicorn_logger = logging.getLogger("uvicorn.error")  # as uvicorn's protocol reports it:
    said = _printed_by(
        "uvicorn.error", lambda: uvicorn_logger.error("Exception in ASGI application\n", exc_info=_refusal())
    )
    assert "Exception in ASGI application" in said and "Key (email_norm)=(values withheld)" in said
    assert "ann.private" not in said
