"""Confirm an email address from an emailed link (``?verify=TOKEN``)."""

import streamlit as st

from pages.ui.session import client_ip, current_session
from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError

st.title("Verify your email")
token = st.query_params.get("verify", "")
signed_in = current_session()
holder = st.empty()  # the button goes once the address is verified: there is nothing left to confirm
if holder.button("Confirm my email address", type="primary", key="verify_confirm"):
    try:
        user = auth.verify_email(container(), token, ip=client_ip())
    except FinsyncError as exc:
        if signed_in is not None and signed_in.user.email_verified:  # most likely this link again, after it worked
            st.info(
                f"This link was already used or has expired. Your address, {md(signed_in.user.email)}, is verified."
            )
        else:
            st.error(str(exc))
    else:
        holder.empty()
        st.query_params.clear()
        st.success(f"Thanks: {md(user.email)} is verified.")
        if signed_in is None:
            st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
        else:
            st.page_link("accounts.py", label="Link a bank on the Accounts page", icon=":material/account_balance:")
