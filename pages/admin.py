"""Admin: users (unlock, sign out, disable), the audit log, the mail outbox, revocations and the sync bot's health."""

import streamlit as st

from pages.ui import admin_view
from pages.ui.session import require_admin
from pages.ui.state import container
from services import admin

view = require_admin()
c = container()
st.title("Users and audit")
users_tab, audit_tab, outbox_tab, revocations_tab, bot_tab = st.tabs(
    ["Users", "Audit log", "Outbox", "Bank revocations", "Sync bot"]
)

rows = admin.list_users(c, view.user.id)

names = {r.id: r.username for r in rows}

with users_tab:
    admin_view.users_tab(c, view.user.id, rows)

with audit_tab:
    admin_view.audit_tab(c, view.user.id, names)

with outbox_tab:
    admin_view.outbox_tab(c, view.user.id)

with revocations_tab:
    admin_view.revocations_tab(c, view.user.id)

with bot_tab:
    admin_view.bot_tab(c, view.user.id)
