"""Home: a signed-in person's starting point."""

import streamlit as st

from pages.ui.overview import overview
from pages.ui.session import require_user
from pages.ui.state import container
from pages.ui.text import md
from pages.ui.verification import verify_reminder

view = require_user()
st.title(f"Welcome, {md(view.user.username)}")
st.write(
    "finsync keeps your banks in sync by itself. Link a bank under **Accounts**; from then on it fetches new "
    "transactions every few hours. **Transactions** is your searchable ledger (categories, notes, tags, CSV "
    "export), and **Sync history** shows every sync and explains anything that went wrong."
)

verify_reminder(view, key="resend_verification")
overview(container(), view.user.id, can_link=view.user.email_verified)
st.caption(f"Bank connection mode: {container().settings.effective_plaid_env}")
