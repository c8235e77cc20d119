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
        with st.form("export_form", border=False, clear_on_submit=True):  # no password left on screen
            cols = st.columns(2)
            # The form clears itself on submit (no password left on screen), back to each field's default: the
            # dates' default is what was just submitted, so they stay as typed, to be put right.
            first, last = st.session_state.get("export_from"), st.session_state.get("export_to")
            start = cols[0].date_input("From (optional)", value=first, key="export_from")
            end = cols[1].date_input("To (optional)", value=last, key="export_to")
            password, code = proof_inputs(two_factor, "export")
            prepared = st.form_submit_button("Prepare the file")
        if prepared:
            try:
                data, n = export.export_bytes(
                    c, uid, _day(start), _day(end), password=password, code=code, ip=client_ip()
                )
            except FinsyncError as exc:
                st.error(str(exc))
            else:
                token = SHELF.put(session_id, data, filename=FILE_NAME, mime="text/csv; charset=utf-8")
                st.session_state["export_file"] = (token, n)
        ready = st.session_state.get("export_file")
        if ready:
            token, n = ready
            st.html(f'<a href="/download/{token}" download="{FILE_NAME}">Download CSV</a>')
            st.caption(
                f"{count(n, 'transaction')}. Formulas are neutralised for spreadsheets. The link works for "
                "10 minutes, in this browser while you are signed in."
            )


def _day(value: object) -> date | None:
    return value if isinstance(value, date) else None
