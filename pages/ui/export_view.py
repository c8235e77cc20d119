"""The Transactions page's CSV download: the same file as `python -m services.cli export transactions`."""

from __future__ import annotations

import uuid
from datetime import date

import streamlit as st

from pages.ui.format import count
from pages.ui.outage import survives_outage
from pages.ui.reauth import proof_inputs, take_proof
from pages.ui.session import client_ip
from services import export
from services.container import Container
from services.downloads import SHELF
from services.errors import FinsyncError

FILE_NAME = "finsync-transactions.csv"


def export_section(c: Container, uid: uuid.UUID, *, two_factor: bool) -> None:
    """Dates (optional) and the password (a bank history is worth re-authenticating for), then a link to the file
    on finsync's own route, for this session alone (services/downloads.py says why not st.download_button): a
    rerun does not rebuild it."""
    with st.expander("Download as CSV"):
        with st.form("export_form", border=False):
            cols = st.columns(2)
            cols[0].date_input("From (optional)", value=None, key="export_from")
            cols[1].date_input("To (optional)", value=None, key="export_to")
            proof_inputs(two_factor, "export")
            st.form_submit_button("Prepare the file", on_click=_prepare, args=(c, uid))
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


@survives_outage
def _prepare(c: Container, uid: uuid.UUID) -> None:
    """The form's submit, run before the page: the password goes from the screen, the dates stay as typed. A file
    prepared before goes from the page first: shown beside a refusal of the new one, its link would pass for it."""
    state, proof = st.session_state, take_proof("export", uid)
    state.pop("export_file", None)
    if proof is None:
        return
    view, password, code = proof
    try:
        start, end = _day(state.get("export_from")), _day(state.get("export_to"))
        data, n = export.export_bytes(c, uid, start, end, password=password, code=code, ip=client_ip())
    except FinsyncError as exc:
        state["export_error"] = str(exc)
    else:
        token = SHELF.put(view.session_id, data, filename=FILE_NAME, mime="text/csv; charset=utf-8")
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
