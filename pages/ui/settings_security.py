"""The Password and Two-factor tabs of the Settings page; each calls one service function per action."""

from __future__ import annotations

import streamlit as st

from pages.ui import session as ui_session  # read_cookie looked up at call time: one seam for tests
from pages.ui.format import count as plural
from pages.ui.forms import new_password_inputs, passwords_match
from pages.ui.state import container
from services import auth, totp
from services.errors import FinsyncError
from services.sessions import SessionView


def _password_input(label: str, key: str) -> str:
    return st.text_input(label, type="password", max_chars=1024, key=key, autocomplete="current-password")


def password_section(view: SessionView) -> None:
    with st.form("change_password_form", clear_on_submit=True):
        current = _password_input("Current password", "cp_current")
        new, repeat = new_password_inputs("New password", "cp")  # a typo must not lock you out of your own account
        submitted = st.form_submit_button("Change password")
    if submitted and passwords_match(new, repeat):
        try:
            auth.change_password(
                container(),
                view.user.id,
                current_password=current,
                new_password=new,
                current_token=ui_session.read_cookie(),
                ip=ui_session.client_ip(),
            )
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.success("Password changed. Your other sessions were signed out.")


def two_factor_section(view: SessionView) -> None:
    if view.user.totp_enabled:
        st.success("Two-factor sign-in is on.", icon=":material/verified_user:")
        if _codes_to_save():
            return
        _codes_left(totp.recovery_codes_left(container(), view.user.id))
        with st.form("totp_off_form", clear_on_submit=True):
            password = _password_input("Password", "totp_off_password")
            code = st.text_input("Current code", max_chars=64, key="totp_off_code")
            col_off, col_new = st.columns(2)
            off = col_off.form_submit_button("Turn two-factor off")
            regenerate = col_new.form_submit_button("New recovery codes")
        try:
            if off:
                totp.disable_totp(container(), view.user.id, password=password, code=code, ip=ui_session.client_ip())
                st.session_state["totp_off_said"] = True  # said on the run that follows, where the tab shows it off
                st.rerun()
            if regenerate:
                ip = ui_session.client_ip()
                _keep_codes(
                    totp.regenerate_recovery_codes(container(), view.user.id, password=password, code=code, ip=ip)
                )
        except FinsyncError as exc:
            st.error(str(exc))
        return
    if st.session_state.pop("totp_off_said", None):
        st.success("Two-factor sign-in is off: your password alone signs you in now, and your recovery codes no longer "
                   "work. We emailed you that it was turned off.", icon=":material/check_circle:")  # fmt: skip
    st.write("Protect your account with an authenticator app (codes that change every 30 seconds).")
    if not view.user.email_verified:
        st.info(totp.NEEDS_CONFIRMED_ADDRESS, icon=":material/mark_email_unread:")
        return
    # kept on the account, not in session_state; this session's alone
    pending = totp.pending_enrolment(container(), view.user.id, session_id=view.session_id)
    label = "Start again with a new code" if pending else "Set up two-factor sign-in"
    if st.button(label, key="totp_start"):
        totp.start_totp_enrolment(container(), view.user.id, session_id=view.session_id)
        st.rerun()  # drawn again from the top: the button now says that pressing it again starts over
    if pending is None:
        return
    st.html(pending.qr_html)
    st.caption("Scan it with your authenticator app, or type this key into the app:")
    # in groups of four, as authenticator apps show and accept it: 32 letters in one run are easily mistyped
    st.code(" ".join(pending.secret[i : i + 4] for i in range(0, len(pending.secret), 4)), language=None)
    with st.form("totp_confirm_form"):
        code = st.text_input("Enter the 6-digit code the app shows", max_chars=64, key="totp_confirm_code")
        password = _password_input("Your password", "totp_confirm_password")
        confirmed = st.form_submit_button("Turn on", type="primary")
    if confirmed:
        try:
            codes = totp.confirm_totp(
                container(),
                view.user.id,
                code=code,
                password=password,
                current_token=ui_session.read_cookie(),
                ip=ui_session.client_ip(),
            )
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.session_state["totp_just_on"] = True
            _keep_codes(codes)  # 2FA is on: the QR code and its form go away


def _codes_left(left: int) -> None:
    """Each sign-in with a recovery code spends one: say how many are left, and warn before they run out."""
    said = f"{plural(left, 'unused recovery code')} left."
    if left > 3:
        st.caption(said)
    else:
        st.warning(f"{said} Make new ones below (your password and a code) before you run out.", icon=":material/key:")


def _keep_codes(codes: list[str]) -> None:
    """Show new recovery codes until the user says they saved them (a click elsewhere must not lose them)."""
    st.session_state["recovery_codes"] = codes
    st.rerun()


def _codes_to_save() -> bool:
    codes = st.session_state.get("recovery_codes")
    if not codes:
        return False
    if st.session_state.get("totp_just_on"):
        st.info("Your other sessions were signed out: sign in there again, now with a code.", icon=":material/logout:")
    st.warning("Save these recovery codes now: each works once if you lose your phone. They are not shown again.")
    st.code("\n".join(codes), language=None)
    if st.button("I have saved them", key="codes_saved", type="primary"):
        st.session_state.pop("recovery_codes", None)
        st.session_state.pop("totp_just_on", None)
        st.rerun()
    return True
