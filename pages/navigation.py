"""Entry script: the auth gate and router (only pages the visitor may open are registered)."""

import streamlit as st

from pages.ui import routes
from pages.ui import session as ui_session
from pages.ui.browser import post_and_reload
from pages.ui.outage import database_outage_notice
from pages.ui.session import current_session
from pages.ui.text import md
from services import link_return

st.set_page_config(page_title="finsync", page_icon="💰", layout="wide")

with database_outage_notice():  # the database gone mid-session: words, not a bare error box
    view = current_session()
    params = st.query_params

    # What a page keeps for its user (recovery codes to save, an open Link, messages) belongs to that user alone:
    # when the session ended (idle, revoked elsewhere) or another account is signed in, none of it is kept.
    owner = str(view.user.id) if view is not None else None
    if st.session_state.get("signed_in_user") != owner:
        st.session_state.clear()
        st.session_state["signed_in_user"] = owner

    if st.session_state.pop("clear_cookie", False):
        # After a deletion the page that follows says it was done, so the cookie goes without a reload to lose that.
        post_and_reload("/auth/logout", "", "Signing out…", key="sign_out", stay="farewell" in st.session_state)
    if farewell := st.session_state.get("farewell"):
        st.success(farewell, icon=":material/check_circle:")

    # Emailed links land on "/" with a token: show the page that consumes it first.
    link_page = None
    if "verify" in params:
        link_page = st.Page("verify_email.py", title="Verify email", icon=":material/mark_email_read:", default=True)
    elif "reset" in params:  # a browser still signed in gets it too: its person may have forgotten the password
        link_page = st.Page("reset_password.py", title="Choose a new password", icon=":material/key:", default=True)
    # A bank's OAuth redirect lands on PLAID_REDIRECT_URI with oauth_state_id, and Accounts resumes Link from it. When
    # that URI is the app root, Accounts is the default page of this visit: it opens right there, URL and query params
    # as the bank sent them (Link must be handed that exact URL). Asked for by its own path, Accounts opens as usual.
    asked = routes.asked_private_page()
    oauth_return = link_page is None and link_return.OAUTH_STATE_PARAM in params and asked != "accounts"

    if view is None:
        public = [
            st.Page("sign_in.py", title="Sign in", icon=":material/login:", default=link_page is None),
            st.Page("register.py", title="Create account", icon=":material/person_add:"),
            st.Page("forgot_password.py", title="Forgot password", icon=":material/key:"),
        ]
        if asked is not None and link_page is None:
            # A private page asked for while signed out (a bookmark, a reload after the session ran out, back from
            # the bank on PLAID_REDIRECT_URI = Accounts): sign in right there, not "Page not found"; signing in
            # goes on to that page (Accounts resumes Link).
            public.append(st.Page("sign_in.py", title="Sign in", url_path=asked, visibility="hidden"))
        st.navigation([*public, *([link_page] if link_page else [])], position="top").run()
    else:
        account = [st.Page("settings.py", title="Settings", icon=":material/settings:")]
        if link_page is not None:
            account.append(link_page)
        sections = {
            "finsync": [
                st.Page(
                    "home.py", title="Home", icon=":material/home:", default=link_page is None and not oauth_return
                ),
                st.Page("accounts.py", title="Accounts", icon=":material/account_balance:", default=oauth_return),
                st.Page("transactions.py", title="Transactions", icon=":material/receipt_long:"),
                st.Page("sync_history.py", title="Sync history", icon=":material/history:"),
            ],
            "Account": account,
        }
        if view.user.role == "admin":
            sections["Admin"] = [st.Page("admin.py", title="Users and audit", icon=":material/admin_panel_settings:")]
        with st.sidebar:
            st.caption(f"Signed in as {md(view.user.username)}")
            if st.button("Sign out", icon=":material/logout:", key="sign_out_button"):
                ui_session.sign_out_here()
        st.navigation(sections).run()
