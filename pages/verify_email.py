"""Confirm an email address from an emailed link (``?verify=TOKEN``)."""

import streamlit as st

from pages.ui.session import client_ip, current_session
from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError, TokenInvalid

st.title("Verify your email")
token = st.query_params.get("verify", "")
signed_in = current_session()
if not token:  # opened from the menu or a cut-off link: there is nothing to confirm here
    st.info("Open the link in the email finsync sent you; this page confirms the address it was sent to.")
    st.stop()
change = st.query_params.get("change") == "1"  # the words only: the token decides what the link does
holder = st.empty()  # the words and the button go once the address is verified: there is nothing left to confirm
with holder.container():
    if change:
        st.write(
            "Confirm that this email address is yours: your finsync account's address changes to it, and mail goes "
            "there from now on. The link works once and expires 48 hours after it was sent."
        )
    else:
        st.write(
            "Confirm that this email address is yours. Once it is, you can link your banks. The link works once "
            "and expires 48 hours after it was sent."
        )
    clicked = st.button("Confirm my email address", type="primary", key="verify_confirm")
if clicked:
    try:
        user = auth.verify_email(container(), token, ip=client_ip())
    except FinsyncError as exc:
        # A dead link, signed in and verified: most likely this link again, after it worked. (Not an address taken
        # meanwhile: that is said as it is.)
        if isinstance(exc, TokenInvalid) and signed_in is not None and signed_in.user.email_verified:
            st.info(
                f"This link was already used or has expired. Your address, {md(signed_in.user.email)}, is verified."
            )
        else:  # a dead link is no dead end: say where a new one comes from
            st.error(str(exc))
            if signed_in is None:
                st.write("Sign in to have a new link sent." if not change else "Sign in to ask for the change again.")
                st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
            elif change:
                st.page_link("settings.py", label="Ask for the change again in Settings", icon=":material/settings:")
            else:
                st.page_link("home.py", label="Send yourself a new link from Home", icon=":material/home:")
    else:
        holder.empty()
        st.query_params.clear()
        if change:
            st.success(f"Thanks: your account's email address is now {md(user.email)}.")
        else:
            st.success(f"Thanks: {md(user.email)} is verified.")
        if signed_in is None:
            st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
        elif change:
            st.page_link("settings.py", label="Back to Settings", icon=":material/settings:")
        else:
            st.page_link("accounts.py", label="Link a bank on the Accounts page", icon=":material/account_balance:")
