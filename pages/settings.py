"""Settings: password, email, two-factor, sessions, activity and account deletion."""

import streamlit as st

from pages.ui import settings_account, settings_notifications, settings_security, settings_sessions
from pages.ui.session import require_user

view = require_user()
st.title("Settings")
password, two_factor, sessions_tab, notifications, activity, account = st.tabs(
    ["Password", "Two-factor", "Sessions", "Notifications", "Activity", "Email and account"]
)
with password:
    settings_security.password_section(view)
with two_factor:
    settings_security.two_factor_section(view)
with sessions_tab:
    settings_sessions.sessions_section(view)
with notifications:
    settings_notifications.notifications_section(view)
with activity:
    settings_sessions.activity_section(view)
with account:
    settings_account.email_section(view)
    st.divider()
    settings_account.delete_section(view)
