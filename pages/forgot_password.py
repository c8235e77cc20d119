"""Forgot password: always the same answer, whether or not the account exists."""

import streamlit as st

from pages.ui.session import client_ip
from pages.ui.state import container
from services import auth
from services.errors import FinsyncError

st.title("Forgot your password?")
with st.form("forgot_form", clear_on_submit=True):
    email = st.text_input("Your account's email address", max_chars=320, key="forgot_email", autocomplete="email")
    submitted = st.form_submit_button("Send me a reset link", type="primary")

if submitted:
    try:
        auth.request_password_reset(container(), email=email, ip=client_ip())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        st.success(
            "If an account uses that address, we sent it a link to choose a new password. "
            "The link works once, for 30 minutes."
        )
st.page_link("sign_in.py", label="Back to sign in", icon=":material/login:")
