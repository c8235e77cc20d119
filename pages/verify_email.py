"""Confirm an email address from an emailed link (``?verify=TOKEN``)."""

import streamlit as st

from pages.ui.session import client_ip
from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError

st.title("Verify your email")
token = st.query_params.get("verify", "")
if st.button("Confirm my email address", type="primary", key="verify_confirm"):
    try:
        user = auth.verify_email(container(), token, ip=client_ip())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        st.query_params.clear()
        st.success(f"Thanks: {md(user.email)} is verified.")
