"""Choose a new password from an emailed reset link (``?reset=TOKEN``)."""

import streamlit as st

from pages.ui.forms import new_password_inputs, passwords_match
from pages.ui.session import client_ip
from pages.ui.state import container
from services import auth
from services.errors import FinsyncError

st.title("Choose a new password")
token = st.query_params.get("reset", "")
if not auth.reset_link_usable(container(), token):
    st.error("This reset link is invalid, already used or expired. Ask for a new one.")
    st.page_link("forgot_password.py", label="Forgot password", icon=":material/key:")
    st.stop()

holder = st.empty()  # the form goes away once it has done its work
with holder.form("reset_form"):
    password, repeat = new_password_inputs("New password", "reset")
    submitted = st.form_submit_button("Set new password", type="primary")

if submitted and passwords_match(password, repeat):
    try:
        auth.reset_password(container(), token=token, new_password=password, ip=client_ip())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        holder.empty()
        st.query_params.clear()
        st.success("Your password is changed and every session was signed out. Sign in with the new password.")
        st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
