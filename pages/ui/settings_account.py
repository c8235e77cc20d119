"""The Email and account tab of the Settings page: change the email address, or delete the account."""

from __future__ import annotations

import uuid

import streamlit as st

from pages.ui import session as ui_session  # read_cookie looked up at call time: one seam for tests
from pages.ui.format import when
from pages.ui.outage import survives_outage
from pages.ui.reauth import proof_inputs, take_proof
from pages.ui.state import container
from pages.ui.text import md, unbroken
from services import auth
from services.errors import FinsyncError
from services.sessions import SessionView


def email_section(view: SessionView) -> None:
    status = "verified" if view.user.email_verified else "not verified"
    st.markdown(f"Your email: **{md(view.user.email)}** ({status})")
    waiting = auth.pending_email_change(container(), view.user.id)
    if waiting is not None:
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.info(
            f"Waiting to change to **{md(waiting.new_email)}**: open the link we sent there before "
            f"{unbroken(when(waiting.expires_at))}. Until then your email stays as it is.",
            icon=":material/schedule:",
        )
        right.button("Cancel the change", key="ec_cancel", on_click=_cancel_email_change, args=(view.user.id,))
    with st.form("email_change_form"):
        st.text_input("New email address", max_chars=320, key="ec_email")
        proof_inputs(view.user.totp_enabled, "ec")
        st.form_submit_button("Change email", on_click=_change_email, args=(view.user.id,))
    said = st.session_state.pop("ec_said", None)
    if said:
        (st.success if said[0] == "success" else st.error)(said[1])


@survives_outage
def _change_email(uid: uuid.UUID) -> None:
    """The form's submit, before the page: the password goes from the screen; the address stays after a refusal,
    to be put right, and goes once the link is sent."""
    proof = take_proof("ec", uid)
    if proof is None:
        return
    _, password, code = proof
    try:
        auth.request_email_change(
            container(), uid, password=password, new_email=str(st.session_state.get("ec_email") or ""),
            code=code, ip=ui_session.client_ip(),
        )  # fmt: skip
    except FinsyncError as exc:
        st.session_state["ec_said"] = ("error", str(exc))
    else:
        st.session_state["ec_email"] = ""
        st.session_state["ec_said"] = (
            "success",
            "We sent a confirmation link to the new address. Your email changes when you open it.",
        )


@survives_outage
def _cancel_email_change(uid: uuid.UUID) -> None:
    try:
        cancelled = auth.cancel_email_change(container(), uid, ip=ui_session.client_ip())
    except FinsyncError as exc:
        st.session_state["ec_said"] = ("error", str(exc))
    else:
        said = "Email change cancelled: its link no longer works." if cancelled else "There was no change to cancel."
        st.session_state["ec_said"] = ("success", said)


def delete_section(view: SessionView) -> None:
    st.subheader("Delete my account")
    st.write("This removes your linked banks, transactions and settings. It cannot be undone.")
    with st.form("delete_form", clear_on_submit=True):
        password, code = proof_inputs(view.user.totp_enabled, "del")
        sure = st.checkbox("I understand this cannot be undone", key="del_sure")
        submitted = st.form_submit_button("Delete my account", type="primary")
    if submitted:
        if not sure:
            st.error("Tick the box to confirm.")
            return
        try:
            auth.delete_account(container(), view.user.id, password=password, code=code, ip=ui_session.client_ip())
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.session_state.clear()
            st.session_state["clear_cookie"] = True
            st.session_state["farewell"] = (
                "Your account and everything in it are deleted, and your banks are disconnected. "
                "A confirmation is on its way to your email."
            )
            st.rerun()
