"""Sign in with email or username and password, then a code when two-factor is on."""

from urllib.parse import urlencode

import streamlit as st

from pages.ui import routes
from pages.ui.browser import post_and_reload
from pages.ui.session import client_ip, user_agent
from pages.ui.state import container
from services import auth, link_return
from services.errors import FinsyncError

EXPIRED = "expired"  # ?signin=expired: the browser came back from a refused hand-off

st.title("Sign in to finsync")
stage = st.session_state.get("sign_in_stage", "password")
if st.query_params.get("signin") == EXPIRED:
    st.warning("Your sign-in expired before it could finish. Please sign in again.")
    del st.query_params["signin"]  # said once: a reload shows the plain form
# Back from a bank's OAuth sign-in with the session gone: after signing in, Accounts resumes Link. Kept for this
# browser tab too, so a detour (Forgot password, Create account: page changes drop the query) does not lose it.
oauth_state = link_return.oauth_state_id(st.query_params.get(link_return.OAUTH_STATE_PARAM))
oauth_state = oauth_state or st.session_state.get(link_return.OAUTH_STATE_PARAM)
st.session_state[link_return.OAUTH_STATE_PARAM] = oauth_state
if oauth_state and stage != "handoff":
    st.info("Sign in to finish linking your bank.")
elif (asked := routes.asked_private_page()) and stage != "handoff" and "farewell" not in st.session_state:
    # (after deleting the account, the farewell above says what happened: no "sign in to open Settings" for it)
    st.info(f"Sign in to open {routes.PRIVATE[asked]}.")

if stage == "handoff":
    # The ticket is single-use and dies in 60 s; the browser trades it for the HttpOnly cookie.
    ticket = st.session_state.get("handoff_ticket", "")
    resume = link_return.after_sign_in(container().settings.plaid_redirect_uri, oauth_state)
    if resume == "/" and (asked := routes.asked_private_page()):
        resume = f"/{asked}"  # one of our page names, never a path taken from the URL
    kept = {link_return.OAUTH_STATE_PARAM: oauth_state} if oauth_state else {}  # refused: sign in again, still resume
    failed = "/?" + urlencode({"signin": EXPIRED, **kept})
    post_and_reload("/auth/session", ticket, "Signing you in…", next_url=resume, failed_url=failed, key="handoff")
    st.session_state["sign_in_stage"] = "password"
    st.stop()

if stage == "totp":
    with st.form("totp_form"):
        st.write("Enter the 6-digit code from your authenticator app, or one of your recovery codes.")
        code = st.text_input("Code", max_chars=64, key="totp_code", autocomplete="one-time-code")
        confirmed = st.form_submit_button("Verify", type="primary")
    if confirmed:
        try:
            ticket = auth.complete_totp(
                container(),
                challenge=st.session_state.get("sign_in_challenge", ""),
                code=code,
                ip=client_ip(),
                user_agent=user_agent(),
            )
        except FinsyncError as exc:
            st.error(str(exc))
        else:
            st.session_state.pop("sign_in_challenge", None)
            st.session_state.update(sign_in_stage="handoff", handoff_ticket=ticket)
            st.rerun()
    if st.button("Start over", key="totp_restart"):
        st.session_state.update(sign_in_stage="password", sign_in_challenge=None)
        st.rerun()
    st.stop()

with st.form("sign_in_form"):
    login = st.text_input("Email or username", max_chars=320, key="sign_in_login", autocomplete="username")
    password = st.text_input(
        "Password", type="password", max_chars=1024, key="sign_in_password", autocomplete="current-password"
    )
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    try:
        step = auth.begin_sign_in(container(), login=login, password=password, ip=client_ip(), user_agent=user_agent())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        if step.kind == "totp":
            st.session_state.update(sign_in_stage="totp", sign_in_challenge=step.challenge)
        else:
            st.session_state.update(sign_in_stage="handoff", handoff_ticket=step.ticket)
        st.rerun()

st.page_link("register.py", label="New here? Create an account", icon=":material/person_add:")
st.page_link("forgot_password.py", label="Forgot your password?", icon=":material/key:")
