"""The sections of the Settings page; each calls one service function per action."""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from pages.ui import session as ui_session  # read_cookie looked up at call time: one seam for tests
from pages.ui.format import activity_detail, activity_from, activity_words, device, when
from pages.ui.format import count as plural
from pages.ui.forms import new_password_inputs, passwords_match
from pages.ui.outage import survives_outage
from pages.ui.reauth import proof_inputs, take_proof
from pages.ui.state import container, flash, show_flash
from pages.ui.text import md, unbroken
from services import audit, auth, sessions, sync, totp
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


def sessions_section(view: SessionView) -> None:
    c = container()
    show_flash()  # a Revoke that failed says why after its rerun
    rows = sessions.list_sessions(c, view.user.id, ui_session.read_cookie())
    for row in rows:
        # where and when under the device, each time whole with its words (a narrow column broke "2026-12-" / "07")
        about, action = st.columns([5, 1], vertical_alignment="center")
        about.text(
            device(row.user_agent) + ("  (this one)" if row.current else ""), help=md(row.user_agent[:300]) or None
        )
        about.caption(
            f"from {md(row.ip or 'unknown')} · {unbroken(f'started {when(row.created_at)}')} · "
            f"{unbroken(f'last seen {when(row.last_seen_at)}')}"
        )
        if not row.current and action.button("Revoke", key=f"revoke_{row.id}"):
            try:
                sessions.revoke_session(c, view.user.id, row.id, ip=ui_session.client_ip())
            except FinsyncError as exc:
                flash("error", str(exc))
            st.rerun()
    if len(rows) > 1 and st.button("Sign out all other sessions", key="revoke_others"):
        count = sessions.revoke_other_sessions(c, view.user.id, ui_session.read_cookie(), ip=ui_session.client_ip())
        flash("success", f"Signed out {plural(count, 'other session')}.")
        st.rerun()  # the list drawn above still shows them


def activity_section(view: SessionView) -> None:
    events = audit.list_events(container(), view.user.id)
    if not events:
        st.info("No activity yet.")
        return
    frame = pd.DataFrame(
        [
            {
                "When": when(e.at),
                "What": activity_words(e.event),
                "From": activity_from(e),
                "Detail": activity_detail(e.event, e.detail),
            }
            for e in events
        ]
    )
    st.dataframe(frame, hide_index=True, width="stretch")


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


def _threshold(label: str, minor: int | None, key: str) -> float:
    """An amount in currency units; 0 turns the alert off."""
    return st.number_input(label, min_value=0.0, max_value=10_000_000.0, value=(minor or 0) / 100, step=50.0, key=key)


def _to_minor(amount: float) -> int | None:
    """Whole cents, as the box shows them: an amount it shows as 0.00 (0.004 typed) is off, as 0 is."""
    minor = round(amount * 100)
    return minor if minor > 0 else None


def notifications_section(view: SessionView) -> None:
    c = container()
    prefs = sync.get_notification_prefs(c, view.user.id)
    with st.form("notify_form"):
        digest = st.checkbox(
            "Email me a digest after a sync brings new transactions", value=prefs.digest, key="n_digest"
        )
        alerts = st.checkbox(
            "Email me when a bank connection needs my attention", value=prefs.connection_alerts, key="n_alerts"
        )
        large = _threshold(
            "Alert me about any single transaction at or above this amount, in its own currency (0 = off)",
            prefs.large_transaction_minor,
            "n_large",
        )
        low = _threshold(
            "Alert me when a checking or savings account's available balance falls below this amount, in its currency "
            "(0 = off)",
            prefs.low_balance_minor,
            "n_low",
        )
        saved = st.form_submit_button("Save notification settings")
    if saved:
        try:
            sync.set_notification_prefs(
                c,
                view.user.id,
                sync.NotificationSettings(digest, _to_minor(large), _to_minor(low), alerts),
            )
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.success("Saved.")
