"""Create an account: email, username and a long password."""

import streamlit as st

from pages.ui.forms import new_password_inputs, passwords_match
from pages.ui.session import client_ip
from pages.ui.state import container
from pages.ui.text import md
from services import auth
from services.errors import FinsyncError

st.title("Create your finsync account")
st.caption(
    "Use a password of at least 15 characters: a few unrelated words work well, and a password manager "
    "works best. Any characters are fine, emoji included."
)

holder = st.empty()  # the form goes away once the account is made (no password left on screen)
with holder.form("register_form"):
    email = st.text_input("Email", max_chars=320, key="register_email", autocomplete="email")
    username = st.text_input("Username", max_chars=32, key="register_username", autocomplete="username")
    password, repeat = new_password_inputs("Password", "register")
    submitted = st.form_submit_button("Create account", type="primary")

if submitted and passwords_match(password, repeat):
    try:
        received = auth.register(container(), email=email, username=username, password=password, ip=client_ip())
    except FinsyncError as exc:
        st.error(str(exc))
    else:
        holder.empty()
        # The same words whether or not the address already had an account (the owner gets a notice instead).
        st.success(
            f"Check your email: we sent a message to {md(received.email)}. It tells you what comes next: "
            "usually a link to confirm your address, after which you can link your banks. If the address "
            "already had a finsync account, the message says so and how to sign in to it."
        )
        st.page_link("sign_in.py", label="Sign in", icon=":material/login:")
