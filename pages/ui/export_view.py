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
from services.errors import FinsyncError


def export_section(c: Container, uid: uuid.UUID, *, two_factor: bool) -> None:
    """Dates (optional) and the password (a bank history is worth re-authenticating for), then the file: a rerun
    does not rebuild it."""
    with st.expander("Download as CSV"):
        with st.form("export_form", border=False, clear_on_submit=True):  # no password left on screen
            cols = st.columns(2)
            start = cols[0].date_input("From (optional)", value=None, key="export_from")
            end = cols[1].date_input("To (optional)", value=None, key="export_to")
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
                st.session_state["export_file"] = (data, n)
        ready = st.session_state.get("export_file")
        if ready:
            data, n = ready
            st.caption(f"{count(n, 'transaction')}. Formulas are neutralised for spreadsheets.")
            st.download_button("Download CSV", data, file_name="finsync-transactions.csv", mime="text/csv")


def _day(value: object) -> date | None:
    return value if isinstance(value, date) else None
