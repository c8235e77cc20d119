"""Choose a new password from an emailed reset link (``?reset=TOKEN``), signed out or still signed in."""

import streamlit as st

from pages.ui import session as ui_session
from pages.ui.forms import new_password_inputs, passwords_match
from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError

DONE = "Your password is changed and every session was signed out. Sign in with the new password."

st.title("Choose a new password")
token = st.query_params.get("reset", "")
signed_in = ui_session.current_session()  # a browser still signed in (the person forgot the password it has)
if not auth.reset_link_usable(container(), token):
    st.error("This reset link is invalid, already used or expired. Ask for a new one.")
    if signed_in is None:
        st.page_link("forgot_password.py", label="Forgot password", icon=":material/key:")
    else:
        st.page_link("settings.py", label="Change your password in Settings", icon=":material/settings:")
    st.stop()
if signed_in is not None:
    st.info(
        f"You are signed in as {md(signed_in.user.username)}. Setting a new password here signs out every session "
        "of the account this link is for, and this browser too; then sign in with the new password."
    )

holder = st.empty()  # the form goes away once it has done its work
with holder.form("reset_form"):
    password, repeat = new_password_inputs("New password", "reset")
    submitted = st.form_submit_button("Set new password", type="primary")

if submitted and passwords_match(password, repeat):
    try:
        auth.reset_password(container(), token=token, new_password=password, ip=ui_session.client_ip())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        holder.empty()
        st.query_params.clear()
        if signed_in is None:
            st.success(DONE)
            st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
        else:  # the sign-in page that follows says it was done
            ui_session.sign_out_here(DONE)
