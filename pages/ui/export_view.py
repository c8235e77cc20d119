"""The Transactions page's CSV download: the same file as `python -m services.cli export transactions`."""

from __future__ import annotations

import uuid
from datetime import date

import streamlit as st

from pages.ui.format import count
from pages.ui.reauth import proof_inputs
from pages.ui.session import client_ip
from services import export
from services.container import Container
from services.downloads import SHELF
from services.errors import FinsyncError

FILE_NAME = "finsync-transactions.csv"


def export_section(c: Container, uid: uuid.UUID, session_id: uuid.UUID, *, two_factor: bool) -> None:
    """Dates (optional) and the password (a bank history is worth re-authenticating for), then a link to the file
    on finsync's own route, for this session alone (services/downloads.py says why not st.download_button): a
    rerun does not rebuild it."""
    with st.expander("Download as CSV"):
        with st.form("export_form", border=False):
            cols = st.columns(2)
            cols[0].date_input("From (optional)", value=None, key="export_from")
            cols[1].date_input("To (optional)", value=None, key="export_to")
            proof_inputs(two_factor, "export")
            st.form_submit_button("Prepare the file", on_click=_prepare, args=(c, uid, session_id, two_factor))
        failed = st.session_state.pop("export_error", None)
        if failed:
            st.error(failed)
        ready = st.session_state.get("export_file")
        if ready:
            token, n, span = ready
            st.html(f'<a href="/download/{token}" download="{FILE_NAME}">Download CSV</a>')
            st.caption(
                f"{count(n, 'transaction')}{span}. Formulas are neutralised for spreadsheets. The link works for "
                "10 minutes, in this browser while you are signed in."
            )


def _prepare(c: Container, uid: uuid.UUID, session_id: uuid.UUID, two_factor: bool) -> None:
    """The form's submit, run before the page: it empties the password (and code) fields, and only those; the
    dates stay as typed, to be put right after a refusal. (A form's clear_on_submit empties every field, and in
    the browser that happens after the page has drawn: no value the page gives the dates survives it.)"""
    state = st.session_state
    password, code = state.get("export_password", ""), state.get("export_code") if two_factor else None
    state["export_password"] = ""
    if two_factor:
        state["export_code"] = ""
    try:
        start, end = _day(state.get("export_from")), _day(state.get("export_to"))
        data, n = export.export_bytes(c, uid, start, end, password=password, code=code, ip=client_ip())
    except FinsyncError as exc:
        state["export_error"] = str(exc)
    else:
        token = SHELF.put(session_id, data, filename=FILE_NAME, mime="text/csv; charset=utf-8")
        state["export_file"] = (token, n, _span(start, end))


def _span(start: date | None, end: date | None) -> str:
    """Which days the file holds, said with it (the fields may have changed since)."""
    if start and end:
        return f" from {start.isoformat()} to {end.isoformat()}"
    if start:
        return f" from {start.isoformat()} on"
    return f" up to {end.isoformat()}" if end else ""


def _day(value: object) -> date | None:
    return value if isinstance(value, date) else None
